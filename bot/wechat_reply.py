"""The 5-second rule: a reply goes back passively when it is ready in time, else through the API.

WeChat gives a callback 5 seconds, then retries. What can make handling slow is waiting for
the database's write lock (an import, a long job, a queue of writers). So the request
handles the message itself when it gets the lock within a few milliseconds (handing every
message to another thread cost ~50–250 µs of CPU each, measured by `make bench`). Otherwise,
with nothing written yet, the message goes to a worker thread and the request waits `budget`
seconds for the reply. When the worker is late the request answers `success` (no retry),
and the worker, once done, queues its reply in the outbox and delivers it through the
channel's API.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import sqlite_utils

from bot.clock import now as clock_now
from bot.config import Config
from bot.context import Context
from handlers.pipeline import Handled, Incoming, handle_message
from storage.db import LockBusy, fetch_all, transaction

if TYPE_CHECKING:
    from bot.web import ConnectionPool

log = logging.getLogger(__name__)
# the request handles a message itself when it gets the write lock within ~4 ms (other serving
# processes hold it well under a millisecond per message): the pauses, in seconds, before each
# try. Past them a worker thread waits for the lock, and the request for the worker only as
# long as WeChat allows.
LOCK_POLLS = (0.0, 0.0002, 0.0005, 0.001, 0.002)


class HandlingFailed(Exception):
    "The message could not even be stored; WeChat should send it again."


class ReplyRunner:
    """Handles callbacks in the request's thread when the write lock is free, else in worker
    threads; each thread has its own database connection."""

    def __init__(
        self, db_path: str, config: Config, budget: float, connections: ConnectionPool, workers: int
    ) -> None:
        self.db_path = db_path
        self.config = config
        self.budget = budget
        self.connections = connections  # the app's: one connection per thread, kept warm
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="wechat-reply")
        # what comes after a reply (alerts through the API, which may be slow) has threads of
        # its own, so messages handed off for the write lock never queue behind it
        self.after = ThreadPoolExecutor(2, thread_name_prefix="wechat-after")

    def drain(self) -> None:
        """Wait for every message handed off and everything after the replies (tests, exit)."""
        self.pool.shutdown(wait=True)
        self.after.shutdown(wait=True)

    def answer(self, message: Incoming) -> str | None:
        """The passive reply ("" for none), or None when it will come through the API."""
        job = _Job(self, message)
        if not job.run(lock_patience=LOCK_POLLS):
            try:
                self.pool.submit(job.run)
            except RuntimeError:  # the process is exiting: nothing stored, WeChat sends it again
                raise HandlingFailed(message.dedup_key) from None
        return job.wait(self.budget)


class _Job:
    def __init__(self, runner: ReplyRunner, message: Incoming) -> None:
        self.runner = runner
        self.message = message
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.late = False
        self.reply = ""
        self.failed = False
        self.request_thread = threading.current_thread()

    def wait(self, budget: float) -> str | None:
        self.done.wait(budget)
        with self.lock:
            if self.failed:
                raise HandlingFailed(self.message.dedup_key)
            if self.done.is_set():
                return self.reply
            self.late = True
            return None

    def run(self, lock_patience: Sequence[float] | None = None) -> bool:
        """Handle the message; False, with nothing stored, when the write lock stayed taken
        past `lock_patience` (then a worker thread, which can wait, runs it again)."""
        config = self.runner.config
        db = self.runner.connections.get()
        try:
            # a reply still awaited goes back passively ('sent' as it is written); one written
            # after the request gave up is 'queued', so it goes out through the API even if
            # this process dies before it sends it
            handled = handle_message(
                Context(db, config, self.runner.db_path),
                self.message,
                reply_status=lambda: "queued" if self.late else "sent",
                lock_patience=lock_patience,
            )
            with self.lock:
                self.reply, late = handled.reply, self.late
                self.done.set()
            if threading.current_thread() is not self.request_thread:
                self.follow_up(handled, late, db)
            elif handled.alerts or config.channel.kind == "mp":  # the reply waits for neither
                try:
                    self.runner.after.submit(self.follow_up, handled, False)
                except RuntimeError:  # the process is exiting: do it before answering
                    self.follow_up(handled, False, db)
        except LockBusy:
            return False
        except Exception:
            log.exception("wechat callback from %s failed", self.message.sender)
            with self.lock:
                self.failed = not self.done.is_set()
                self.done.set()
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()
        return True

    def follow_up(
        self, handled: Handled, late: bool, db: sqlite_utils.Database | None = None
    ) -> None:
        """After the reply: the member's last message (the Official Account's 48-hour
        window), a late reply through the API, the alerts the message raised (at once)."""
        config = self.runner.config
        db = db or self.runner.connections.get()  # a worker's, when the request handled it
        try:
            if config.channel.kind == "mp":
                from bot.channels.mp import record_inbound

                record_inbound(db, self.message.sender, self.message.at)
            if late and handled.reply and not handled.duplicate:
                deliver_late(db, config, handled.inbox_id, clock_now(config.tz))
            if handled.alerts:
                from bot.channels import deliver_message_alerts

                deliver_message_alerts(db, config, handled.inbox_id, clock_now(config.tz))
        except Exception:
            log.exception("after the reply to %s (inbox %s)", self.message.sender, handled.inbox_id)
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()


def deliver_late(
    db: sqlite_utils.Database, config: Config, inbox_id: int, now: dt.datetime
) -> None:
    """Send a reply that missed the passive window through the API: written 'queued', or
    'sent' when the request gave up between its writing and its commit."""
    from bot.channels import channel_for, claim

    stamp = now.isoformat(timespec="seconds")
    with transaction(db):
        db.execute(
            "UPDATE outbox SET status = 'queued', next_attempt_at = ? WHERE inbox_id = ?"
            " AND kind = 'reply' AND status = 'sent' AND sent_at IS NULL",
            [stamp, inbox_id],
        )
    rows = fetch_all(
        db,
        "SELECT * FROM outbox WHERE inbox_id = ? AND kind = 'reply' AND status = 'queued'",
        [inbox_id],
    )
    rows = claim(db, rows, now)
    if rows:
        channel_for(config).deliver(db, rows, now)
