"""Subjects under monitoring and who is assigned to them."""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from storage.units import descendants

# Active is derived from dates and status, never from whether a job ran. A status other than
# active ends monitoring from released_on on (the day it was set).
ACTIVE_ON = (
    "(s.start_date <= :day AND s.end_date >= :day"
    " AND (s.status = 'active' OR (s.released_on IS NOT NULL AND :day < s.released_on)))"
)


def member_subjects(db: sqlite_utils.Database, person_id: int, day: dt.date) -> list[dict]:
    """A member's active assigned subjects on `day`, in roster order."""
    return list(
        db.query(
            f"""SELECT s.* FROM subjects s JOIN assignments a ON a.subject_id = s.id
                WHERE a.person_id = :person AND {ACTIVE_ON}
                ORDER BY s.id""",
            {"person": person_id, "day": day.isoformat()},
        )
    )


def unit_subjects(db: sqlite_utils.Database, unit: str, day: dt.date) -> list[dict]:
    """Active subjects of a unit and everything below it, in roster order."""
    codes = descendants(db, unit)
    params: dict[str, object] = {"day": day.isoformat()}
    params.update({f"u{i}": code for i, code in enumerate(codes)})
    marks = ",".join(f":u{i}" for i in range(len(codes)))
    return list(
        db.query(
            f"SELECT s.* FROM subjects s WHERE s.unit IN ({marks}) AND {ACTIVE_ON} ORDER BY s.id",
            params,
        )
    )


def find_subjects_by_name(db: sqlite_utils.Database, unit: str, name: str) -> list[dict]:
    """Subjects (any status) with this name in a unit's tree, newest first."""
    codes = descendants(db, unit)
    marks = ",".join("?" * len(codes))
    return list(
        db.query(
            f"SELECT * FROM subjects WHERE name = ? AND unit IN ({marks}) ORDER BY start_date DESC",
            [name, *codes],
        )
    )


def subject_members(db: sqlite_utils.Database, subject_id: int) -> list[dict]:
    return list(
        db.query(
            """SELECT p.* FROM people p JOIN assignments a ON a.person_id = p.id
               WHERE a.subject_id = ? ORDER BY a.position""",
            [subject_id],
        )
    )
