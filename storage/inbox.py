"""Every inbound message, stored raw before it is handled, with its outcome."""

from __future__ import annotations

import datetime as dt
import sqlite3

import sqlite_utils

from storage.db import fetch_all, first, insert_row, update_row


class DuplicateMessage(Exception):
    "This message (same MsgId / event key) was stored already."

    def __init__(self, existing: dict) -> None:
        super().__init__(existing["id"])
        self.existing = existing


def store_inbound(
    db: sqlite_utils.Database,
    *,
    at: dt.datetime,
    received_at: dt.datetime,
    channel: str,
    sender: str,
    text: str,
    raw: str = "",
    type: str = "text",
    dedup_key: str | None = None,
) -> int:
    """Insert the raw message; raise DuplicateMessage when its key was seen before."""
    try:
        return insert_row(
            db,
            "inbox",
            {
                "received_at": received_at.isoformat(timespec="seconds"),
                "at": at.isoformat(timespec="seconds"),
                "channel": channel,
                "sender": sender,
                "dedup_key": dedup_key,
                "type": type,
                "text": text,
                "raw": raw,
                "outcome": "received",
            },
        )
    except sqlite3.IntegrityError:
        existing = first(
            fetch_all(db, "SELECT * FROM inbox WHERE dedup_key = ?", [dedup_key]), None
        )
        if existing is None:
            raise
        raise DuplicateMessage(existing) from None


def inbound(db: sqlite_utils.Database, inbox_id: int) -> dict | None:
    return first(fetch_all(db, "SELECT * FROM inbox WHERE id = ?", [inbox_id]), None)


def failed_inbound(db: sqlite_utils.Database) -> list[dict]:
    """Messages kept with outcome 'error' (their handling failed), oldest first."""
    return fetch_all(db, "SELECT * FROM inbox WHERE outcome = 'error' ORDER BY id")


def finish_inbound(
    db: sqlite_utils.Database,
    inbox_id: int,
    *,
    outcome: str,
    reply: str | None,
    person_id: int | None = None,
    error: str | None = None,
) -> None:
    update_row(
        db,
        "inbox",
        inbox_id,
        {"outcome": outcome, "reply": reply, "person_id": person_id, "error": error},
    )


def previous_message(db: sqlite_utils.Database, person_id: int, before: int) -> dict | None:
    """The person's latest message before inbox row `before`, passing over what 撤销 walks back
    across: undos, reports already undone, acknowledgements (收到, 好的)."""
    return first(
        fetch_all(
            db,
            """SELECT i.* FROM inbox i WHERE i.person_id = ? AND i.id < ?
                 AND NOT (ltrim(coalesce(i.text, '')) GLOB '撤[销回]*' AND length(i.text) <= 8)
                 AND i.outcome != 'ack'
                 AND NOT (EXISTS (SELECT 1 FROM contacts c WHERE c.inbox_id = i.id)
                          AND NOT EXISTS (SELECT 1 FROM contacts c
                                          WHERE c.inbox_id = i.id AND c.revoked = 0))
               ORDER BY i.id DESC LIMIT 1""",
            [person_id, before],
        ),
        None,
    )


def last_report_message(db: sqlite_utils.Database, person_id: int) -> dict | None:
    """The person's latest message that still has current contact records."""
    return first(
        fetch_all(
            db,
            """SELECT i.* FROM inbox i WHERE i.person_id = ? AND EXISTS (
                   SELECT 1 FROM contacts c WHERE c.inbox_id = i.id AND c.current = 1)
               ORDER BY i.id DESC LIMIT 1""",
            [person_id],
        ),
        None,
    )
