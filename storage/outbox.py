"""Every outbound message with its status; `sends` keys make scheduled sends idempotent."""

from __future__ import annotations

import datetime as dt
import sqlite3

import sqlite_utils

from storage.db import fetch_all, insert_row, transaction

KINDS = (
    "reply",
    "prompt",
    "reminder",
    "missed_alert",
    "abnormal_alert",
    "unreachable_alert",
    "absent_alert",
    "digest",
    "release",
)


def queue_message(
    db: sqlite_utils.Database,
    *,
    at: dt.datetime,
    person: dict | None,
    kind: str,
    text: str,
    recipient: str | None = None,
    status: str = "queued",
    send_key: str | None = None,
    inbox_id: int | None = None,
) -> int:
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    return insert_row(
        db,
        "outbox",
        {
            "at": at.isoformat(timespec="seconds"),
            "recipient": recipient
            if recipient is not None
            else (person or {}).get("wechat_id") or "",
            "person_id": (person or {}).get("id"),
            "person": (person or {}).get("name", ""),
            "kind": kind,
            "text": text,
            "status": status,
            "attempts": 0,
            "send_key": send_key,
            "inbox_id": inbox_id,
            "next_attempt_at": at.isoformat(timespec="seconds") if status == "queued" else None,
        },
    )


def claim_send(
    db: sqlite_utils.Database,
    *,
    kind: str,
    target: str,
    day: dt.date,
    slot: str = "",
    now: dt.datetime,
) -> str | None:
    """Reserve the idempotency key of a scheduled send; None when it was sent before."""
    key = f"{kind}|{target}|{day.isoformat()}|{slot}"
    try:
        db["sends"].insert(
            {
                "key": key,
                "kind": kind,
                "target": target,
                "date": day.isoformat(),
                "slot": slot,
                "created_at": now.isoformat(timespec="seconds"),
            }
        )
    except sqlite3.IntegrityError:
        return None
    return key


def outbox_rows(db: sqlite_utils.Database, since: dt.datetime | None = None) -> list[dict]:
    """Full outbox rows from `since` on, oldest first."""
    where, params = "", []
    if since is not None:
        # julianday() compares in UTC: the offsets may differ across a DST change
        where, params = "WHERE julianday(at) >= julianday(?)", [since.isoformat(timespec="seconds")]
    return fetch_all(db, f"SELECT * FROM outbox {where} ORDER BY at, id", params)


def outbox_json(row: dict) -> dict:
    """One row as `gridwatch outbox --json` prints it (DESIGN §7)."""
    return {
        "id": row["id"],
        "at": row["at"],
        "to": row["recipient"],
        "person": row["person"],
        "kind": row["kind"],
        "text": row["text"],
        "status": row["status"],
    }


def requeue(db: sqlite_utils.Database, ids: list[int] | None, now: dt.datetime) -> int:
    """Queue failed (or, by id, undeliverable) messages again; None means every failed one."""
    stamp = now.isoformat(timespec="seconds")
    with transaction(db):
        if ids is None:
            cursor = db.execute(
                "UPDATE outbox SET status = 'queued', next_attempt_at = ? WHERE status = 'failed'",
                [stamp],
            )
        else:
            marks = ",".join("?" * len(ids))
            cursor = db.execute(
                "UPDATE outbox SET status = 'queued', next_attempt_at = ?"
                f" WHERE id IN ({marks}) AND status IN ('failed', 'undeliverable')",
                [stamp, *ids],
            )
    return cursor.rowcount
