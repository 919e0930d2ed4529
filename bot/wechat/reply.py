"""The 5-second rule: a reply goes back passively when it is ready in time, else through the API;
and nothing is acknowledged before the raw message is stored.

WeChat gives a callback 5 seconds, then retries. What can make handling slow is waiting for
the database's write lock (an import batch, a job's batch, a queue of writers). So the
request handles the message itself when it gets the lock within a few milliseconds: the raw
message and its handling commit together, then the answer goes (handing every message to
another thread cost ~50–250 µs of CPU each, measured by `make bench`).

Otherwise, with nothing written yet, the message goes to a worker thread, which waits for
the lock and stores the raw message in a transaction of its own, then handles it. The
request answers only once the raw message is committed: with the reply when it is ready
within `budget` seconds, else `success` (the reply, 'queued', goes through the API). If the
raw message is not committed within `store_budget` seconds, the request tells the worker not
to store it (under the job's lock, so the two never cross) and answers 503: WeChat, having
no answer in its 5 seconds, sends the message again. A worker that dies between storing and
handling leaves the message 'received'; the schedule's minute round handles it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlite_utils

from bot.clock import now as clock_now
from bot.config import Config
from bot.context import Context
from bot.wechat.daemon_pool import DaemonPool
from bot.wechat.group_commit import GroupWriter
from handlers.pipeline import (
    CARD_EVENT,
    Handled,
    Incoming,
    Step,
    handle_message,
    handle_stored,
    prepare,
    retried,
    store_raw,
    write_prepared,
)
from storage.db import LockBusy, fetch_all, transaction
from storage.inbox import DuplicateMessage

if TYPE_CHECKING:
    from storage.pool import ConnectionPool

log = logging.getLogger(__name__)
# the request handles a message itself when it gets the write lock within ~4 ms (other serving
# processes hold it well under a millisecond per message): the pauses, in seconds, before each
# try. Past them a worker thread waits for the lock, and the request for the worker only as
# long as WeChat allows.
LOCK_POLLS = (0.0, 0.0002, 0.0005, 0.001, 0.002)
# past WeChat's 5 s: an answer then reaches nobody, and WeChat has already sent it again
STORE_BUDGET = 5.5


class HandlingFailed(Exception):
    "The message could not even be stored; WeChat should send it again."


class _Abandoned(Exception):
    "The request gave up waiting for the raw message to be stored."


class ReplyRunner:
    """Handles callbacks in the request's thread when the write lock is free, else in worker
    threads; each thread has its own database connection."""

    def __init__(
        self,
        db_path: str,
        config: Config,
        budget: float,
        connections: ConnectionPool,
        workers: int,
        store_budget: float = STORE_BUDGET,
        group_commit: bool = False,
    ) -> None:
        self.db_path = db_path
        self.config = config
        self.budget = budget
        self.store_budget = max(store_budget, budget)
        self.connections = connections  # the app's: one connection per thread, kept warm
        self.pool = DaemonPool(workers, "wechat-reply")
        # what comes after a reply (alerts through the API, which may be slow) has threads of
        # its own, so messages handed off for the write lock never queue behind it
        self.after = DaemonPool(2, "wechat-after")
        # threaded servers: the request threads' messages share commits (bot.wechat.group_commit)
        self.group = GroupWriter(connections) if group_commit else None

    def button_after(self, message: Incoming) -> str | None:
        """What a clicked card's buttons become once its alert is handled (已处置·张三), read
        after the click was handled; None to leave them."""
        from bot.channels.cards import button_done
        from handlers.acks import handled_by

        db = self.connections.get()
        try:
            name = handled_by(db, message.text)
            return button_done(name) if name else None
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()

    def drain(self) -> None:
        """Wait for every message handed off and everything after the replies (tests)."""
        if self.group is not None:
            self.group.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self.after.shutdown(wait=True)

    def answer(self, message: Incoming) -> str | None:
        """The passive reply ("" for none), or None when it will come through the API.
        HandlingFailed when the message was not stored: WeChat must send it again."""
        job = _Job(self, message)
        if self.group is not None and job.run_grouped(self.group):
            return job.wait(self.budget)
        if not job.run(lock_patience=LOCK_POLLS):
            try:
                self.pool.submit(job.run_handed_off)
            except RuntimeError:  # the process is exiting: nothing stored, WeChat sends it again
                raise HandlingFailed(message.dedup_key) from None
            job.wait_stored(self.store_budget)
        return job.wait(self.budget)


class _Job:
    def __init__(self, runner: ReplyRunner, message: Incoming) -> None:
        self.runner = runner
        self.message = message
        self.lock = threading.Lock()
        self.settled = threading.Event()  # the raw message is stored, or cannot be
        self.stored = False
        self.committing = False  # the worker is committing the raw message: no giving up
        self.abandoned = False
        self.done = threading.Event()  # handled, or failed: `reply` is final
        self.late = False
        self.reply = ""
        self.failed = False
        self.started = time.monotonic()
        self.request_thread = threading.current_thread()
        # group commit: the prepared step, and what the writer made of it
        self.ctx: Context | None = None
        self.act: Step | None = None
        self.handled: Handled | None = None
        self.existing: dict | None = None  # stored before: a retry
        self.alone = False  # not written in the batch: handle it on its own

    def run_grouped(self, writer: GroupWriter) -> bool:
        """Prepare the message here, have the writer store and handle it in a shared commit,
        wait for that commit; False (nothing stored) when it must be handled alone.
        HandlingFailed past the store budget, with nothing stored."""
        db = self.runner.connections.get()
        self.ctx = self._context(db)
        self.act = prepare(self.ctx, self.message)
        try:
            writer.submit(self)
        except RuntimeError:  # the process is exiting
            return False
        if not self.settled.wait(self.runner.store_budget):
            with self.lock:
                if not self.committing:
                    self.abandoned = True
                    raise HandlingFailed(self.message.dedup_key)
            self.settled.wait()  # its commit is under way: it ends one way or the other, soon
        if self.alone:
            return True if self._run_alone() else self._hand_off()
        try:
            if self.existing is not None:
                handled = retried(self._context(db), self.existing, self._reply_status)
            else:
                assert self.handled is not None
                handled = self.handled
            self._handled(handled, db)
        except Exception:
            self._failed()
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()
        return True

    def _run_alone(self) -> bool:
        self.settled.clear()
        return self.run(lock_patience=LOCK_POLLS)

    def _hand_off(self) -> bool:
        try:
            self.runner.pool.submit(self.run_handed_off)
        except RuntimeError:
            raise HandlingFailed(self.message.dedup_key) from None
        self.wait_stored(self.runner.store_budget)
        return True

    # the writer's side (bot.wechat.group_commit.Grouped)
    def begin_commit(self) -> bool:
        with self.lock:
            if self.abandoned:
                return False
            self.committing = True
            return True

    def write(self, db: sqlite_utils.Database) -> None:
        assert self.ctx is not None and self.act is not None
        self.ctx.db = db  # the step reads ctx.db when it runs: the writer's transaction
        try:
            self.handled = write_prepared(self.ctx, self.message, self.act, self._group_status)
        except DuplicateMessage as seen:
            self.existing = seen.existing
        except sqlite3.Error:
            if not db.conn.in_transaction:  # SQLite gave up the whole batch
                raise
            log.exception("storing a message from %s in a batch failed", self.message.sender)
            self.alone = True  # its savepoint is undone; handled alone, it keeps the raw message

    def committed(self, stored: bool) -> None:
        with self.lock:
            if not stored:
                self.alone, self.handled, self.existing = True, None, None
            self.committing = False
            self.stored = stored and not self.alone
        self.settled.set()

    def _group_status(self) -> str:
        # written past the reply budget: the request answers `success`, the reply goes
        # through the API (queued, so it goes even if this process dies before sending it)
        if time.monotonic() - self.started > self.runner.budget:
            self.late = True
        return self._reply_status()

    def wait_stored(self, store_budget: float) -> None:
        """Return once the raw message is committed; past `store_budget`, the worker is told
        not to store it and HandlingFailed comes out (also when it could not be stored)."""
        if not self.settled.wait(store_budget):
            with self.lock:
                if not self.committing:
                    self.abandoned = True
                    raise HandlingFailed(self.message.dedup_key)
            self.settled.wait()  # a commit under way ends one way or the other, and soon
        if not self.stored:
            raise HandlingFailed(self.message.dedup_key)

    def wait(self, budget: float) -> str | None:
        self.done.wait(max(0.0, budget - (time.monotonic() - self.started)))
        with self.lock:
            if self.failed:
                raise HandlingFailed(self.message.dedup_key)
            if self.done.is_set() and not self.late:
                return self.reply
            self.late = True
            return None

    def run(self, lock_patience: Sequence[float] | None = None) -> bool:
        """Store and handle the message in one transaction; False, with nothing stored, when
        the write lock stayed taken past `lock_patience`."""
        db = self.runner.connections.get()
        try:
            handled = handle_message(
                self._context(db),
                self.message,
                reply_status=self._reply_status,
                lock_patience=lock_patience,
            )
            self._settle(stored=True)
            self._handled(handled, db)
        except LockBusy:
            return False
        except Exception:
            self._failed()
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()
        return True

    def run_handed_off(self) -> None:
        """In a worker thread, which may wait for the write lock: store the raw message in a
        transaction of its own (unless the request gave up meanwhile), then handle it."""
        db = self.runner.connections.get()
        ctx = self._context(db)
        try:
            try:
                inbox_id = store_raw(ctx, self.message, before_commit=self._commit_unless_abandoned)
            except DuplicateMessage as seen:  # a retry of a message stored before
                self._settle(stored=True)
                handled = retried(ctx, seen.existing, self._reply_status)
            except _Abandoned:
                return
            else:
                self._settle(stored=True)
                handled = handle_stored(ctx, inbox_id, reply_status=self._reply_status) or Handled(
                    "",
                    inbox_id,
                    "duplicate",
                    duplicate=True,  # recovered meanwhile
                )
            self._handled(handled, db)
        except Exception:
            self._failed()
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()

    def _commit_unless_abandoned(self) -> None:
        """With the raw message written, just before its commit: the request has given up
        (then nothing is committed), or from now on it waits for the commit's end."""
        with self.lock:
            if self.abandoned:
                raise _Abandoned
            self.committing = True

    def _settle(self, stored: bool) -> None:
        self.stored = stored
        self.settled.set()

    def _context(self, db: sqlite_utils.Database) -> Context:
        return Context(db, self.runner.config, self.runner.db_path)

    def _reply_status(self) -> str:
        # a reply still awaited goes back passively ('sent' as it is written); one written
        # after the request gave up is 'queued', so it goes out through the API even if this
        # process dies before it sends it
        return "queued" if self.late else "sent"

    def _handled(self, handled: Handled, db: sqlite_utils.Database) -> None:
        with self.lock:
            self.reply, late = handled.reply, self.late
            self.done.set()
        if threading.current_thread() is not self.request_thread:
            self.follow_up(handled, late, db)
        elif (
            late
            or handled.alerts
            or self.runner.config.channel.kind == "mp"
            or self.message.type == CARD_EVENT  # its reply goes through the API
        ):  # the reply waits
            try:
                self.runner.after.submit(self.follow_up, handled, late)
            except RuntimeError:  # the process is exiting: do it before answering
                self.follow_up(handled, late, db)

    def _failed(self) -> None:
        """Handling broke outside the pipeline's own keeping of errors (logged here). Before
        the raw message was stored, WeChat is asked to retry; after, the answer stands."""
        log.exception("wechat callback from %s failed", self.message.sender)
        with self.lock:
            self.failed = not self.done.is_set() and not self.stored
            self.done.set()
        self.settled.set()

    def follow_up(
        self, handled: Handled, late: bool, db: sqlite_utils.Database | None = None
    ) -> None:
        """After the reply: the member's last message (the Official Account's 48-hour
        window), a late reply (or a card click's, never passive) through the API, the alerts
        the message raised (at once)."""
        config = self.runner.config
        db = db or self.runner.connections.get()  # a worker's, when the request handled it
        try:
            if config.channel.kind == "mp":
                from bot.channels.mp import record_inbound

                record_inbound(db, self.message.sender, self.message.at)
            through_api = late or self.message.type == CARD_EVENT
            if through_api and handled.reply and not handled.duplicate:
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
