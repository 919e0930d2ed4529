"""The report ledger: one row per current report, for `gridwatch ledger`, the Excel download and
the secretary view (the problem ledger, 问题台账, is storage/needs.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import sqlite_utils

from storage.units import descendants

SLOT_ORDER = {"morning": 0, "noon": 1, "evening": 2}
LEDGER_COLUMNS = (
    "date",
    "slot",
    "unit",
    "subject",
    "category",
    "member",
    "temperature",
    "status",
    "symptoms",
    "reported_at",
    "late",
)
LEDGER_HEADERS_CN = {
    "date": "日期",
    "slot": "时段",
    "unit": "单位",
    "subject": "监测对象",
    "category": "类别",
    "member": "网格员",
    "temperature": "体温",
    "status": "状态",
    "symptoms": "症状",
    "reported_at": "上报时间",
    "late": "迟报",
}


def ledger_rows(
    db: sqlite_utils.Database,
    *,
    deadlines: Mapping[str, dt.time],
    tz: dt.tzinfo,
    unit: str | None = None,
    day: dt.date | None = None,
) -> list[dict]:
    """Current reports, optionally for one unit's tree and one date, in date/slot/roster order."""
    where, params = ["c.current = 1"], []
    if unit is not None:
        codes = descendants(db, unit)
        where.append(f"s.unit IN ({','.join('?' * len(codes))})")
        params.extend(codes)
    if day is not None:
        where.append("c.date = ?")
        params.append(day.isoformat())
    rows = []
    for row in db.query(
        f"""SELECT c.date, c.slot, s.unit, s.name AS subject, s.category, p.name AS member,
                   c.temperature, c.status, c.symptoms, c.reported_at, s.id AS subject_id
            FROM contacts c JOIN subjects s ON s.id = c.subject_id
            LEFT JOIN people p ON p.id = c.member_id
            WHERE {" AND ".join(where)}""",
        params,
    ):
        date = dt.date.fromisoformat(row["date"])
        deadline = dt.datetime.combine(date, deadlines[row["slot"]], tzinfo=tz)
        reported = dt.datetime.fromisoformat(row["reported_at"])
        if reported.tzinfo is None:
            reported = reported.replace(tzinfo=tz)
        rows.append(
            {
                "date": row["date"],
                "slot": row["slot"],
                "unit": row["unit"],
                "subject": row["subject"],
                "category": row["category"],
                "member": row["member"] or "",
                "temperature": row["temperature"],
                "status": row["status"],
                "symptoms": [s for s in row["symptoms"].split("、") if s],
                "reported_at": row["reported_at"],
                "late": reported > deadline,
                "_order": (row["date"], SLOT_ORDER[row["slot"]], row["subject_id"]),
            }
        )
    rows.sort(key=lambda r: r.pop("_order"))
    return rows
