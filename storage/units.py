"""The unit tree: county → town → village → grid."""

from __future__ import annotations

import sqlite_utils

from storage.db import fetch_all, first

# The tree has four levels (county → town → village → grid) and import refuses a cycle; every
# recursive query still stops this deep, so a cycle that got in some other way (a hand edit)
# cannot make a query run forever.
MAX_DEPTH = 8


def get_unit(db: sqlite_utils.Database, code: str) -> dict | None:
    return first(fetch_all(db, "SELECT * FROM units WHERE code = ?", [code]), None)


def descendants(db: sqlite_utils.Database, code: str) -> list[str]:
    """The unit and every unit below it."""
    return [
        row["code"]
        for row in fetch_all(
            db,
            f"""WITH RECURSIVE tree(code, depth) AS (
                   SELECT code, 0 FROM units WHERE code = ?
                   UNION ALL SELECT u.code, t.depth + 1 FROM units u JOIN tree t
                   ON u.parent = t.code WHERE t.depth < {MAX_DEPTH})
               SELECT code FROM tree GROUP BY code ORDER BY min(depth), code""",
            [code],
        )
    ]


def ancestors(db: sqlite_utils.Database, code: str) -> list[str]:
    """The unit and every unit above it, nearest first."""
    return [
        row["code"]
        for row in fetch_all(
            db,
            f"""WITH RECURSIVE up(code, parent, depth) AS (
                   SELECT code, parent, 0 FROM units WHERE code = ?
                   UNION ALL SELECT u.code, u.parent, up.depth + 1
                   FROM units u JOIN up ON u.code = up.parent WHERE up.depth < {MAX_DEPTH})
               SELECT code FROM up GROUP BY code ORDER BY min(depth)""",
            [code],
        )
    ]


def village_of(db: sqlite_utils.Database, code: str) -> str | None:
    """The village a unit belongs to (itself for a village; None above village)."""
    row = db.conn.execute(
        f"""WITH RECURSIVE up(code, parent, level, depth) AS (
               SELECT code, parent, level, 0 FROM units WHERE code = ?
               UNION ALL SELECT u.code, u.parent, u.level, up.depth + 1
               FROM units u JOIN up ON u.code = up.parent WHERE up.depth < {MAX_DEPTH})
           SELECT code FROM up WHERE level = 'village' ORDER BY depth LIMIT 1""",
        [code],
    ).fetchone()
    return row[0] if row else None


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
