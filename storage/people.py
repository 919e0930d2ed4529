"""People of the roster and their roles."""

from __future__ import annotations

import sqlite_utils

from storage.db import fetch_all, first
from storage.units import ancestors, descendants


def roles_of(person: dict) -> set[str]:
    return {role for role in (person.get("roles") or "").split(",") if role}


def person_by_wechat_id(db: sqlite_utils.Database, wechat_id: str) -> dict | None:
    return first(
        fetch_all(db, "SELECT * FROM people WHERE wechat_id = ? AND active", [wechat_id]), None
    )


def get_person(db: sqlite_utils.Database, person_id: int) -> dict | None:
    return first(fetch_all(db, "SELECT * FROM people WHERE id = ?", [person_id]), None)


def people_with_role(db: sqlite_utils.Database, role: str, units: list[str]) -> list[dict]:
    """Active people holding `role` whose unit is one of `units`."""
    if not units:
        return []
    marks = ",".join("?" * len(units))
    return [
        person
        for person in fetch_all(
            db, f"SELECT * FROM people WHERE active AND unit IN ({marks}) ORDER BY id", units
        )
        if role in roles_of(person)
    ]


def secretaries_of(db: sqlite_utils.Database, village: str) -> list[dict]:
    """The village's secretaries (people with the role at the village or one of its grids)."""
    return people_with_role(db, "secretary", descendants(db, village))


def monitors_for(db: sqlite_utils.Database, unit: str) -> list[dict]:
    """Monitors responsible for a unit: those at the unit, its grids, or any unit above."""
    return people_with_role(
        db, "monitor", sorted(set(ancestors(db, unit)) | set(descendants(db, unit)))
    )


def medics_for(db: sqlite_utils.Database, unit: str) -> list[dict]:
    """Medics of the unit and its ancestors (DESIGN §2)."""
    return people_with_role(db, "medic", ancestors(db, unit))
