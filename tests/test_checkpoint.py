"""WAL checkpoints: serving connections never copy the WAL back on commit; one thread does."""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

import storage.checkpoint as checkpoint
import storage.db as storage_db
from bot.config import Config
from bot.web.app import build_app
from storage.checkpoint import RESTART_AT, Checkpointer, serving_connection
from storage.db import connect, transaction


def wal_pages(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()[1])


def serving_db(db_path: Path) -> sqlite_utils.Database:
    """A connection as the app serves with (close it)."""
    serving = connect(db_path)
    serving_connection(serving.conn)
    return serving


def write_rows(db: sqlite_utils.Database, count: int, prefix: str = "k") -> None:
    for number in range(count):
        with transaction(db):
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)", [f"{prefix}{number}", "x" * 3000]
            )


@contextmanager
def running(checkpointer: Checkpointer) -> Iterator[Checkpointer]:
    checkpointer.start()
    try:
        yield checkpointer
    finally:
        checkpointer.stop()


def wait_for(condition, seconds: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_serving_connection_lets_the_wal_grow(db: sqlite_utils.Database, db_path: Path) -> None:
    serving = serving_db(db_path)
    write_rows(serving, 1200)  # past the 1,000 pages at which a commit would checkpoint
    assert wal_pages(serving) > 1000
    serving.close()


def test_the_checkpointer_copies_the_wal_back(db: sqlite_utils.Database, db_path: Path) -> None:
    serving = serving_db(db_path)
    write_rows(serving, 300)
    with running(Checkpointer(str(db_path), interval=0.01)) as checkpointer:
        assert wait_for(lambda: checkpointer.rounds > 0)
        busy, pages, copied = checkpointer.checkpoint(serving.conn)
        assert busy == 0 and pages == copied > 300
        write_rows(serving, 5, "again")  # the WAL starts over once everything is copied back
        assert wal_pages(serving) < 300
    serving.close()


def test_one_checkpointer_per_database(db: sqlite_utils.Database, db_path: Path) -> None:
    first, second = Checkpointer(str(db_path), 0.01), Checkpointer(str(db_path), 0.01)
    first.start()
    try:
        assert wait_for(lambda: first.rounds > 0)
        second.start()
        time.sleep(0.1)
        assert second.rounds == 0
        first.stop()
        assert wait_for(lambda: second.rounds > 0)  # takes over when the first one stops
    finally:
        first.stop()
        second.stop()


def test_the_app_serves_on_connections_that_leave_checkpoints_to_its_thread(
    db_path: Path, config: Config
) -> None:
    app = build_app({"DB_PATH": str(db_path), "GRIDWATCH": config, "SCHEDULER": False})
    assert "gridwatch_background" not in app.extensions  # the factory starts nothing
    try:
        assert app.test_client().get("/healthz").status_code == 200  # the first request does
        conn = app.extensions["gridwatch_pool"].get().conn
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert app.extensions["gridwatch_background"].checkpointer.is_alive()
    finally:
        app.extensions["gridwatch_background"].stop()
        app.extensions["gridwatch_pool"].close_all()


def test_a_large_wal_starts_over_once_copied_back(db: sqlite_utils.Database, db_path: Path) -> None:
    serving = serving_db(db_path)
    write_rows(serving, RESTART_AT // 4)
    reader = connect(db_path)
    reader.execute("BEGIN")  # a reader that stays inside the WAL
    reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    checkpointer = Checkpointer(str(db_path))
    busy, pages, copied = checkpointer.checkpoint(checkpointer_conn := connect(db_path).conn)
    assert busy == 1 and pages == copied > RESTART_AT  # the restart waited a moment, no more
    write_rows(serving, 3, "meanwhile")  # writers go on
    assert wal_pages(serving) > pages
    reader.execute("COMMIT")
    busy, pages, copied = checkpointer.checkpoint(checkpointer_conn)
    assert busy == 0 and pages == copied
    write_rows(serving, 3, "after")
    assert wal_pages(serving) < 20  # started over
    checkpointer_conn.close()
    serving.close()
    reader.close()


def test_without_a_lock_file_every_process_checkpoints(
    db: sqlite_utils.Database, db_path: Path
) -> None:
    """A lock file that cannot be opened (here a folder in its place; a read-only folder or
    another user's file in life) must not leave the WAL growing with nobody copying it."""
    Path(f"{db_path}-checkpoint.lock").mkdir()
    serving = serving_db(db_path)
    write_rows(serving, 300)
    with running(Checkpointer(str(db_path), interval=0.01)) as checkpointer:
        assert wait_for(lambda: checkpointer.rounds > 0)
        assert checkpointer.without_lock
        write_rows(serving, 3, "after")
        assert wal_pages(serving) < 20
    serving.close()


def test_the_checkpointer_syncs_what_it_copied_holding_no_lock(
    db: sqlite_utils.Database, db_path: Path, database_syncs: list[bool]
) -> None:
    """SQLite syncs the database file only once a checkpoint copies the whole WAL; under
    steady writes that is the RESTART, which holds every writer meanwhile. The checkpointer
    syncs after each copy itself, with writers free to go on."""
    serving = serving_db(db_path)
    write_rows(serving, 50)
    synced = database_syncs
    checkpointer = Checkpointer(str(db_path))
    conn = connect(db_path).conn
    busy, pages, copied = checkpointer.checkpoint(conn)
    assert busy == 0 and copied > 0
    assert synced == [True]  # once, and a writer could have begun meanwhile
    assert checkpointer.checkpoint(conn)[2] == copied  # nothing new copied: no sync
    assert synced == [True]
    conn.close()
    serving.close()


def test_a_reader_holding_the_copy_back_gets_one_sync_per_copy(
    db: sqlite_utils.Database, db_path: Path, database_syncs: list[bool]
) -> None:
    """A PASSIVE stopped short by a reader copies without SQLite's sync: the checkpointer
    syncs it once; while the reader stays, the WAL grows and nothing new is synced."""
    serving = serving_db(db_path)
    write_rows(serving, 20, "a")
    reader = connect(db_path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    write_rows(serving, 20, "b")
    checkpointer = Checkpointer(str(db_path))
    conn = connect(db_path).conn
    busy, pages, copied = checkpointer.checkpoint(conn)
    assert 0 < copied < pages
    assert database_syncs == [True]
    write_rows(serving, 20, "c")
    _, grown, still = checkpointer.checkpoint(conn)
    assert grown > pages and still == copied  # the WAL grew, the copy did not
    assert database_syncs == [True]
    reader.execute("COMMIT")
    for opened in (conn, serving.conn, reader.conn):
        opened.close()


def test_a_sync_that_fails_is_logged_and_checkpoints_go_on(
    db: sqlite_utils.Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(storage_db, "_fdatasync", failing)
    serving = serving_db(db_path)
    write_rows(serving, 20)
    conn = connect(db_path).conn
    busy, pages, copied = Checkpointer(str(db_path)).checkpoint(conn)
    assert busy == 0 and pages == copied > 0
    assert "syncing" in caplog.text and "I/O error" in caplog.text
    conn.close()
    serving.close()


@pytest.mark.parametrize(
    ("reader_started", "says"),
    [
        ("before", "a reader keeps an old snapshot"),
        ("after", "all copied, but readers kept it from starting over"),
        ("never", None),  # the RESTART went through: it reports the old WAL's size
    ],
)
def test_a_large_wal_is_warned_about_with_its_cause(
    db: sqlite_utils.Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reader_started: str,
    says: str | None,
) -> None:
    """A reader that began before the writes holds the copy back; one that began after
    them only keeps the WAL from starting over."""
    monkeypatch.setattr(checkpoint, "LARGE_WAL", 50)
    monkeypatch.setattr(checkpoint, "RESTART_AT", 10)
    serving = serving_db(db_path)
    reader = connect(db_path)
    if reader_started == "before":
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    write_rows(serving, 80)
    if reader_started == "after":
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    conn = connect(db_path).conn
    Checkpointer(str(db_path)).checkpoint(conn)
    if says is None:
        assert "the WAL of" not in caplog.text
    else:
        assert says in caplog.text
    if reader.conn.in_transaction:
        reader.execute("COMMIT")
    for opened in (conn, serving.conn, reader.conn):
        opened.close()
