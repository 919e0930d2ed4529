"""Seeding reports the way the routine tests need them (no chat, straight into storage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlite_utils

from storage.contacts import NewContact, record_contacts


def ids(db: sqlite_utils.Database, table: str) -> dict[str, int]:
    """Name → id for people or subjects."""
    return {row["name"]: row["id"] for row in db.query(f"SELECT id, name FROM {table}")}


def report(
    db: sqlite_utils.Database,
    names: Sequence[str],
    slot: str,
    when: dt.datetime,
    member: str,
    status: str = "normal",
    temperature: float | None = 36.5,
    symptoms: Sequence[str] = (),
) -> None:
    """`member` reports `names` for `slot` at `when` (the date is `when`'s)."""
    subjects, people = ids(db, "subjects"), ids(db, "people")
    record_contacts(
        db,
        [NewContact(subjects[name], temperature, status, symptoms) for name in names],
        day=when.date(),
        slot=slot,
        member_id=people[member],
        at=when,
        inbox_id=None,
        actor="test",
    )
