"""Digests as they were sent: what a secretary was told stays readable as it was told."""

from __future__ import annotations

import datetime as dt
import json

import sqlite_utils


def keep_digest(
    db: sqlite_utils.Database,
    unit: str,
    day: dt.date,
    report: int,
    digest: dict,
    now: dt.datetime,
) -> None:
    """Keep a digest the schedule sent (the first one kept for a report stays)."""
    db.execute(
        "INSERT OR IGNORE INTO digests_sent (unit, date, report, body, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            unit,
            day.isoformat(),
            report,
            json.dumps(digest, ensure_ascii=False),
            now.isoformat(timespec="seconds"),
        ],
    )


def sent_digest(db: sqlite_utils.Database, unit: str, day: dt.date, report: int) -> dict | None:
    row = db.execute(
        "SELECT body FROM digests_sent WHERE unit = ? AND date = ? AND report = ?",
        [unit, day.isoformat(), report],
    ).fetchone()
    return json.loads(row[0]) if row else None
