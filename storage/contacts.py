"""Contact reports: one current row per subject, date and slot; every earlier row kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlite_utils

from storage.audit import record_change
from storage.db import fetch_all, first, insert_row, insert_rows, transaction


@dataclass(frozen=True)
class NewContact:
    subject_id: int
    temperature: float | None
    status: str
    symptoms: Sequence[str]
    note: str = ""
    # a report sent before the current one (handled late, or again after a failure): kept in
    # the history under that one, which stays current (the later report wins, DESIGN §3)
    superseded_by: int | None = None


def record_contacts(
    db: sqlite_utils.Database,
    contacts: Sequence[NewContact],
    *,
    day: dt.date,
    slot: str,
    member_id: int | None,
    at: dt.datetime,
    inbox_id: int | None,
    actor: str,
    current: dict[tuple[int, str], dict] | None = None,
) -> list[int]:
    """Store reports; each replaces the current one for its subject, date and slot.

    `current`, the day's current rows by (subject_id, slot) when the caller read them already
    in this transaction, saves reading them again.

    The contacts table is the reports' history (rows are never deleted; a replaced row keeps
    `replaced_by`), so only replacements also go to the audit table.
    """
    stamp = at.isoformat(timespec="seconds")

    def row(contact: NewContact, current: int) -> dict[str, object]:
        return {
            "subject_id": contact.subject_id,
            "date": day.isoformat(),
            "slot": slot,
            "member_id": member_id,
            "temperature": contact.temperature,
            "status": contact.status,
            "symptoms": "、".join(contact.symptoms),
            "note": contact.note,
            "reported_at": stamp,
            "inbox_id": inbox_id,
            "current": current,
            "replaced_by": contact.superseded_by,
        }

    # Rows that replace nothing go in together, one statement for the lot (this runs under
    # the write lock: a member's five subjects were five statements there); a replacement
    # writes the rows waiting before it, so the ids keep the order of `contacts`.
    ids: list[int] = []
    waiting: list[NewContact] = []
    waiting_current: set[int] = set()  # subjects of `waiting` that become current

    def insert_waiting() -> None:
        new_ids = insert_rows(
            db, "contacts", [row(c, int(c.superseded_by is None)) for c in waiting]
        )
        for contact, new_id in zip(waiting, new_ids, strict=True):
            if contact.superseded_by is None:
                previous[(contact.subject_id, slot)] = {
                    "id": new_id,
                    "status": contact.status,
                    "temperature": contact.temperature,
                }
        ids.extend(new_ids)
        waiting.clear()
        waiting_current.clear()

    with transaction(db):
        previous = (
            dict(current)
            if current is not None
            else contacts_on(db, [c.subject_id for c in contacts], day)
        )
        for contact in contacts:
            current_one = contact.superseded_by is None
            if current_one and contact.subject_id in waiting_current:
                insert_waiting()  # the same subject twice in one message: the second replaces
            before = previous.get((contact.subject_id, slot)) if current_one else None
            if before is None:
                waiting.append(contact)
                if current_one:
                    waiting_current.add(contact.subject_id)
                continue
            if waiting:
                insert_waiting()
            db.execute("UPDATE contacts SET current = 0 WHERE id = ?", [before["id"]])
            new_id = insert_row(db, "contacts", row(contact, current=1))
            db.execute("UPDATE contacts SET replaced_by = ? WHERE id = ?", [new_id, before["id"]])
            record_change(
                db,
                at,
                actor,
                "contacts",
                new_id,
                "replace",
                {
                    "id": before["id"],
                    "status": before["status"],
                    "temperature": before["temperature"],
                },
                {"status": contact.status, "temperature": contact.temperature},
            )
            previous[(contact.subject_id, slot)] = {
                "id": new_id,
                "status": contact.status,
                "temperature": contact.temperature,
            }
            ids.append(new_id)
        if waiting:
            insert_waiting()
    return ids


def current_contact(
    db: sqlite_utils.Database, subject_id: int, day: dt.date, slot: str
) -> dict | None:
    return first(
        fetch_all(
            db,
            "SELECT * FROM contacts WHERE subject_id = ? AND date = ? AND slot = ? AND current = 1",
            [subject_id, day.isoformat(), slot],
        ),
        None,
    )


def revoke_message(
    db: sqlite_utils.Database, inbox_id: int, *, at: dt.datetime, actor: str
) -> list[dict]:
    """Undo the records of one message: each current row goes, the one it replaced returns."""
    revoked = []
    with transaction(db):
        rows = list(
            fetch_all(db, "SELECT * FROM contacts WHERE inbox_id = ? AND current = 1", [inbox_id])
        )
        for row in rows:
            db.execute("UPDATE contacts SET current = 0, revoked = 1 WHERE id = ?", [row["id"]])
            previous = first(
                fetch_all(
                    db, "SELECT id FROM contacts WHERE replaced_by = ? AND revoked = 0", [row["id"]]
                ),
                None,
            )
            if previous:
                db.execute("UPDATE contacts SET current = 1 WHERE id = ?", [previous["id"]])
            record_change(
                db, at, actor, "contacts", row["id"], "revoke", {"status": row["status"]}, None
            )
            revoked.append(row)
    return revoked


def contacts_on(
    db: sqlite_utils.Database, subject_ids: Iterable[int], day: dt.date
) -> dict[tuple[int, str], dict]:
    """Current contacts of the given subjects on a day, keyed by (subject_id, slot)."""
    found: dict[tuple[int, str], dict] = {}
    ids = list(subject_ids)
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        for row in fetch_all(
            db,
            f"SELECT * FROM contacts WHERE current = 1 AND date = ? AND subject_id IN ({marks})",
            [day.isoformat(), *chunk],
        ):
            found[(row["subject_id"], row["slot"])] = row
    return found


def subject_history(
    db: sqlite_utils.Database, subject_id: int, since: dt.date | None = None
) -> list[dict]:
    """Current contacts of one subject, oldest first, with the reporting member's name."""
    return list(
        fetch_all(
            db,
            """SELECT c.*, p.name AS member FROM contacts c LEFT JOIN people p ON p.id = c.member_id
               WHERE c.subject_id = ? AND c.current = 1 AND c.date >= ?
               ORDER BY c.date, CASE c.slot WHEN 'morning' THEN 0 WHEN 'noon' THEN 1 ELSE 2 END""",
            [subject_id, since.isoformat() if since else ""],
        )
    )
