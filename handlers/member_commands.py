"""Commands for grid members: 名单, 撤销, 需求 张三 …"""

from __future__ import annotations

import datetime as dt

from handlers.alerts import ALERT_KINDS, queue_corrections
from handlers.commands import Turn, UserError, command
from handlers.dates import day_label, time_label
from handlers.reports import SLOT_CN, STATUS_CN, monitoring_day
from storage.contacts import contacts_on, current_contact, revoke_message
from storage.inbox import last_report_message, previous_message
from storage.needs import add_need
from storage.people import get_person
from storage.subjects import member_subjects

SLOTS = ("morning", "noon", "evening")
MARK = {"normal": "✓", "abnormal": "⚠", "unreachable": "✗", "absent": "✗"}


@command("名单", "我的名单", roles={"member"}, usage="名单 — 我负责的人和今天各时段情况")
def my_list(turn: Turn) -> str:
    day = monitoring_day(turn.at)
    subjects = member_subjects(turn.ctx.db, turn.person["id"], day)
    if not subjects:
        return "您今天没有需要联系的监测对象。"
    reported = contacts_on(turn.ctx.db, [s["id"] for s in subjects], day)
    lines = [f"您负责的监测对象（{day_label(day)}，✓正常 ⚠异常 ✗未联系上/外出 —未报）："]
    for subject in subjects:
        cells = []
        for slot in SLOTS:
            row = reported.get((subject["id"], slot))
            if row is None:
                cells.append(f"{SLOT_CN[slot]}—")
            else:
                temperature = f"{row['temperature']:.1f}" if row["temperature"] is not None else ""
                cells.append(f"{SLOT_CN[slot]}{MARK[row['status']]}{temperature}")
        lines.append(f"{subject['name']}  {' '.join(cells)}（至{day_label(subject['end_date'])}）")
    return "\n".join(lines)


@command("撤销", "撤回", roles={"member"}, usage="撤销 — 撤销我上一条上报")
def undo(turn: Turn) -> str:
    db = turn.ctx.db
    message = previous_message(db, turn.person["id"], turn.inbox_id or 1 << 62)
    if message is not None:
        replaced = db.execute(
            """SELECT s.name, p.name FROM contacts c JOIN subjects s ON s.id = c.subject_id
               JOIN contacts r ON r.id = c.replaced_by LEFT JOIN people p ON p.id = r.member_id
               WHERE c.inbox_id = ? AND c.current = 0 AND c.revoked = 0""",
            [message["id"]],
        ).fetchone()
        if (
            replaced is not None
            and not db.execute(
                "SELECT 1 FROM contacts WHERE inbox_id = ? AND current = 1", [message["id"]]
            ).fetchone()
        ):
            raise UserError(
                f"您{message['at'][11:16]}的上报（{replaced[0]}）已被{replaced[1] or '后来'}的上报"
                "取代，没有可撤销的内容。如需改正请发送更正，例如：更正 张三 36.5"
            )
    if message is None or message["id"] != (last_report_message(db, turn.person["id"]) or {}).get(
        "id"
    ):
        # 撤销 undoes the last message only: never a report further back the member forgot
        said = f"（{message['at'][11:16]}“{_short(message['text'])}”）" if message else ""
        raise UserError(
            f"您上一条消息{said}不是上报，没有可撤销的内容。"
            "如需改正某人的记录，请发送更正，例如：更正 张三 36.5"
        )
    handled = db.execute(
        """SELECT a.id, p.name FROM alerts a JOIN alert_acks k ON k.alert_id = a.id
           JOIN people p ON p.id = k.person_id
           WHERE a.inbox_id = ? AND k.action = 'handled' ORDER BY k.id LIMIT 1""",
        [message["id"]],
    ).fetchone()
    if handled is not None:
        raise UserError(
            f"这条上报引发的提醒 {handled[0]} 已由{handled[1]}处置，不能撤销。"
            "如记录有误，请发送更正，例如：更正 张三 36.5"
        )
    revoked = revoke_message(
        turn.ctx.db, message["id"], at=turn.at, actor=f"person:{turn.person['id']}"
    )
    subjects = {
        row["id"]: row
        for row in turn.ctx.db.query(
            f"SELECT * FROM subjects WHERE id IN ({','.join('?' * len(revoked))})",
            [r["subject_id"] for r in revoked],
        )
    }
    names = [subjects[r["subject_id"]]["name"] for r in revoked if r["subject_id"] in subjects]
    corrected = _void_alerts(turn, revoked, subjects)
    return (
        f"已撤销您{message['at'][11:16]}的上报：{'、'.join(dict.fromkeys(names))}。"
        f"如需重报请直接发送。{corrected}"
    )


def _short(text: str | None, limit: int = 12) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _void_alerts(turn: Turn, revoked: list[dict], subjects: dict[int, dict]) -> str:
    """An undone report that had raised an alert: its recipients hear what is on record now."""
    told: list[str] = []
    for row in revoked:
        subject = subjects.get(row["subject_id"])
        if subject is None or row["status"] not in ALERT_KINDS:
            continue
        day = dt.date.fromisoformat(row["date"])
        now = current_contact(turn.ctx.db, subject["id"], day, row["slot"])
        if now is not None and now["status"] == row["status"]:
            continue  # the report it had replaced says the same: the alert stands
        if now is None:
            on_record = f"{subject['name']} 暂无上报（已撤销）"
        else:
            reading = f" {now['temperature']:.1f}℃" if now["temperature"] is not None else ""
            on_record = f"{subject['name']}{reading} {STATUS_CN[now['status']]}"
        people = queue_corrections(
            turn, subject, day, row["slot"], row["status"], on_record, how="撤销"
        )
        told += [p["name"] for p in people]
    return f"已向{'、'.join(dict.fromkeys(told))}发送更正。" if told else ""


@command(
    "需求",
    "求助",
    roles={"member"},
    usage="需求 张三 买菜 — 登记生活物资/就医/心理疏导需求",
    takes_args=True,
)
def add_care_need(turn: Turn) -> str:
    if not turn.args:
        if "secretary" in turn.roles:
            from handlers.secretary_commands import list_needs

            return list_needs(turn)
        raise UserError("请写明是谁、需要什么，例如：需求 张三 买菜")
    day = monitoring_day(turn.at)
    subjects = member_subjects(turn.ctx.db, turn.person["id"], day)
    subject = next((s for s in subjects if turn.args.startswith(s["name"])), None)
    if subject is None:
        names = "、".join(s["name"] for s in subjects) or "（无）"
        raise UserError(f"请以您负责的监测对象姓名开头，例如：需求 张三 买菜。您负责：{names}")
    text = turn.args[len(subject["name"]) :].strip(" ：:，,")
    if not text:
        raise UserError(f"请写明需要什么，例如：需求 {subject['name']} 买菜")
    need = add_need(
        turn.ctx.db,
        subject["id"],
        text,
        turn.person["id"],
        turn.at,
        due_hours=turn.ctx.config.problem_due_hours,
    )
    owner = get_person(turn.ctx.db, need["owner_id"]) if need["owner_id"] else None
    who = "您" if owner is None or owner["id"] == turn.person["id"] else owner["name"]
    return (
        f"已登记需求 #{need['id']}（{need['kind']}）：{subject['name']} {text}。"
        f"由{who}包干负责，请于{time_label(need['due_at'])}前办结，"
        f"办结后回复“办结 {need['id']} 说明”；逾期将上交镇里督办。"
    )
