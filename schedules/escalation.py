"""Escalation (DESIGN §11), run with every firing of the schedule (each minute) and by `tick`.

An alert nobody acknowledged `escalate_after` minutes after it was raised goes one level up
(the monitors of the nearest unit above the village that has any: the town's, else the
county's), after twice that to the next such level. Each step is a send key (kind
`escalation`, the alert, the person): a run sends what is due and not yet sent, so a
catch-up after downtime sends each step once, and nothing twice. An acknowledged alert, or
one a correction voided, is no longer open and never escalates. Alerts raised more than
`WINDOW` ago are left alone: after a long downtime a county is not woken for last week.

A problem (需求) still open past its due time moves one level up (村 → 镇 → 县), to the
first monitor (else secretary) there, who is told (kind `escalation`); its due time restarts
from the move. That write and its message go together in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlite_utils

from bot.config import Config
from handlers.dates import time_label
from schedules.digest import ABOVE_VILLAGE, UnitTree
from schedules.jobs import Send, person_target
from storage.alerts import open_alerts, recipient_names
from storage.audit import record_change
from storage.db import fetch_all, transaction
from storage.needs import CLOSING_EXAMPLE, LEVEL_CN, LEVELS, due_after, overdue_needs
from storage.outbox import claimed, queue_send, send_key
from storage.people import roles_of

WINDOW = dt.timedelta(hours=24)
KIND_CN = {"abnormal": "异常", "unreachable": "联系不上", "absent": "不在隔离点"}


def _people_at(db: sqlite_utils.Database) -> dict[str, list[dict]]:
    """Active people by their unit, of the units above villages (the only ones escalation
    reaches: not a province's 100,000 members at every firing)."""
    found: dict[str, list[dict]] = {}
    marks = ",".join("?" * len(ABOVE_VILLAGE))
    for person in fetch_all(
        db,
        "SELECT * FROM people WHERE active"
        f" AND unit IN (SELECT code FROM units WHERE level IN ({marks})) ORDER BY id",
        list(ABOVE_VILLAGE),
    ):
        found.setdefault(person["unit"], []).append(person)
    return found


def _levels_up(tree: UnitTree, unit: str, people: dict[str, list[dict]], role: str) -> list[str]:
    """The units above the subject's village (town, county, nearest first) where someone
    holds `role`."""
    village = tree.village_of(unit)
    above = [c for c in tree.ancestors(village or unit) if tree.units[c].level in ABOVE_VILLAGE]
    return [c for c in above if any(role in roles_of(p) for p in people.get(c, []))]


def escalation_text(
    alert: dict, step: int, minutes: int, unit_name: str, told: Iterable[str]
) -> str:
    n = alert["id"]
    raised = dt.datetime.fromisoformat(alert["raised_at"])
    names = "、".join(told)
    return "\n".join(
        [
            f"【督办·{KIND_CN[alert['kind']]}】提醒编号 {n} 已 {minutes} 分钟无人确认"
            f"（{raised:%H:%M} 发出，第{'一二'[step - 1]}次升级至{unit_name}）：",
            alert["summary"] + "。",
            *([f"已通知{names}，尚无人按编号确认。"] if names else []),
            f"请督促核实处置，并回复“收到 {n}”或“已处置 {n} 说明”。",
        ]
    )


def escalate_alerts(db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime) -> int:
    """Send every escalation step that is due and not sent; how many messages (reads only)."""
    after = dt.timedelta(minutes=config.escalate_after)
    alerts = open_alerts(
        db, (now - WINDOW).astimezone(config.tz), (now - after).astimezone(config.tz)
    )
    if not alerts:
        return 0
    tree = UnitTree.load(db)
    people = _people_at(db)
    sent = 0
    for alert in alerts:
        raised = dt.datetime.fromisoformat(alert["raised_at"])
        levels = _levels_up(tree, alert["unit"], people, "monitor")
        if not _pending(db, alert, levels, people, raised, after, now):
            continue  # every step due is sent: nothing more to read
        told = recipient_names(db, alert["id"])
        minutes = int((now - raised).total_seconds() // 60)  # a catch-up says how long really
        # in a few words, the village's view of the alert's day, its number (WeCom's buttons)
        village = tree.village_of(alert["unit"]) or alert["unit"]
        summary = f"{alert['subject']} {KIND_CN[alert['kind']]} {minutes}分钟无人确认"
        about = {"title": "督办提醒", "summary": summary, "page": "view", "unit": village}
        about |= {"day": alert["date"], "alert": alert["id"]}
        for step, unit in enumerate(levels[:2], start=1):
            if raised + step * after > now:
                break
            monitors = [p for p in people[unit] if "monitor" in roles_of(p)]
            text = escalation_text(alert, step, minutes, tree.units[unit].name, told.values())
            for person in monitors:
                if person["id"] in told:
                    continue  # had the alert itself (an absent subject's monitors)
                key = send_key(
                    kind="escalation",
                    target=f"alert:{alert['id']}/{person_target(person)}",
                    day=raised.date(),
                    slot=f"step{step}",
                )
                sent += int(send(person, "escalation", text, key, card=about))
    return sent


def _pending(
    db: sqlite_utils.Database,
    alert: dict,
    levels: list[str],
    people: dict[str, list[dict]],
    raised: dt.datetime,
    after: dt.timedelta,
    now: dt.datetime,
) -> bool:
    """Whether a step of the alert is due with a key not claimed (an open alert is looked at
    every minute for a day, long after its steps went)."""
    for step, unit in enumerate(levels[:2], start=1):
        if raised + step * after > now:
            break
        for person in people[unit]:
            if "monitor" not in roles_of(person):
                continue
            key = send_key(
                kind="escalation",
                target=f"alert:{alert['id']}/{person_target(person)}",
                day=raised.date(),
                slot=f"step{step}",
            )
            if not claimed(db, key, now):
                return True
    return False


def _owner_at(unit: str, people: dict[str, list[dict]]) -> dict | None:
    """Who takes a problem over at a unit: its first monitor, else its first secretary."""
    for role in ("monitor", "secretary"):
        for person in people.get(unit, []):
            if role in roles_of(person):
                return person
    return None


def problem_text(need: dict, owner: dict, level: str, due: dt.datetime, was: str) -> str:
    n = need["id"]
    return "\n".join(
        [
            f"【问题台账·逾期上交】#{n} {need['subject']}（{need['kind']}）{need['text']}",
            f"登记于{time_label(need['created_at'])}，{was}未办结，"
            f"现转由{LEVEL_CN[level]}级{owner['name']}包干负责，请于{time_label(due)}前办结。",
            f"办结后请回复“办结 {n} 说明”，"
            f"例如：办结 {n} {CLOSING_EXAMPLE.get(need['kind'], '已办理')}",
        ]
    )


def escalate_problems(db: sqlite_utils.Database, config: Config, now: dt.datetime) -> int:
    """Move every overdue open problem one level up and tell its new owner; how many moved.
    A problem already at the top (or with nobody above) stays where it is."""
    overdue = overdue_needs(db, now)
    if not overdue:
        return 0
    tree = UnitTree.load(db)
    people = _people_at(db)
    moved = 0
    for need in overdue:
        level = need["level"] or "village"
        village = tree.village_of(need["unit"]) or need["unit"]
        above = [
            c
            for c in tree.ancestors(village)
            if tree.units[c].level in ABOVE_VILLAGE
            and LEVELS.index(_level_of(tree, c)) > LEVELS.index(level)
        ]
        target = next(((c, o) for c in above if (o := _owner_at(c, people)) is not None), None)
        if target is None:
            continue
        unit, owner = target
        new_level = _level_of(tree, unit)
        due = due_after(config.problem_due_hours, need["kind"], now)
        was = f"已逾期（应于{time_label(need['due_at'])}前）" if need["due_at"] else "已逾期"
        with transaction(db):
            changed = db.execute(
                """UPDATE needs SET owner_id = ?, level = ?, due_at = ?, moved_at = ?
                   WHERE id = ? AND status = 'open' AND due_at = ?""",
                [
                    owner["id"],
                    new_level,
                    due.isoformat(timespec="seconds"),
                    now.isoformat(timespec="seconds"),
                    need["id"],
                    need["due_at"],
                ],
            ).rowcount
            if not changed:  # closed or moved meanwhile
                continue
            record_change(
                db,
                now,
                "schedule",
                "needs",
                need["id"],
                "escalate",
                {"owner_id": need["owner_id"], "level": level, "due_at": need["due_at"]},
                {"owner_id": owner["id"], "level": new_level, "due_at": due.isoformat()},
            )
            queue_send(
                db,
                at=now,
                person=owner,
                kind="escalation",
                text=problem_text(need, owner, new_level, due, was),
                key=send_key(
                    kind="escalation",
                    target=f"need:{need['id']}/{person_target(owner)}",
                    day=now.date(),
                    slot=new_level,
                ),
                now=now,
            )
        moved += 1
    return moved


def _level_of(tree: UnitTree, code: str) -> str:
    level = tree.units[code].level
    return level if level in LEVELS else "village"
