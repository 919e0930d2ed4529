"""WAL checkpoints off the request path.

By default the connection whose commit crosses 1,000 WAL pages copies them back into the
database, fsyncs included, while it still holds the writer lock: every writer waits, and
that message's reply is late. Serving connections turn that off (`serving_connection`), and
one thread per database copies the WAL back every second (PASSIVE: it never blocks a
writer, and readers keep their snapshots), then syncs the database file itself, holding no
lock (`storage.db.sync_database_file`).

Under a steady load some reader is nearly always inside the WAL, so the next writer seldom
finds the moment to start it over and the file keeps growing (half a gigabyte in a minute
of the benchmark). Once everything is copied back and the WAL is past RESTART_AT pages, the
thread asks for a RESTART: it waits at most RESTART_WAIT_MS for the readers of the moment
to finish (new writers wait that long too), and the WAL starts over from its beginning.

One process per database does it: the thread that holds `<db>-checkpoint.lock`; the others
try again each round, so when that process stops another takes over. Where that lock file
cannot be opened, every serving process checkpoints.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading

from storage.db import connect, database_file, sync_database_file

log = logging.getLogger(__name__)
INTERVAL = 1.0  # seconds; a busy morning writes ~2,000 pages in that time
# Pages (128 MB). A RESTART holds every writer for up to RESTART_WAIT_MS plus a sync: at
# 1,000 messages a second (~3,000 WAL pages a second) a 16 MB mark restarted every 1-2 s,
# each time 6-34 ms of stalled writes, 1-3 % of the replies: the p99. Now every ~10 s.
RESTART_AT = 32768
RESTART_WAIT_MS = 20
LARGE_WAL = 100_000  # pages (~400 MB): worth a warning (a long reader, or readers without pause)


# pages a serving connection caches: SQLite empties a connection's cache whenever another
# one has written, which under load is before nearly every message, so the default 2 MB per
# connection (a serving process has a dozen) held little that was read again
SERVING_CACHE_KB = 256


def serving_connection(conn: sqlite3.Connection) -> None:
    """A connection that never checkpoints on commit (the checkpointer does it), with a
    small page cache."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA cache_size = -{SERVING_CACHE_KB}")


class Checkpointer(threading.Thread):
    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        super().__init__(name="wal-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self.stopping = threading.Event()
        self.lock_fd: int | None = None
        self.rounds = 0  # checkpoints this thread ran (tests wait on it)
        self.without_lock = False
        self.file = path
        self.last_error = ""
        self.synced = 0  # pages copied back (SQLite's count, the WAL's so far) when synced

    def run(self) -> None:
        db = connect(self.path)
        self.file = database_file(db.conn)  # absolute: the working directory may change
        try:
            while not self.stopping.wait(self.interval):
                if not os.path.exists(self.path):  # removed (a test's folder): nothing to do
                    return
                if self._holds_lock():
                    self.checkpoint(db.conn)
        finally:
            db.conn.close()
            if self.lock_fd is not None:
                os.close(self.lock_fd)

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """(busy, pages in the WAL, pages copied back), as SQLite reports them."""
        try:
            busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:  # a full disk, say: the WAL keeps the data meanwhile
            if str(error) != self.last_error:  # once, not every second
                log.warning("WAL checkpoint of %s failed: %s", self.path, error)
            self.last_error = str(error)
            return (1, -1, -1)
        self.last_error = ""
        self.rounds += 1
        # SQLite syncs the file only when no frame was appended while it copied: under
        # steady writes even a PASSIVE that reports everything copied may not have synced
        if copied > 0 and copied != self.synced:  # something new copied (or a new WAL)
            sync_database_file(self.file)
            self.synced = copied
        if busy == 0 and wal_pages == copied and wal_pages > RESTART_AT:
            busy, wal_pages, copied = self._restart(conn)
            if busy == 0:  # everything copied and synced by SQLite; the WAL starts over
                self.synced = copied
        # a RESTART that went through reports the old WAL's size: nothing to warn about
        if wal_pages > LARGE_WAL and (busy or copied < wal_pages):
            log.warning(
                "the WAL of %s holds %s pages (%s copied back): %s",
                self.path,
                wal_pages,
                copied,
                "a reader keeps an old snapshot"
                if copied < wal_pages
                else "all copied, but readers kept it from starting over",
            )
        return busy, wal_pages, copied

    def _restart(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            return conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as error:
            log.warning("WAL restart of %s failed: %s", self.path, error)
            return (1, -1, -1)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {timeout}")

    def _holds_lock(self) -> bool:
        """Whether this thread is the one that checkpoints. Without a lock file (a folder it
        cannot write, a file of another user) every serving process checkpoints: PASSIVE
        checkpoints side by side are safe, and serving connections never do it themselves."""
        if self.without_lock:
            return True
        if self.lock_fd is None:
            lock_path = f"{self.path}-checkpoint.lock"
            try:
                self.lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
            except OSError as error:
                log.warning("cannot open %s (%s): checkpointing without it", lock_path, error)
                self.without_lock = True
                return True
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self.lock_fd)
                self.lock_fd = None
                return False
        return True

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(10)
