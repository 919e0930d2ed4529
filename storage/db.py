"""Opening the database: WAL, foreign keys, busy timeout, schema migrations."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import sqlite_utils

from storage.migrations import MIGRATIONS

log = logging.getLogger(__name__)


def default_db_path() -> str:
    return os.environ.get("GRIDWATCH_DB") or "gridwatch.db"


CHECKPOINT_MODES = ("app", "litestream")


def checkpoint_mode(path: str | os.PathLike[str]) -> str:
    """Who checkpoints the WAL: `app` (storage.checkpoint's thread) or `litestream`.

    GRIDWATCH_CHECKPOINT=app|litestream says it; unset (or `auto`), Litestream owns the
    checkpoints when its folder (`.<name>-litestream`, made by `litestream replicate`) is
    beside the database. Litestream copies each WAL frame to its replica before it lets a
    checkpoint move it, holding a read transaction on the WAL and checkpointing itself; an
    application's RESTART or TRUNCATE checkpoint that got past it would leave the replica
    out of step (Litestream then starts it over from a snapshot), and one that waits for
    Litestream's reader holds every writer meanwhile.
    """
    mode = os.environ.get("GRIDWATCH_CHECKPOINT", "auto").strip().lower() or "auto"
    if mode in CHECKPOINT_MODES:
        return mode
    if mode != "auto":
        raise ValueError(f"GRIDWATCH_CHECKPOINT={mode!r}: expected app, litestream or auto")
    folder, name = os.path.split(os.path.abspath(path))
    return "litestream" if os.path.isdir(os.path.join(folder, f".{name}-litestream")) else "app"


BUSY_TIMEOUT_MS = 30_000  # how long SQLite waits for a writer that does not queue on the lock file
MIN_SQLITE = (3, 35)  # UPDATE … RETURNING (outbox claims), generated columns


def connect(path: str | os.PathLike[str]) -> sqlite_utils.Database:
    """Open a database file with the settings every process must share."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: gridwatch needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (Python's sqlite3 module)"
        )
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    db.path_key = os.path.abspath(path) if str(path) != ":memory:" else f":memory:{id(db)}"  # type: ignore[attr-defined]
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk when it returns (WAL fsynced), so a message answered to
        # WeChat survives a power cut too, not only a crash of the process (NORMAL). It costs
        # ~120 µs of fsync per commit on this machine's disk (18 → 141 µs).
        conn.execute("PRAGMA synchronous = FULL")
        db.checkpoints = checkpoint_mode(path)  # type: ignore[attr-defined]
        if db.checkpoints == "litestream":  # type: ignore[attr-defined]
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # it checkpoints, none of ours
        _attach_write_lock(db, f"{path}-lock")
    return db


def _attach_write_lock(db: sqlite_utils.Database, lock_path: str) -> None:
    """Writers queue on a lock file before BEGIN IMMEDIATE.

    SQLite's busy handler polls with sleeps of up to 100 ms, so under a burst two worker
    processes spend most of their time asleep; a blocking flock wakes the next writer the
    moment the lock is released. Each connection has its own descriptors, so threads queue
    too; the descriptors close with the Database object.

    Beside it, `<db>-lock.line`: a writer holds it shared while it waits for the write lock
    and writes (see `transaction`'s `yields`). flock works on a descriptor opened read-only,
    so a file another user created (`sudo gridwatch tick` first) is still shared.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return  # a read-only folder: SQLite's own locking still applies
    db.write_lock_fd = fd  # type: ignore[attr-defined]
    weakref.finalize(db, os.close, fd)
    line_path = f"{lock_path}.line"
    try:
        line_fd = os.open(line_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        try:
            line_fd = os.open(line_path, os.O_RDONLY)
        except OSError as error:
            log.warning("cannot open %s (%s): the schedule will not yield", line_path, error)
            return
    db.line_lock_fd = line_fd  # type: ignore[attr-defined]
    weakref.finalize(db, os.close, line_fd)


# A transaction that yields waits at most this long for a moment with no other writer in
# line, then writes anyway: under a flood of messages the schedule still moves.
MAX_YIELD_SECONDS = 0.05
YIELD_POLL_SECONDS = 0.001


def passive_checkpoint(db: sqlite_utils.Database) -> None:
    """Copy the WAL back now (a long write between its batches), unless Litestream owns the
    checkpoints."""
    if getattr(db, "checkpoints", "app") == "app":
        copied = db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[2]
        if copied > 0:  # -1: not a WAL database (":memory:")
            sync_database_file(database_file(db.conn))


def database_file(conn: sqlite3.Connection) -> str:
    """The file SQLite opened for `main`: absolute, whatever the working directory is now
    ("" for a database in memory)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file or "")
    return ""


_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def sync_database_file(path: str) -> None:
    """Put what a checkpoint copied into the database file on disk now, holding no lock.

    SQLite syncs the database file only when a checkpoint has copied the whole WAL back.
    Under steady writes a PASSIVE checkpoint never quite catches up, so its pages stay
    dirty in memory until the RESTART that does catch up syncs them all while it holds
    every writer: ~150 MB and 200-250 ms of stalled replies every few seconds of a
    province's morning (measured). Synced here after each checkpoint, the RESTART's sync
    finds a few pages. A failure is logged, never raised. A failed sync is a disk error:
    on Linux since 4.13 SQLite's own next sync of the file fails too, but an older kernel
    reports a write-back error to one caller only, this one."""
    if not path:
        return
    try:  # non-blocking: a FIFO put in the file's place must not hang the schedule here
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        log.warning("cannot open %s to sync it: %s", path, error)
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.error("%s is no longer a regular file: not synced", path)
            return
        _fdatasync(fd)
    except OSError as error:
        log.error("syncing %s failed (checkpointed pages may not be on disk): %s", path, error)
    finally:
        os.close(fd)


@contextmanager
def checkpoint_after(db: sqlite_utils.Database) -> Iterator[None]:
    """Long writes in batches (a roster import, a fan-out, a delivery round): no commit
    inside checkpoints, one PASSIVE checkpoint after, outside the write lock.

    A commit that crosses 1,000 WAL pages copies them back into the database, fsyncs
    included, before the transaction lets go of the lock file: every callback waits for it
    (half a second, measured under a roster import; under a province's fan-out, at each of
    its 400 batches). The checkpoint after syncs what it copied (`sync_database_file`),
    also outside the lock."""
    size = db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    db.conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        db.conn.execute(f"PRAGMA wal_autocheckpoint = {int(size)}")
    if size > 0 and not db.conn.in_transaction:  # 0: Litestream's, or a serving connection
        passive_checkpoint(db)


def fetch_all(db: sqlite_utils.Database, sql: str, params: Iterable[Any] | dict = ()) -> list[dict]:
    """Rows as dicts by plain sqlite3 (hot paths: cheaper than sqlite-utils' query)."""
    cursor = db.conn.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def first(rows: list[dict], default: dict | None = None) -> dict | None:
    return rows[0] if rows else default


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply the migrations the database lacks; return their numbers."""
    applied = []
    for number, migration in enumerate(MIGRATIONS, start=1):
        if schema_version(db) >= number:
            continue
        with transaction(db):
            if schema_version(db) >= number:  # another process applied it meanwhile
                continue
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
        applied.append(number)
    return applied


def open_db(path: str | os.PathLike[str], *, create: bool = True) -> sqlite_utils.Database:
    """Open and bring the schema up to date (the CLI's and the app's way in)."""
    if not create and str(path) != ":memory:" and not Path(path).exists():
        raise FileNotFoundError(f"database {path} does not exist: run `gridwatch init` first")
    db = connect(path)
    migrate(db)
    return db


class LockBusy(Exception):
    "The write lock stayed taken for as long as the caller would wait; nothing was written."


class transaction:
    """BEGIN IMMEDIATE … COMMIT, nested uses join the outer one.

    `yields` (the schedule's batches) lets every other writer go first: a province's
    fan-out writes 100,000 messages, and taking turns on the write lock was not enough (a
    serving worker asks for the lock again only after it has read and parsed its next
    request, by which time the job has taken it back: replies got through at ~60 a second
    while it ran, bench.province). Every other writer holds `<db>-lock.line` shared while
    it waits and writes; a yielding transaction starts when it can take that file
    exclusively, i.e. when no reply is waiting or writing, or after MAX_YIELD_SECONDS.

    `patience`, when given, is how long to wait for the write lock: the pauses (seconds)
    before each try; when none succeeds, LockBusy is raised before anything is written.
    Without it the transaction waits its turn however long it takes.
    """

    def __init__(
        self,
        db: sqlite_utils.Database,
        patience: Sequence[float] | None = None,
        yields: bool = False,
    ) -> None:
        self.conn = db.conn
        self.lock_fd: int | None = getattr(db, "write_lock_fd", None)
        self.line_fd: int | None = getattr(db, "line_lock_fd", None)
        self.patience = patience
        self.yields = yields
        self.outer = False
        self.in_line = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            if self.lock_fd is not None:
                try:
                    self._lock()
                except BaseException:  # LockBusy, or a signal while waiting
                    self._leave_line()
                    raise
            try:
                self._begin()
            except BaseException:
                self._unlock()
                raise
        return self.conn

    def _begin(self) -> None:
        if self.patience is None:
            self.conn.execute("BEGIN IMMEDIATE")
            return
        # a writer that skips the lock file (an sqlite3 shell, a backup) is waited for as
        # long as the lock file is, not for SQLite's whole busy timeout
        self.conn.execute(f"PRAGMA busy_timeout = {max(1, round(sum(self.patience) * 1000))}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            raise LockBusy(f"the database stayed locked: {error}") from error
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.outer:
            return
        try:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:  # a full disk, say: nothing half-written stays open
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._unlock()

    def _lock(self) -> None:
        if self.patience is None:
            self._join_line(blocking=True)
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            return
        for pause in self.patience:
            if pause:
                time.sleep(pause)
            if not self._join_line(blocking=False):
                continue
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return
        raise LockBusy(f"the write lock stayed taken ({sum(self.patience) * 1000:.0f} ms)")

    def _join_line(self, blocking: bool) -> bool:
        """Stand in line (or, yielding, wait for it to clear); False when a patient writer
        could not stand in line at once (the schedule's poll held it that instant)."""
        if self.line_fd is None or self.in_line:
            return True
        if self.yields:
            self._wait_for_no_line()
            return True
        try:
            fcntl.flock(self.line_fd, fcntl.LOCK_SH if blocking else fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.in_line = True
        return True

    def _wait_for_no_line(self) -> None:
        assert self.line_fd is not None
        deadline = time.monotonic() + MAX_YIELD_SECONDS
        while True:
            try:
                fcntl.flock(self.line_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(YIELD_POLL_SECONDS)
                    continue
                return
            fcntl.flock(self.line_fd, fcntl.LOCK_UN)
            return

    def _unlock(self) -> None:
        if self.lock_fd is not None:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        self._leave_line()

    def _leave_line(self) -> None:
        if self.in_line:
            assert self.line_fd is not None
            fcntl.flock(self.line_fd, fcntl.LOCK_UN)
            self.in_line = False


def insert_row(db: sqlite_utils.Database, table: str, record: dict[str, object]) -> int:
    """INSERT one row by plain SQL (hot paths: sqlite-utils inspects the schema on each call)."""
    columns = ", ".join(record)
    marks = ", ".join("?" * len(record))
    cursor = db.conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(record.values())
    )
    return int(cursor.lastrowid or 0)


def insert_rows(
    db: sqlite_utils.Database, table: str, records: Sequence[dict[str, object]]
) -> list[int]:
    """INSERT rows with the same columns in as few statements as SQLite's 999 bound values
    per statement (the least any build allows) permit; their ids in the order given.

    RETURNING hands the ids back in no set order. SQLite gives each new row without an id
    the table's largest rowid plus one, in the order of the VALUES, so sorted they line up;
    rows that carry their ids must carry them ascending (ValueError otherwise). A table
    whose largest rowid is 2**63-1 gets random rowids: ValueError rather than ids mixed up.
    """
    if not records:
        return []
    columns = list(records[0])
    if not columns or any(record.keys() != records[0].keys() for record in records):
        raise ValueError(f"insert_rows into {table}: every row needs the same columns")
    given = [int(record["id"]) for record in records] if "id" in records[0] else None  # type: ignore[call-overload]
    if given is not None and any(a >= b for a, b in pairwise(given)):
        raise ValueError(f"insert_rows into {table}: the ids given must ascend")
    one = "(" + ", ".join("?" * len(columns)) + ")"
    per_statement = max(1, 999 // len(columns))
    ids: list[int] = []
    for start in range(0, len(records), per_statement):
        chunk = records[start : start + per_statement]
        values = [record[column] for record in chunk for column in columns]
        cursor = db.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{', '.join([one] * len(chunk))} RETURNING id",
            values,
        )
        new = sorted(row[0] for row in cursor.fetchall())
        if given is None and new and new[-1] - new[0] != len(new) - 1:
            raise ValueError(f"insert_rows into {table}: SQLite gave rowids out of order")
        ids.extend(new)
    return ids


def update_row(
    db: sqlite_utils.Database, table: str, row_id: object, changes: dict[str, object]
) -> None:
    """UPDATE one row by its `id`."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    db.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), row_id])
