"""Recording what became of a delivery attempt: status, attempts, error, next attempt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlite_utils

from bot.channels.api import BUSY, NETWORK, RATE_LIMITED, ApiResult
from storage.db import transaction

MAX_ATTEMPTS = 12  # after this many HTTP attempts a transient failure becomes 'failed'
ERROR_CHARS = 1000


def retry_at(now: dt.datetime, attempts: int) -> dt.datetime:
    """When to try again: a minute, doubling every 4 attempts, at most an hour."""
    return now + dt.timedelta(seconds=min(3600, 60 * 2 ** (attempts // 4)))


def record(
    db: sqlite_utils.Database,
    rows: Iterable[dict],
    now: dt.datetime,
    *,
    status: str,
    attempts: int = 0,
    failures: Iterable[str] = (),
    note: str = "",
    next_attempt_at: dt.datetime | None = None,
) -> None:
    """Set the rows' status; add the attempts; append this round's errors to `error`."""
    stamp = now.isoformat(timespec="seconds")
    news = [f"{stamp} {text}" for text in failures] + ([f"{stamp} {note}"] if note else [])
    with transaction(db) as conn:
        for row in rows:
            current = conn.execute("SELECT error FROM outbox WHERE id = ?", [row["id"]]).fetchone()
            error = "; ".join(filter(None, [current[0] if current else None, *news])) or None
            conn.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + ?, error = ?,"
                " sent_at = ?, next_attempt_at = ? WHERE id = ?",
                [
                    status,
                    attempts,
                    error[-ERROR_CHARS:] if error else None,
                    stamp if status == "sent" else None,
                    next_attempt_at.isoformat(timespec="seconds") if next_attempt_at else None,
                    row["id"],
                ],
            )


def record_result(
    db: sqlite_utils.Database,
    rows: list[dict],
    now: dt.datetime,
    result: ApiResult,
    attempts: int,
    failures: list[str],
    undeliverable: frozenset[int],
) -> None:
    """Record a finished call: sent, undeliverable, queued again for later, or failed."""
    if result.ok:
        record(db, rows, now, status="sent", attempts=attempts, failures=failures)
    elif result.errcode in undeliverable:
        record(db, rows, now, status="undeliverable", attempts=attempts, failures=failures)
    elif result.errcode in (BUSY, NETWORK, RATE_LIMITED):
        for row in rows:
            total = row["attempts"] + attempts
            if result.errcode != RATE_LIMITED and total >= MAX_ATTEMPTS:
                record(db, [row], now, status="failed", attempts=attempts, failures=failures)
            else:
                later = retry_at(now, total)
                record(
                    db,
                    [row],
                    now,
                    status="queued",
                    attempts=attempts,
                    failures=failures,
                    next_attempt_at=later,
                )
    else:
        record(db, rows, now, status="failed", attempts=attempts, failures=failures)
