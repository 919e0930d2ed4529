"""Immediate alerts when a report shows fever, symptoms, an unreachable or absent subject."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlite_utils

from handlers.commands import Turn
from handlers.dates import day_label
from handlers.parser import Entry, ParseResult
from storage.alerts import add_recipients, create_alert, escalated_to, void_alerts
from storage.contacts import current_contact
from storage.outbox import queue_message
from storage.people import medics_for, monitors_for, secretaries_of
from storage.units import get_unit, village_of

SLOTS = ("morning", "noon", "evening")
SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}


def previous_slot(day: dt.date, slot: str) -> tuple[dt.date, str]:
    index = SLOTS.index(slot)
    if index == 0:
        return day - dt.timedelta(days=1), "evening"
    return day, SLOTS[index - 1]


@dataclass(frozen=True)
class Unreachable:
    """One unreachable subject of a message, and who is to be told."""

    subject: str  # 张三（河西村第一网格）
    slot: str  # 3月2日早
    twice: bool  # unreachable in the slot before too: monitors are told, a visit is asked for
    recipients: list[dict]
    number: int = 0  # the alert's number, answered with 收到 N / 已处置 N
    card: dict | None = None  # in a few words, its page and number (a WeCom card with buttons)


def how_to_answer(number: int) -> str:
    """The line every numbered alert ends with (DESIGN §11)."""
    return f"提醒编号 {number}：请回复“收到 {number}”或“已处置 {number}”（可附说明）。"


def queue_unreachable(turn: Turn, alerts: list[Unreachable]) -> None:
    """One `unreachable_alert` per recipient for all of a message's unreachable subjects."""
    by_person: dict[int, tuple[dict, list[Unreachable]]] = {}
    for alert in alerts:
        for person in alert.recipients:
            by_person.setdefault(person["id"], (person, []))[1].append(alert)
    member, when = turn.person["name"], f"{turn.at:%H:%M}"
    for person, theirs in by_person.values():
        card = None  # several alerts in one message: text, answered by number in chat
        if len(theirs) == 1:
            (alert,) = theirs
            card = alert.card
            text = (
                f"⚠ 联系不上：{alert.subject}{alert.slot}未联系上，网格员{member} {when}上报。"
                + ("\n已连续两个时段联系不上，请上门核实。" if alert.twice else "\n请协助联系。")
                + f"\n{how_to_answer(alert.number)}"
            )
        else:
            lines = [f"⚠ 联系不上：{len(theirs)}人未联系上，网格员{member} {when}上报："]
            lines += [
                f"· [{a.number}] {a.subject}{a.slot}"
                + ("，已连续两个时段联系不上" if a.twice else "")
                for a in theirs
            ]
            twice = any(a.twice for a in theirs)
            lines.append("请协助联系" + ("；连续两个时段联系不上的请上门核实。" if twice else "。"))
            example = theirs[0].number
            lines.append(
                f"方括号内为提醒编号，请逐条回复“收到 编号”或“已处置 编号”，例如：收到 {example}"
            )
            text = "\n".join(lines)
        tell(turn, [person], "unreachable_alert", text, card=card)


def _recipients(*groups: list[dict]) -> list[dict]:
    seen: dict[int, dict] = {}
    for group in groups:
        for person in group:
            seen.setdefault(person["id"], person)
    return list(seen.values())


def alerts_for_contact(
    turn: Turn,
    subject: dict,
    entry: Entry,
    result: ParseResult,
    previous: dict | None,
    unreachable: list[Unreachable] | None = None,
) -> list[dict]:
    """Queue the alerts this report calls for; return the people alerted.

    A report that repeats the state already on record for the same slot (a correction of the
    temperature, say) does not alert again: nobody is nagged twice for one event. An
    unreachable subject is added to `unreachable` when given, for `queue_unreachable` to tell
    each recipient once about all of a message's unreachable subjects.
    """
    if entry.status == "normal":
        return []
    if previous is not None and previous["status"] == entry.status:
        return []
    db = turn.ctx.db
    village = village_of(db, subject["unit"]) or subject["unit"]
    unit = get_unit(db, subject["unit"])
    where = unit["name"] if unit else subject["unit"]
    when = f"{turn.at:%H:%M}"
    slot = f"{day_label(result.date)}{SLOT_CN[result.slot]}"
    member = turn.person["name"]
    secretaries = secretaries_of(db, village)
    if entry.status == "abnormal":
        kind = "abnormal_alert"
        temperature = f"体温{entry.temperature:.1f}℃，" if entry.temperature is not None else ""
        symptoms = "、".join(entry.symptoms) or "异常"
        summary = (
            f"异常：{subject['name']}（{where}，{subject['category']}）{temperature}{symptoms}，"
            f"{slot}网格员{member} {when}上报"
        )
        number = _number(turn, subject, result, entry.status, summary)
        text = (
            f"⚠ 异常情况：{subject['name']}（{where}，{subject['category']}）"
            f"{temperature}{symptoms}。"
            f"\n{slot}由网格员{member} {when}上报，请尽快核实处置。"
            f"\n{how_to_answer(number)}"
        )
        recipients = _recipients(secretaries, medics_for(db, subject["unit"]))
    elif entry.status == "unreachable":
        day, slot_before = previous_slot(result.date, result.slot)
        before = current_contact(db, subject["id"], day, slot_before)
        twice = before is not None and before["status"] == "unreachable"
        recipients = _recipients(secretaries, monitors_for(db, subject["unit"]) if twice else [])
        summary = (
            f"联系不上：{subject['name']}（{where}）{slot}未联系上"
            + ("（连续两个时段）" if twice else "")
            + f"，网格员{member} {when}上报"
        )
        number = _number(turn, subject, result, entry.status, summary)
        add_recipients(db, number, recipients)
        card = {"title": "联系不上预警", "summary": f"{subject['name']} 未联系上", "page": "view"}
        card |= {"unit": village, "day": result.date.isoformat(), "alert": number}
        alert = Unreachable(f"{subject['name']}（{where}）", slot, twice, recipients, number, card)
        if unreachable is None:
            queue_unreachable(turn, [alert])
        else:
            unreachable.append(alert)  # told once per message, with the others (the caller)
        return recipients
    else:
        kind = "absent_alert"
        summary = (
            f"不在隔离点：{subject['name']}（{where}）{slot}不在家/外出，网格员{member} {when}上报"
        )
        number = _number(turn, subject, result, entry.status, summary)
        text = (
            f"⚠ 不在隔离点：{subject['name']}（{where}）{slot}不在家/外出，"
            f"网格员{member} {when}上报，请立即核实去向。"
            f"\n{how_to_answer(number)}"
        )
        recipients = _recipients(secretaries, monitors_for(db, subject["unit"]))
    add_recipients(db, number, recipients)
    # in a few words, and the village's view of the day that shows it (a WeCom textcard)
    title = "异常预警" if kind == "abnormal_alert" else "外出预警"
    found = f"{entry.temperature:.1f}℃ " if entry.temperature is not None else ""
    what = f"{found}{'、'.join(entry.symptoms)}" if kind == "abnormal_alert" else "不在家/外出"
    card = {"title": title, "summary": f"{subject['name']} {what}".strip(), "page": "view"}
    card |= {"unit": village, "day": result.date.isoformat(), "alert": number}
    tell(turn, recipients, kind, text, card=card)
    return recipients


def _number(turn: Turn, subject: dict, result: ParseResult, status: str, summary: str) -> int:
    """A new alert event's number (one per event, shared by all its recipients)."""
    return create_alert(
        turn.ctx.db,
        kind=status,
        subject_id=subject["id"],
        day=result.date,
        slot=result.slot,
        summary=summary,
        at=turn.at,
        raised_by=turn.person["id"],
        inbox_id=turn.inbox_id,
    )


def tell(turn: Turn, people: list[dict], kind: str, text: str, card: dict | None = None) -> None:
    """Queue what a message makes others hear (alerts, corrections, releases), with the
    message's inbox id: delivered at once after the reply."""
    for person in people:
        queue_message(
            turn.ctx.db,
            at=turn.at,
            person=person,
            kind=kind,
            text=text,
            inbox_id=turn.inbox_id,
            card=card,
        )
    turn.ctx.alerts_queued += len(people)


ALERT_KINDS = {
    "abnormal": "abnormal_alert",
    "unreachable": "unreachable_alert",
    "absent": "absent_alert",
}
STATUS_WORDS = {"abnormal": "异常", "unreachable": "联系不上", "absent": "不在家/外出"}


def queue_corrections(
    turn: Turn,
    subject: dict,
    day: dt.date,
    slot: str,
    voided: str,
    now_on_record: str,
    how: str = "更正",
    voided_word: str | None = None,
) -> list[dict]:
    # `voided_word` names a part of the alert that is gone (发热) while its status stays: the
    # alert itself stands
    """What a cadre was told stays true (DESIGN §2): the report that raised an alert of
    status `voided` for this subject, date and slot was corrected or undone, so everyone who
    got that alert hears, once, what is on record now (kind `correction`)."""
    db = turn.ctx.db
    found = db.execute(
        """SELECT id, raised_by FROM alerts WHERE subject_id = ? AND date = ? AND slot = ?
           AND kind = ? AND status IN ('open', 'received')""",
        [subject["id"], day.isoformat(), slot, voided],
    ).fetchall()
    numbers = [number for number, _ in found]
    # a cover report (someone not assigned to the subject, 多对一) changes the record but
    # cannot silence someone else's alert: it stays open until someone it reached
    # acknowledges it (who raised it may take it back)
    covered = not _assigned(db, turn.person["id"], subject["id"]) and any(
        raised_by != turn.person["id"] for _, raised_by in found
    )
    if not covered and voided_word is None:
        void_alerts(db, subject["id"], day, slot, voided, turn.at)  # never escalates now
    rows = db.execute(
        """SELECT DISTINCT o.person_id FROM outbox o
           WHERE o.kind = ? AND o.person_id IS NOT NULL AND instr(o.text, ? || '（') > 0
           AND o.inbox_id IN (SELECT inbox_id FROM contacts
                              WHERE subject_id = ? AND date = ? AND slot = ?)""",
        [ALERT_KINDS[voided], subject["name"], subject["id"], day.isoformat(), slot],
    ).fetchall()
    # and everyone an escalation of it reached (town, county) hears it too
    rows += [(person["id"],) for number in numbers for person in escalated_to(db, number)]
    rows = list(dict.fromkeys(rows))
    if not rows:
        return []
    marks = ",".join("?" * len(rows))
    people = list(
        db.query(f"SELECT * FROM people WHERE active AND id IN ({marks})", [r[0] for r in rows])
    )
    unit = get_unit(db, subject["unit"])
    where = unit["name"] if unit else subject["unit"]
    text = (
        f"【更正】{subject['name']}（{where}）{day_label(day)}{SLOT_CN[slot]}："
        f"此前通知的“{voided_word or STATUS_WORDS[voided]}”已由网格员{turn.person['name']}于 "
        f"{turn.at:%H:%M} {how}，现记录为：{now_on_record}。"
    )
    if covered and numbers and voided_word is None:
        listed = "、".join(str(n) for n in numbers)
        text += f"此为非包联网格员代报，提醒 {listed} 仍请核实后回复“已处置 {numbers[0]}”。"
    tell(turn, people, "correction", text)
    return people


def _assigned(db: sqlite_utils.Database, person_id: int, subject_id: int) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM assignments WHERE person_id = ? AND subject_id = ?",
            [person_id, subject_id],
        ).fetchone()
        is not None
    )
