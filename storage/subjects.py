"""Subjects under monitoring and who is assigned to them."""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from storage.db import fetch_all
from storage.units import MAX_DEPTH, descendants

# Active is derived from dates and status, never from whether a job ran. A status other than
# active ends monitoring from released_on on (the day it was set).
ACTIVE_ON = (
    "(s.start_date <= :day AND s.end_date >= :day"
    " AND (s.status = 'active' OR (s.released_on IS NOT NULL AND :day < s.released_on)))"
)


# a member's active assigned subjects on :day, in roster order
_ASSIGNED = f"""FROM subjects s JOIN assignments a ON a.subject_id = s.id
    WHERE a.person_id = :person AND {ACTIVE_ON} ORDER BY s.id"""


def member_subjects(db: sqlite_utils.Database, person_id: int, day: dt.date) -> list[dict]:
    """A member's active assigned subjects on `day`, in roster order."""
    params = {"person": person_id, "day": day.isoformat()}
    return fetch_all(db, f"SELECT s.* {_ASSIGNED}", params)


def member_subject_ids(db: sqlite_utils.Database, person_id: int, day: dt.date) -> list[int]:
    """The ids of `member_subjects`, in the same order."""
    params = {"person": person_id, "day": day.isoformat()}
    return [row[0] for row in db.execute(f"SELECT s.id {_ASSIGNED}", params)]


_BRIEF = "s.id, s.name, s.unit, s.category, s.address"  # what reading a report needs


def subjects_by_ids(db: sqlite_utils.Database, ids: set[int]) -> list[dict]:
    """Subjects (the brief columns) by id."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return fetch_all(db, f"SELECT {_BRIEF} FROM subjects s WHERE s.id IN ({marks})", sorted(ids))


def unit_subjects(db: sqlite_utils.Database, unit: str, day: dt.date) -> list[dict]:
    """Active subjects of a unit and everything below it, in roster order."""
    codes = descendants(db, unit)
    params: dict[str, object] = {"day": day.isoformat()}
    params.update({f"u{i}": code for i, code in enumerate(codes)})
    marks = ",".join(f":u{i}" for i in range(len(codes)))
    return list(
        fetch_all(
            db,
            f"SELECT s.* FROM subjects s WHERE s.unit IN ({marks}) AND {ACTIVE_ON} ORDER BY s.id",
            params,
        )
    )


def village_subjects(db: sqlite_utils.Database, unit: str, day: dt.date) -> list[dict]:
    """Active subjects (id, name, unit, category, address) of the village `unit` belongs to
    (a village or one of its grids): the names a member may report for another (多对一)."""
    return fetch_all(
        db,
        f"""WITH RECURSIVE up(code, parent, level, depth) AS (
                SELECT code, parent, level, 0 FROM units WHERE code = :unit
                UNION ALL SELECT u.code, u.parent, u.level, up.depth + 1
                FROM units u JOIN up ON u.code = up.parent WHERE up.depth < {MAX_DEPTH}),
            tree(code, depth) AS (
                SELECT code, 0 FROM up WHERE level = 'village'
                UNION ALL SELECT u.code, t.depth + 1 FROM units u JOIN tree t
                ON u.parent = t.code WHERE t.depth < {MAX_DEPTH})
            SELECT {_BRIEF} FROM subjects s
            WHERE s.unit IN (SELECT code FROM tree) AND {ACTIVE_ON}
            ORDER BY s.id""",
        {"unit": unit, "day": day.isoformat()},
    )


def find_subjects_by_name(db: sqlite_utils.Database, unit: str, name: str) -> list[dict]:
    """Subjects (any status) with this name in a unit's tree, newest first."""
    codes = descendants(db, unit)
    marks = ",".join("?" * len(codes))
    return list(
        fetch_all(
            db,
            f"SELECT * FROM subjects WHERE name = ? AND unit IN ({marks}) ORDER BY start_date DESC",
            [name, *codes],
        )
    )


def subject_names(db: sqlite_utils.Database, unit: str) -> tuple[str, ...]:
    """Every subject name (any status) in a unit's tree, once each, sorted."""
    codes = descendants(db, unit)
    marks = ",".join("?" * len(codes))
    rows = db.execute(
        f"SELECT DISTINCT name FROM subjects WHERE unit IN ({marks}) ORDER BY name", codes
    )
    return tuple(row[0] for row in rows)


def subject_members(db: sqlite_utils.Database, subject_id: int) -> list[dict]:
    return list(
        fetch_all(
            db,
            """SELECT p.* FROM people p JOIN assignments a ON a.person_id = p.id
               WHERE a.subject_id = ? ORDER BY a.position""",
            [subject_id],
        )
    )
