"""The unit tree: county → town → village → grid."""

from __future__ import annotations

import sqlite_utils

from storage.db import fetch_all, first


def get_unit(db: sqlite_utils.Database, code: str) -> dict | None:
    return first(fetch_all(db, "SELECT * FROM units WHERE code = ?", [code]), None)


def descendants(db: sqlite_utils.Database, code: str) -> list[str]:
    """The unit and every unit below it."""
    return [
        row["code"]
        for row in fetch_all(
            db,
            """WITH RECURSIVE tree(code) AS (
                   SELECT code FROM units WHERE code = ?
                   UNION ALL SELECT u.code FROM units u JOIN tree t ON u.parent = t.code)
               SELECT code FROM tree""",
            [code],
        )
    ]


def ancestors(db: sqlite_utils.Database, code: str) -> list[str]:
    """The unit and every unit above it, nearest first."""
    return [
        row["code"]
        for row in fetch_all(
            db,
            """WITH RECURSIVE up(code, parent, depth) AS (
                   SELECT code, parent, 0 FROM units WHERE code = ?
                   UNION ALL SELECT u.code, u.parent, up.depth + 1
                   FROM units u JOIN up ON u.code = up.parent)
               SELECT code FROM up ORDER BY depth""",
            [code],
        )
    ]


def village_of(db: sqlite_utils.Database, code: str) -> str | None:
    """The village a unit belongs to (itself for a village; None above village)."""
    for unit_code in ancestors(db, code):
        unit = get_unit(db, unit_code)
        if unit and unit["level"] == "village":
            return unit_code
    return None


def villages_under(db: sqlite_utils.Database, code: str) -> list[dict]:
    codes = descendants(db, code)
    marks = ",".join("?" * len(codes))
    return list(
        fetch_all(
            db,
            f"SELECT * FROM units WHERE level = 'village' AND code IN ({marks}) ORDER BY code",
            codes,
        )
    )
