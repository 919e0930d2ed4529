"""The care-needs ledger (生活物资 / 就医 / 心理疏导 / 其他), kept as a problem ledger
(问题台账, DESIGN §11): each need has an owner (包干负责, by default the subject's first
member), a level (village / town / county) and a due time by kind; overdue, it moves up
(schedules/escalation.py); 办结 N 说明 closes it with the note."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import sqlite_utils

from storage.audit import record_change
from storage.db import fetch_all

LEVELS = ("village", "town", "county")
LEVEL_CN = {"village": "村", "town": "镇", "county": "县"}
# DESIGN §11's default hours per kind (the config's problem_due_hours overrides them)
DUE_HOURS = {"生活物资": 24, "就医": 12, "心理疏导": 24, "其他": 48}

NEED_KINDS = ("生活物资", "就医", "心理疏导", "其他")
# what a closing note may say, per kind: the example in a hint (办结 3 已送菜上门)
CLOSING_EXAMPLE = {
    "生活物资": "已送菜上门",
    "就医": "已陪同就医",
    "心理疏导": "已上门谈心",
    "其他": "已办理",
}
# checked in this order: a medical or emotional need is the more urgent reading
_KEYWORDS = {
    "就医": ("看病", "就医", "药", "医院", "发烧", "体检", "孕检", "透析", "复查", "打针", "医生"),
    "心理疏导": (
        "心理", "情绪", "焦虑", "失眠", "害怕", "紧张", "烦", "聊天", "聊聊", "哭", "抑郁",
        "郁闷", "心情", "想不开", "睡不着",
    ),
    "生活物资": (
        "买菜", "蔬菜", "菜", "大米", "米", "面条", "面粉", "挂面", "食用油", "油盐", "肉",
        "蛋", "奶", "饮用水", "矿泉水", "桶装水", "送水", "买水", "物资", "生活用品", "煤气",
        "液化气", "快递", "日用", "口罩", "消毒", "尿不湿", "卫生纸", "纸巾", "粮",
    ),
}  # fmt: skip


def classify_need(text: str) -> str:
    for kind in NEED_KINDS[:3]:
        if kind in text:
            return kind
    for kind, words in _KEYWORDS.items():
        if any(word in text for word in words):
            return kind
    return "其他"


def due_after(hours: Mapping[str, int] | None, kind: str, start: dt.datetime) -> dt.datetime:
    """When a problem of this kind, taken on at `start`, is due."""
    table = DUE_HOURS | dict(hours or {})
    return start + dt.timedelta(hours=table.get(kind, table["其他"]))


def default_owner(db: sqlite_utils.Database, subject_id: int) -> int | None:
    """The subject's first member (包干负责)."""
    row = db.execute(
        "SELECT person_id FROM assignments WHERE subject_id = ? ORDER BY position LIMIT 1",
        [subject_id],
    ).fetchone()
    return row[0] if row else None


def add_need(
    db: sqlite_utils.Database,
    subject_id: int,
    text: str,
    person_id: int,
    now: dt.datetime,
    due_hours: Mapping[str, int] | None = None,
) -> dict:
    kind = classify_need(text)
    due = due_after(due_hours, kind, now)
    owner = default_owner(db, subject_id) or person_id
    need_id = (
        db["needs"]
        .insert(
            {
                "subject_id": subject_id,
                "kind": kind,
                "text": text,
                "status": "open",
                "created_by": person_id,
                "created_at": now.isoformat(timespec="seconds"),
                "owner_id": owner,
                "level": "village",
                "due_at": due.isoformat(timespec="seconds"),
            }
        )
        .last_pk
    )
    record_change(
        db,
        now,
        f"person:{person_id}",
        "needs",
        need_id,
        "create",
        None,
        {"kind": kind, "text": text},
    )
    return {"id": need_id, "kind": kind, "text": text, "owner_id": owner, "due_at": due}


_PROBLEM = """SELECT n.*, s.name AS subject, s.unit, s.category, o.name AS owner,
                     p.name AS creator, q.name AS closer
              FROM needs n JOIN subjects s ON s.id = n.subject_id
              LEFT JOIN people o ON o.id = n.owner_id
              LEFT JOIN people p ON p.id = n.created_by
              LEFT JOIN people q ON q.id = n.closed_by"""


def get_problem(db: sqlite_utils.Database, number: int) -> dict | None:
    """One problem by its number, whatever its status."""
    found = fetch_all(db, f"{_PROBLEM} WHERE n.id = ?", [number])
    return found[0] if found else None


def open_needs(db: sqlite_utils.Database, units: Sequence[str]) -> list[dict]:
    marks = ",".join("?" * len(units))
    return fetch_all(
        db,
        f"{_PROBLEM} WHERE n.status = 'open' AND s.unit IN ({marks}) ORDER BY n.id",
        list(units),
    )


def overdue_needs(db: sqlite_utils.Database, now: dt.datetime) -> list[dict]:
    """Open problems whose due time has passed as of `now` (stamps in `now`'s zone compare
    as text, which the index serves; the check in Python decides)."""
    stamp = now.isoformat(timespec="seconds")
    return [
        need
        for need in fetch_all(
            db,
            f"{_PROBLEM} WHERE n.status = 'open' AND n.due_at IS NOT NULL"
            " AND (n.due_at < ? OR substr(n.due_at, 20) != ?) ORDER BY n.id",
            [stamp, stamp[19:]],
        )
        if dt.datetime.fromisoformat(need["due_at"]) < now
    ]


def is_overdue(need: dict, now: dt.datetime) -> bool:
    return (
        need["status"] == "open"
        and bool(need.get("due_at"))
        and dt.datetime.fromisoformat(need["due_at"]) < now
    )


def close_need(
    db: sqlite_utils.Database, need_id: int, person_id: int, now: dt.datetime, note: str = ""
) -> None:
    db.execute(
        "UPDATE needs SET status = 'closed', closed_by = ?, closed_at = ?, note = ? WHERE id = ?",
        [person_id, now.isoformat(timespec="seconds"), note, need_id],
    )
    record_change(
        db,
        now,
        f"person:{person_id}",
        "needs",
        need_id,
        "close",
        {"status": "open"},
        {"status": "closed", "note": note},
    )


def problem_item(need: dict, now: dt.datetime) -> dict:
    """One problem as the weekly pack and the ledger export list it."""
    return {
        "id": need["id"],
        "subject": need["subject"],
        "kind": need["kind"],
        "text": need["text"],
        "owner": need.get("owner") or "",
        "level": need.get("level") or "village",
        "opened_at": need["created_at"],
        "due_at": need.get("due_at"),
        "status": need["status"],
        "overdue": is_overdue(need, now),
        "closed_at": need.get("closed_at"),
        "closed_by": need.get("closer") or "",
        "note": need.get("note") or "",
    }


def problems(db: sqlite_utils.Database, units: Sequence[str]) -> list[dict]:
    """Every problem of the units' subjects: open ones first, newest first."""
    marks = ",".join("?" * len(units))
    return fetch_all(
        db,
        f"{_PROBLEM} WHERE s.unit IN ({marks}) ORDER BY n.status = 'closed', n.id DESC",
        list(units),
    )


def problems_by_unit(db: sqlite_utils.Database) -> dict[str, list[dict]]:
    """Every problem, by its subject's unit, oldest first (the weekly job's packs read them
    once, not once per unit: each read scanned the whole ledger)."""
    found: dict[str, list[dict]] = {}
    for need in fetch_all(db, f"{_PROBLEM} ORDER BY n.id"):
        found.setdefault(need["unit"], []).append(need)
    return found


def week_problems(
    db: sqlite_utils.Database,
    unit: str,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    by_unit: tuple[dict[str, list[dict]], list[str]] | None = None,
) -> dict:
    """The problem ledger of a unit's tree for the weekly pack (DESIGN §11): `opened` and
    `closed` in [start, end]; `open` and `overdue` at the week's end (or `now`, for the week
    still running); `items` are the problems opened or closed in the week or open at its end, oldest
    first, each as it stands now (owner, level, status, note)."""
    from storage.units import descendants

    week_end = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=now.tzinfo)
    as_of = min(now, week_end)
    first, last = start.isoformat(), (end + dt.timedelta(days=1)).isoformat()

    def within(stamp: str | None) -> bool:
        return stamp is not None and first <= stamp[:10] < last

    def before(stamp: str | None) -> bool:
        return stamp is not None and dt.datetime.fromisoformat(stamp) < as_of

    def open_then(need: dict) -> bool:
        return before(need["created_at"]) and not before(need["closed_at"])

    if by_unit is None:
        found = sorted(problems(db, descendants(db, unit)), key=lambda n: n["id"])
    else:  # (problems_by_unit, the unit's descendants)
        kept, units = by_unit
        found = sorted((n for code in units for n in kept.get(code, [])), key=lambda n: n["id"])
    return {
        "opened": sum(1 for n in found if within(n["created_at"])),
        "closed": sum(1 for n in found if n["status"] == "closed" and within(n["closed_at"])),
        "open": sum(1 for n in found if open_then(n)),
        "overdue": sum(1 for n in found if open_then(n) and before(n["due_at"])),
        "items": [
            problem_item(n, now)
            for n in found
            if within(n["created_at"]) or within(n["closed_at"]) or open_then(n)
        ],
    }
