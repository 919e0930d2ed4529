"""Messages stored raw whose handling never finished: the process that stored one (a hand-off
while the write lock was busy) died before handling it. The schedule's minute round handles
them, as of when they were sent; their replies and alerts go out through the channel."""

from __future__ import annotations

import datetime as dt
import logging

import sqlite_utils

from bot.config import Config
from bot.context import Context
from handlers.pipeline import handle_stored
from storage.db import fetch_all

log = logging.getLogger("gridwatch.schedule")

# a hand-off is handled within seconds of being stored; one still waiting after this is orphaned
STALE = dt.timedelta(seconds=60)
BATCH = 1000


def recover_unhandled(db: sqlite_utils.Database, config: Config, now: dt.datetime) -> int:
    """Handle every message stored at least STALE before `now` and never handled; how many."""
    cutoff = (now - STALE).isoformat(timespec="seconds")
    rows = fetch_all(
        db,
        "SELECT id, sender, at FROM inbox WHERE outcome = 'received'"
        " AND julianday(received_at) <= julianday(?) ORDER BY id LIMIT ?",
        [cutoff, BATCH],
    )
    handled = 0
    for row in rows:
        try:
            done = handle_stored(Context(db, config), row["id"], reply_status="queued")
        except Exception:
            log.exception("recovering inbox %s from %s failed", row["id"], row["sender"])
            continue
        if done is None:
            continue
        handled += 1
        log.warning("inbox %s from %s was never handled: handled now", row["id"], row["sender"])
        if config.channel.kind == "mp":  # the 48-hour window opened with that message
            from bot.channels.mp import record_inbound

            record_inbound(db, row["sender"], dt.datetime.fromisoformat(row["at"]))
    return handled
