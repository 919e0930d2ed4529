"""Group commit: the messages a process's request threads have ready share one transaction.

With `synchronous = FULL` every commit waits for an fsync of the WAL, and a request thread
that commits alone spends that wait holding the write lock with its core idle. Here each
request thread reads what its message means (no lock), then hands the writing step to the
process's one writer thread and waits. The writer takes the write lock, then every message
waiting at that moment (those that came while it waited for the lock too), writes each in a
savepoint of its own, and commits them together: one fsync for the batch. Each request
answers only once the commit that holds its raw message has returned, so acknowledged still
means stored.

A request that waits past its store budget gives up unless its message's writing has begun
(then the commit is moments away and it waits for it): the writer skips a message given up,
so nothing is stored that was not acknowledged… or that WeChat will not send again. A batch
whose transaction SQLite gives up (a full disk) stores none of its messages: each goes back
to its request, which handles it alone as before (keeping at least the raw message).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Protocol

import sqlite_utils

from storage.db import transaction

if TYPE_CHECKING:
    from storage.pool import ConnectionPool

log = logging.getLogger(__name__)
MAX_BATCH = 64  # messages per transaction: a batch holds the write lock ~20 ms at most


class Grouped(Protocol):
    def begin_commit(self) -> bool:
        "Under the writer's lock: False when the request gave up (skip it), else committing."

    def write(self, db: sqlite_utils.Database) -> None:
        "Write the message inside the writer's transaction (a savepoint of its own)."

    def committed(self, stored: bool) -> None:
        "After the commit (stored) or after the batch failed (not stored: handle it alone)."


class GroupWriter:
    """One writer thread per process, started with the first message (after any fork)."""

    def __init__(self, connections: ConnectionPool, max_batch: int = MAX_BATCH) -> None:
        self.connections = connections
        self.max_batch = max_batch
        self.waiting: deque[Grouped] = deque()
        self.ready = threading.Condition()
        self.thread: threading.Thread | None = None
        self.closed = False
        self.batches = 0
        self.messages = 0

    def submit(self, item: Grouped) -> None:
        """Queue `item`; RuntimeError once the writer is shut down (the process is exiting)."""
        with self.ready:
            if self.closed:
                raise RuntimeError("the group writer is shut down")
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._work, name="wechat-group-commit", daemon=True
                )
                self.thread.start()
            self.waiting.append(item)
            self.ready.notify()

    def shutdown(self, wait: bool = True) -> None:
        """Write what is queued, then stop; with `wait`, join the thread."""
        with self.ready:
            self.closed = True
            self.ready.notify()
            thread = self.thread
        if wait and thread is not None:
            thread.join()

    def _work(self) -> None:
        db = self.connections.get()
        while True:
            with self.ready:
                while not self.waiting and not self.closed:
                    self.ready.wait()
                if not self.waiting:
                    return
            try:
                self._commit_batch(db)
            except Exception:  # a last resort: _commit_batch settles its batch itself
                log.exception("group commit failed")

    def _take(self) -> list[Grouped]:
        with self.ready:
            count = min(len(self.waiting), self.max_batch)
            return [self.waiting.popleft() for _ in range(count)]

    def _commit_batch(self, db: sqlite_utils.Database) -> None:
        live: list[Grouped] = []
        try:
            with transaction(db):  # waits for the write lock as long as it takes
                # taken once the lock is held: whatever came meanwhile joins this batch
                live = [item for item in self._take() if item.begin_commit()]
                for item in live:
                    item.write(db)
        except Exception:
            log.exception("a batch of %d messages was not stored; each is handled alone", len(live))
            if db.conn.in_transaction:
                db.conn.rollback()
            for item in live:
                item.committed(stored=False)
            return
        self.batches += 1
        self.messages += len(live)
        for item in live:
            item.committed(stored=True)
