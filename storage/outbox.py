"""Every outbound message with its status; `sends` keys make scheduled sends idempotent."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

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
    "correction",
    "escalation",
    "review",
)


def outbox_row(
    *,
    at: dt.datetime,
    person: dict | None,
    kind: str,
    text: str,
    recipient: str | None = None,
    status: str = "queued",
    send_key: str | None = None,
    inbox_id: int | None = None,
    card: dict | None = None,
) -> dict:
    """One outbound message as its outbox row (without id); `card` says what it is in a few
    words and which page shows all of it (bot/channels/cards.py), for channels that send
    templates or cards. Built before a transaction, so the write lock is held only to
    insert it."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    return {
        "at": at.isoformat(timespec="seconds"),
        "recipient": recipient if recipient is not None else (person or {}).get("wechat_id") or "",
        "person_id": (person or {}).get("id"),
        "person": (person or {}).get("name", ""),
        "kind": kind,
        "text": text,
        "status": status,
        "attempts": 0,
        "send_key": send_key,
        "inbox_id": inbox_id,
        "card": json.dumps(card, ensure_ascii=False, sort_keys=True) if card else None,
        "next_attempt_at": at.isoformat(timespec="seconds") if status == "queued" else None,
    }


def queue_message(db: sqlite_utils.Database, *, row_id: int | None = None, **fields: Any) -> int:
    """Queue one outbound message (the fields of `outbox_row`); its outbox id. `row_id`:
    the id reserved for it (its text names it: see schedules.runner.Collected)."""
    return insert_row(db, "outbox", ({"id": row_id} if row_id else {}) | outbox_row(**fields))


def send_key(*, kind: str, target: str, day: dt.date, slot: str = "") -> str:
    """The idempotency key of a scheduled send: (kind, recipient or unit, date, slot)."""
    return f"{kind}|{target}|{day.isoformat()}|{slot}"


def claimed(db: sqlite_utils.Database, key: str, now: dt.datetime) -> bool:
    """Whether the key was sent as of `now`: a claim made by a clock ahead of `now` (a
    system clock that jumped forward and back) does not count, so the real day still gets
    its message."""
    row = db.conn.execute("SELECT created_at FROM sends WHERE key = ?", [key]).fetchone()
    return row is not None and _counts(row[0], now)


def _counts(created_at: str, now: dt.datetime) -> bool:
    return dt.datetime.fromisoformat(created_at) <= now


def claim_key(db: sqlite_utils.Database, key: str, now: dt.datetime) -> bool:
    """Claim a scheduled send's key as of `now`; False when it was claimed already (see
    `claimed`). Inside a transaction, with the message it keys."""
    return key in claim_keys(db, [key], now)


def claim_keys(db: sqlite_utils.Database, keys: Sequence[str], now: dt.datetime) -> set[str]:
    """Claim as of `now` each of `keys` not claimed yet (see `claimed`); the keys claimed
    here, in two statements per 500 keys (a fan-out claims a batch's keys together, under
    the write lock). Inside a transaction, with the messages they key."""
    wanted = list(dict.fromkeys(keys))
    before: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        before.update(
            db.conn.execute(f"SELECT key, created_at FROM sends WHERE key IN ({marks})", chunk)
        )
    fresh = [key for key in wanted if key not in before or not _counts(before[key], now)]
    stamp = now.isoformat(timespec="seconds")
    rows = []
    for key in fresh:
        kind_part, rest = key.split("|", 1)
        target, day, slot = rest.rsplit("|", 2)
        rows.append((key, kind_part, target, day, slot, stamp))
    db.conn.executemany(
        "INSERT OR REPLACE INTO sends (key, kind, target, date, slot, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    return set(fresh)


def queue_send(
    db: sqlite_utils.Database,
    *,
    at: dt.datetime,
    person: dict,
    kind: str,
    text: str,
    key: str,
    now: dt.datetime,
    card: dict | None = None,
    row_id: int | None = None,
) -> int:
    """Claim a scheduled send's key and queue its message: its outbox id, or 0 (nothing
    queued) when the key was claimed as of `now` (see `claimed`). Call it inside a
    transaction: claim and message go together."""
    if not claim_key(db, key, now):
        return 0
    return queue_message(
        db, at=at, person=person, kind=kind, text=text, send_key=key, card=card, row_id=row_id
    )


def card_of(row: dict) -> dict:
    """The row's card (see queue_message), {} when it has none."""
    try:
        found = json.loads(row.get("card") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


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
