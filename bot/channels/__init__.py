"""Outbound delivery. Messages are queued in the outbox; a channel delivers queued rows.

The console channel (the embedded default) delivers by marking rows sent: the outbox is
what the web chat simulator shows. The `work` and `mp` channels call the WeChat APIs.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import sqlite_utils

from bot.config import Config
from storage.db import fetch_all, transaction


class Channel(Protocol):
    name: str

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        """Send the given queued outbox rows and record each row's status and attempts."""


class ConsoleChannel:
    name = "console"

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        stamp = now.isoformat(timespec="seconds")
        with transaction(db) as conn:
            conn.executemany(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?,"
                " next_attempt_at = NULL WHERE id = ?",
                [(stamp, row["id"]) for row in rows],
            )


def channel_for(config: Config) -> Channel:
    if config.channel.kind == "work":
        from bot.channels.work import WorkChannel

        return WorkChannel(config)
    if config.channel.kind == "mp":
        from bot.channels.mp import MpChannel

        return MpChannel(config)
    return ConsoleChannel()


# a round that died while sending is retried after this; long enough that no living round
# (up to 1,000 rows, each call with its own timeouts and backoff) outlasts its claim
LEASE = dt.timedelta(hours=1)


def claim(
    db: sqlite_utils.Database, rows: list[dict], now: dt.datetime, yields: bool = False
) -> list[dict]:
    """Take rows for this delivery round. Several rounds may look at the same queued rows
    (the callback's alerts, the scheduler, the minute job, other processes); only the one
    whose UPDATE changes a row sends it. A claim is a lease: the channel records the outcome,
    and a row still 'sending' after LEASE is taken again. `yields`: the schedule's claims
    let replies waiting for the write lock go first (storage.db.transaction)."""
    if not rows:
        return []
    stamp = now.isoformat(timespec="seconds")
    lease = (now + LEASE).isoformat(timespec="seconds")
    marks = ",".join("?" * len(rows))
    with transaction(db, yields=yields) as conn:
        taken = {
            row[0]
            for row in conn.execute(
                # due only: a row another round deferred (rate limit, spread, backoff) waits
                f"UPDATE outbox SET status = 'sending', next_attempt_at = ? WHERE id IN ({marks})"
                " AND status IN ('queued', 'sending')"
                " AND julianday(next_attempt_at) <= julianday(?)"
                " RETURNING id",
                [lease, *(row["id"] for row in rows), stamp],
            )
        }
    return [row for row in rows if row["id"] in taken]


def deliver_message_alerts(
    db: sqlite_utils.Database, config: Config, inbox_id: int, now: dt.datetime
) -> int:
    """Send at once what one inbound message queued (its alerts): they must not wait for
    the next delivery round."""
    rows = fetch_all(
        db,
        "SELECT * FROM outbox WHERE inbox_id = ? AND status = 'queued' AND kind != 'reply'",
        [inbox_id],
    )
    rows = claim(db, rows, now)
    if rows:  # most reports alert nobody: build the channel (an API client) only when needed
        channel_for(config).deliver(db, rows, now)
    return len(rows)


def deliver_pending(
    db: sqlite_utils.Database,
    channel: Channel,
    now: dt.datetime,
    limit: int = 5000,
    yields: bool = False,
) -> int:
    """Deliver queued rows whose time has come; returns how many were handed to the channel.
    `yields`: claim them as the schedule does (see `claim`)."""
    rows = fetch_all(
        db,
        # julianday() reads the offsets: times stored before and after a DST change compare
        "SELECT * FROM outbox WHERE status IN ('queued', 'sending')"
        " AND julianday(next_attempt_at) <= julianday(?)"
        " ORDER BY id LIMIT ?",
        [now.isoformat(timespec="seconds"), limit],
    )
    rows = claim(db, rows, now, yields=yields)
    if rows:
        channel.deliver(db, rows, now)
    return len(rows)
