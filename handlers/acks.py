"""Acknowledging a numbered alert (DESIGN §11): 收到 N / 已处置 N in chat, or WeCom's button.

`acknowledge` is what both call; a user's mistake (an unknown number, someone else's alert,
one already handled) is answered in plain Chinese with an example. A WeCom button's click
(template_card_event, its EventKey `ack:handled:12`) is `click`: the same answers as chat.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlite_utils

from handlers.commands import ROLE_CN, Turn, UserError, command
from handlers.dates import time_label
from storage.alerts import ACTIONS, acks_of, escalated_to, get_alert, recipient_ids, record_ack
from storage.outbox import queue_message
from storage.people import roles_of
from storage.units import ancestors

ACK_ROLES = {"secretary", "monitor", "medic"}
_NUMBER = r"^\s*第?\s*[#＃]?\s*[0-9０-９]+"
_ARGS = re.compile(r"^\s*第?\s*[#＃]?\s*(\d+)\s*号?\s*[，,。：:；;、\s]*(.*)$", re.S)
# 收到 / 收到，马上去 / 好的收到: an acknowledgement without a number (no digit in it)
_BARE_RECEIVED = re.compile(r"^\s*(?:好的?|嗯|ok|OK)?[，,\s]*收到(?:[^0-9０-９#＃第]{0,30})$", re.S)
_ASCII_DIGITS = str.maketrans("０１２３４５６７８９＃", "0123456789#")
WAITING_HOURS = 24  # a bare 收到 answers an alert raised within this time


BUTTON_KEY = re.compile(r"^ack:(received|handled):([0-9]{1,9})$")


def button_key(action: str, number: int) -> str:
    """The EventKey of the button that records `action` for alert `number`."""
    return f"ack:{action}:{number}"


def read_button_key(key: str) -> tuple[str, int] | None:
    """`ack:handled:12` → ("handled", 12); None for any other key."""
    match = BUTTON_KEY.match(key.strip())
    return (match[1], int(match[2])) if match else None


def parse_args(args: str, word: str) -> tuple[int, str]:
    """`12 已送医院` → (12, "已送医院")."""
    match = _ARGS.match(args.translate(_ASCII_DIGITS))  # the note keeps its own punctuation
    if match is None:
        raise UserError(f"请写上提醒编号，例如：{word} 12（编号见提醒消息末尾）")
    return int(match[1]), match[2].strip()[:200]


def acknowledge(
    db: sqlite_utils.Database,
    person: dict,
    number: int,
    action: str,
    at: dt.datetime,
    note: str = "",
) -> str:
    """Record `person`'s acknowledgement of alert `number` (action 'received' or 'handled');
    the reply text, a mistake's explanation included (WeCom's button calls this). Run it in
    the caller's transaction, as the pipeline runs a message's handling; what it tells others
    is queued in the outbox (kind `escalation`) for the channel to deliver."""
    try:
        return record_acknowledgement(db, person, number, action, at, note)[0]
    except UserError as error:
        return str(error)


def record_acknowledgement(
    db: sqlite_utils.Database,
    person: dict,
    number: int,
    action: str,
    at: dt.datetime,
    note: str = "",
) -> tuple[str, int]:
    """The reply and how many others were told; UserError for what the user can fix."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    word = ACTIONS[action]
    alert = get_alert(db, number)
    if alert is None:
        raise UserError(f"没有编号为 {number} 的提醒，请核对提醒消息末尾的编号，例如：{word} 12")
    if not _may_answer(db, person, alert):
        raise UserError(
            f"编号 {number} 的提醒不是发给您的，也不在您的管辖范围内，请核对编号，例如：{word} 12"
        )
    acks = acks_of(db, number)
    handled = next((a for a in acks if a["action"] == "handled"), None)
    if handled is not None:
        raise UserError(
            f"编号 {number}（{alert['subject']}）已由{handled['person']}于"
            f"{time_label(handled['at'])}处置，无需再回复。"
        )
    if alert["status"] == "voided":
        raise UserError(
            f"编号 {number}（{alert['subject']}）的情况已由网格员更正，提醒已作废，无需处置。"
        )
    mine = [a for a in acks if a["person_id"] == person["id"]]
    if action == "received" and mine:
        return (
            f"您已于{time_label(mine[0]['at'])}确认收到编号 {number}（{alert['subject']}）。"
            f"处置后请回复“已处置 {number}”并附说明。",
            0,
        )
    record_ack(db, number, person["id"], action, at, note)
    told = 0 if acks else _tell_escalated(db, alert, person, action, at, note)
    if action == "received":
        names = "、".join(dict.fromkeys(a["person"] for a in acks))
        others = f"；{names}也已收到" if acks else ""
        return (
            f"已确认收到编号 {number}：{alert['summary']}{others}。"
            f"处置后请回复“已处置 {number} 说明”，例如：已处置 {number} 已电话核实",
            told,
        )
    noted = f"，说明：{note}" if note else ""
    told += _tell_recipients(db, alert, person, at, noted)
    return f"已记录编号 {number}（{alert['subject']}）已处置{noted}。辛苦了！", told


def _tell_recipients(
    db: sqlite_utils.Database, alert: dict, person: dict, at: dt.datetime, noted: str
) -> int:
    """The alert's other recipients hear, once, that it is handled: a secretary and a medic
    who both got a fever alert do not both go to the same door."""
    others = recipient_ids(db, alert["id"]) - {person["id"]}
    if not others:
        return 0
    marks = ",".join("?" * len(others))
    people = list(db.query(f"SELECT * FROM people WHERE active AND id IN ({marks})", list(others)))
    text = (
        f"【已处置】提醒编号 {alert['id']}（{alert['subject']}）已由{person['name']}于 "
        f"{at:%H:%M} 处置{noted}，无需再处置。"
    )
    return _notify(db, people, text, at)


def _notify(db: sqlite_utils.Database, people: list[dict], text: str, at: dt.datetime) -> int:
    """Queue one notice (kind escalation: supervision traffic) to each; how many."""
    for other in people:
        queue_message(db, at=at, person=other, kind="escalation", text=text)
    return len(people)


def _may_answer(db: sqlite_utils.Database, person: dict, alert: dict) -> bool:
    """Someone who got the alert (or its escalation), or above the subject's unit, with a
    role that receives alerts."""
    if not roles_of(person) & ACK_ROLES:
        return False
    if person["id"] in recipient_ids(db, alert["id"]):
        return True
    if person["unit"] in ancestors(db, alert["unit"]):
        return True
    return any(p["id"] == person["id"] for p in escalated_to(db, alert["id"]))


def _tell_escalated(
    db: sqlite_utils.Database, alert: dict, person: dict, action: str, at: dt.datetime, note: str
) -> int:
    """Those an escalation reached hear, once, that the alert is answered (the first
    acknowledgement); the alert's own recipients are not messaged again: kept quiet."""
    people = [p for p in escalated_to(db, alert["id"]) if p["id"] != person["id"]]
    what = "确认收到" if action == "received" else "处置" + (f"（{note}）" if note else "")
    text = (
        f"【已回复】提醒编号 {alert['id']}（{alert['subject']}）已由{person['name']}于 "
        f"{at:%H:%M} {what}，无需再督办。"
    )
    return _notify(db, people, text, at)


def _answer(turn: Turn, action: str) -> str:
    number, note = parse_args(turn.args, ACTIONS[action])
    reply, told = record_acknowledgement(turn.ctx.db, turn.person, number, action, turn.at, note)
    turn.ctx.alerts_queued += told  # delivered at once, after the reply
    return reply


@command(
    "收到",
    roles=ACK_ROLES,
    usage="收到 12 — 确认收到第12号提醒",
    takes_args=True,
    args_pattern=_NUMBER,
)
def received(turn: Turn) -> str:
    return _answer(turn, "received")


@command(
    "已处置",
    "处置",
    "已处理",
    roles=ACK_ROLES,
    usage="已处置 12 说明 — 第12号提醒已处置",
    takes_args=True,
)
def handled(turn: Turn) -> str:
    return _answer(turn, "handled")


def bare_received(text: str) -> bool:
    """收到, 收到，马上去, 好的收到: said to an alert, but without its number."""
    return _BARE_RECEIVED.match(text) is not None


def waiting_alerts(db: sqlite_utils.Database, person: dict, at: dt.datetime) -> list[dict]:
    """Alerts of the last WAITING_HOURS that reached `person` (or its escalation did), not
    handled nor voided, that they have not acknowledged themselves, oldest first (another's
    收到 does not make theirs mean a different alert)."""
    since = (at - dt.timedelta(hours=WAITING_HOURS)).isoformat(timespec="seconds")
    rows = db.execute(
        """SELECT a.id, s.name, a.kind FROM alerts a JOIN subjects s ON s.id = a.subject_id
           WHERE a.status IN ('open', 'received') AND a.raised_at >= ? AND a.raised_at <= ?
             AND NOT EXISTS (SELECT 1 FROM alert_acks k
                             WHERE k.alert_id = a.id AND k.person_id = ?)
             AND (a.id IN (SELECT alert_id FROM alert_recipients WHERE person_id = ?)
                  OR EXISTS (SELECT 1 FROM outbox o WHERE o.kind = 'escalation'
                             AND o.person_id = ? AND o.send_key LIKE
                             'escalation|alert:' || a.id || '/%'))
           ORDER BY a.id""",
        [since, at.isoformat(timespec="seconds"), person["id"], person["id"], person["id"]],
    ).fetchall()
    return [{"id": number, "subject": name, "kind": kind} for number, name, kind in rows]


def received_without_number(turn: Turn) -> str:
    """A bare 收到 from someone an alert reached: it acknowledges that alert when it is the
    only one waiting for them; with several, they are listed to pick from; with none, it is
    the ordinary acknowledgement it looks like."""
    waiting = waiting_alerts(turn.ctx.db, turn.person, turn.at)
    if not waiting:
        return "好的，辛苦了！"
    if len(waiting) > 1:
        listed = "、".join(f"{a['id']} {a['subject']}" for a in waiting[:8])
        more = f"等{len(waiting)}条" if len(waiting) > 8 else ""
        return (
            f"您有{len(waiting)}条未确认的提醒：{listed}{more}。"
            f"请带上编号回复，例如：收到 {waiting[0]['id']}"
        )
    number = waiting[0]["id"]
    reply, told = record_acknowledgement(turn.ctx.db, turn.person, number, "received", turn.at)
    turn.ctx.alerts_queued += told
    return reply


def click(turn: Turn, key: str) -> str:
    """A WeCom button's click (its EventKey) by `turn.person`: recorded as `收到 N` / `已处置 N`
    typed in chat would be, with the same answers (UserError for what the user can fix)."""
    found = read_button_key(key)
    if found is None:
        raise UserError("这个按钮已失效，请直接回复“已处置 编号 说明”，例如：已处置 12 已电话核实")
    action, number = found
    if not turn.roles & ACK_ROLES:  # as chat refuses the command to this role
        who = "、".join(ROLE_CN[r] for r in sorted(ACK_ROLES) if r in ROLE_CN)
        raise UserError(f"“{ACTIONS[action]}”仅限{who}使用。发送“帮助”查看您可用的命令。")
    reply, told = record_acknowledgement(turn.ctx.db, turn.person, number, action, turn.at)
    turn.ctx.alerts_queued += told
    return reply


def handled_by(db: sqlite_utils.Database, key: str) -> str | None:
    """Who handled the alert a button's key (EventKey) names, if anyone has: what the
    clicked card then shows (已处置·张三); None while it is not handled."""
    found = read_button_key(key)
    if found is None:
        return None
    handled = next((a for a in acks_of(db, found[1]) if a["action"] == "handled"), None)
    return handled["person"] if handled else None
