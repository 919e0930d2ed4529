"""The SQLite file: settings, versioned migrations, derived columns, what "active" means."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from storage import db as storage_db
from storage.db import (
    LockBusy,
    connect,
    migrate,
    open_db,
    schema_version,
    transaction,
)
from storage.migrations import MIGRATIONS
from storage.subjects import member_subjects, unit_subjects

TABLES = {
    "units",
    "people",
    "subjects",
    "assignments",
    "contacts",
    "inbox",
    "outbox",
    "sends",
    "needs",
    "audit",
}


def schema(database: sqlite_utils.Database) -> list[tuple]:
    return database.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()


def pragma(database: sqlite_utils.Database, name: str) -> object:
    return database.execute(f"PRAGMA {name}").fetchone()[0]


# ---------------------------------------------------------------- migrations


def test_migrate_from_empty_applies_every_migration(db_path: Path) -> None:
    database = connect(db_path)
    try:
        assert schema_version(database) == 0
        assert migrate(database) == list(range(1, len(MIGRATIONS) + 1))
        assert schema_version(database) == len(MIGRATIONS)
        assert TABLES <= set(database.table_names())
    finally:
        database.close()


def test_migrate_from_current_changes_nothing(db_path: Path) -> None:
    first = open_db(db_path)
    before = schema(first)
    first.close()
    second = connect(db_path)
    try:
        assert migrate(second) == []
        assert schema(second) == before
        assert schema_version(second) == len(MIGRATIONS)
    finally:
        second.close()


def test_two_processes_starting_together_migrate_once(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the old version; one migrates while the other waits for the write lock,
    which then finds the work done instead of failing on it."""
    late, early = connect(db_path), connect(db_path)
    read_before_the_lock = storage_db.schema_version
    looks = []

    def first_look_finds_it_empty(database: sqlite_utils.Database) -> int:
        looks.append(database)
        if len(looks) == 1:  # the late one looked, and the early one migrates now
            assert migrate(early) == list(range(1, len(MIGRATIONS) + 1))
            return 0
        return read_before_the_lock(database)

    monkeypatch.setattr(storage_db, "schema_version", first_look_finds_it_empty)
    try:
        assert migrate(late) == []
        assert read_before_the_lock(late) == len(MIGRATIONS)
    finally:
        late.close()
        early.close()


def test_reopening_keeps_the_data(db_path: Path) -> None:
    first = open_db(db_path)
    first["units"].insert({"code": "HX", "name": "河西村", "level": "village", "parent": None})
    first.close()
    second = open_db(db_path)
    try:
        assert second.execute("SELECT name FROM units").fetchall() == [("河西村",)]
    finally:
        second.close()


def test_a_failing_migration_is_rolled_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(database: sqlite_utils.Database) -> None:
        database.execute("CREATE TABLE half_done (x INTEGER)")
        database.execute("THIS IS NOT SQL")

    database = open_db(db_path)
    try:
        before = schema(database)
        monkeypatch.setattr(storage_db, "MIGRATIONS", [*MIGRATIONS, broken])
        with pytest.raises(sqlite3.OperationalError):
            migrate(database)
        assert schema_version(database) == len(MIGRATIONS)
        assert schema(database) == before
    finally:
        database.close()


def test_open_db_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gridwatch init"):
        open_db(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


# ---------------------------------------------------------------- connection settings


def test_wal_foreign_keys_and_busy_timeout(db: sqlite_utils.Database) -> None:
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "foreign_keys") == 1
    assert pragma(db, "busy_timeout") == 30000


def test_foreign_keys_are_enforced(db: sqlite_utils.Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO people (name, roles, unit) VALUES ('梁红', 'member', 'NOWHERE')")


def test_unit_level_is_checked(db: sqlite_utils.Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO units (code, name, level) VALUES ('P', '浙江省', 'province')")


def test_transaction_rolls_back_on_error_and_nests(db: sqlite_utils.Database) -> None:
    with pytest.raises(RuntimeError):
        with transaction(db):
            db.execute("INSERT INTO units (code, name, level) VALUES ('HX', '河西村', 'village')")
            with transaction(db):
                db.execute("INSERT INTO units (code, name, level) VALUES ('CG', '城关镇', 'town')")
            raise RuntimeError("abort")
    assert db.execute("SELECT count(*) FROM units").fetchone()[0] == 0
    with transaction(db):
        db.execute("INSERT INTO units (code, name, level) VALUES ('HX', '河西村', 'village')")
    assert not db.conn.in_transaction
    assert db.execute("SELECT count(*) FROM units").fetchone()[0] == 1


def test_a_second_connection_sees_committed_writes(db: sqlite_utils.Database, db_path: Path):
    other = connect(db_path)
    try:
        with transaction(db):
            db.execute("INSERT INTO units (code, name, level) VALUES ('HX', '河西村', 'village')")
        assert other.execute("SELECT code FROM units").fetchall() == [("HX",)]
    finally:
        other.close()


# ---------------------------------------------------------------- subjects and "active"


def add_subject(
    database: sqlite_utils.Database,
    start: str,
    days: int,
    status: str = "active",
    released_on: str | None = None,
    unit: str = "HX01",
) -> int:
    subject_id = (
        database["subjects"]
        .insert(
            {
                "name": "张三",
                "category": "涉鄂人员",
                "unit": unit,
                "start_date": start,
                "days": days,
                "status": status,
                "released_on": released_on,
            }
        )
        .last_pk
    )
    database["assignments"].insert({"subject_id": subject_id, "person_id": 1, "position": 0})
    return subject_id


@pytest.mark.parametrize(
    ("start", "days", "end"),
    [
        ("2026-03-01", 14, "2026-03-14"),
        ("2026-03-01", 1, "2026-03-01"),
        ("2026-02-16", 14, "2026-03-01"),  # across the end of February
        ("2028-02-20", 10, "2028-02-29"),  # leap year
        ("2026-12-25", 14, "2027-01-07"),  # across the new year
    ],
)
def test_end_date_is_the_last_monitored_day(
    tree: sqlite_utils.Database, start: str, days: int, end: str
) -> None:
    subject_id = add_subject(tree, start, days)
    assert tree["subjects"].get(subject_id)["end_date"] == end


def test_end_date_follows_a_change_of_days(tree: sqlite_utils.Database) -> None:
    subject_id = add_subject(tree, "2026-03-01", 14)
    tree["subjects"].update(subject_id, {"days": 21})
    assert tree["subjects"].get(subject_id)["end_date"] == "2026-03-21"


ACTIVE = [
    # id, start, days, status, released_on, day, active?
    ("day-before-start", "2026-03-01", 14, "active", None, "2026-02-28", False),
    ("start-day", "2026-03-01", 14, "active", None, "2026-03-01", True),
    ("middle", "2026-03-01", 14, "active", None, "2026-03-07", True),
    ("last-day-start-plus-days-minus-1", "2026-03-01", 14, "active", None, "2026-03-14", True),
    ("day-after-last", "2026-03-01", 14, "active", None, "2026-03-15", False),
    ("one-day-period", "2026-03-01", 1, "active", None, "2026-03-01", True),
    ("one-day-period-next-day", "2026-03-01", 1, "active", None, "2026-03-02", False),
    ("released-before-released-on", "2026-03-01", 14, "released", "2026-03-05", "2026-03-04", True),
    ("released-on-released-on", "2026-03-01", 14, "released", "2026-03-05", "2026-03-05", False),
    ("released-after", "2026-03-01", 14, "released", "2026-03-05", "2026-03-10", False),
    ("hospitalized-before", "2026-03-01", 14, "hospitalized", "2026-03-03", "2026-03-02", True),
    ("hospitalized-from-its-day", "2026-03-01", 14, "hospitalized", "2026-03-03", "2026-03-03",
     False),
    ("transferred-without-a-date", "2026-03-01", 14, "transferred", None, "2026-03-02", False),
    ("released-on-after-the-period", "2026-03-01", 14, "released", "2026-03-20", "2026-03-15",
     False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "days", "status", "released_on", "day", "active"),
    [c[1:] for c in ACTIVE],
    ids=[c[0] for c in ACTIVE],
)
def test_active_on_a_day(
    tree: sqlite_utils.Database,
    start: str,
    days: int,
    status: str,
    released_on: str | None,
    day: str,
    active: bool,
) -> None:
    subject_id = add_subject(tree, start, days, status, released_on)
    on = dt.date.fromisoformat(day)
    expected = [subject_id] if active else []
    assert [s["id"] for s in member_subjects(tree, 1, on)] == expected
    assert [s["id"] for s in unit_subjects(tree, "HX01", on)] == expected
    assert [s["id"] for s in unit_subjects(tree, "HX", on)] == expected  # from the village


def test_unit_subjects_covers_the_tree_only(tree: sqlite_utils.Database) -> None:
    tree["units"].insert({"code": "HD", "name": "河东村", "level": "village", "parent": None})
    in_grid = add_subject(tree, "2026-03-01", 14, unit="HX01")
    in_village = add_subject(tree, "2026-03-01", 14, unit="HX")
    elsewhere = add_subject(tree, "2026-03-01", 14, unit="HD")
    day = dt.date(2026, 3, 2)
    assert [s["id"] for s in unit_subjects(tree, "HX", day)] == [in_grid, in_village]
    assert [s["id"] for s in unit_subjects(tree, "HX01", day)] == [in_grid]
    assert [s["id"] for s in unit_subjects(tree, "HD", day)] == [elsewhere]
    assert unit_subjects(tree, "NOWHERE", day) == []


def test_member_subjects_only_lists_assigned_ones(tree: sqlite_utils.Database) -> None:
    tree["people"].insert({"id": 2, "name": "韩冰", "roles": "member", "unit": "HX01"})
    mine = add_subject(tree, "2026-03-01", 14)
    theirs = add_subject(tree, "2026-03-01", 14)
    tree.execute("UPDATE assignments SET person_id = 2 WHERE subject_id = ?", [theirs])
    day = dt.date(2026, 3, 2)
    assert [s["id"] for s in member_subjects(tree, 1, day)] == [mine]
    assert [s["id"] for s in member_subjects(tree, 2, day)] == [theirs]


def test_a_messages_outbox_rows_are_found_by_index_not_by_scanning_the_outbox(
    db: sqlite_utils.Database,
) -> None:
    """Alerts are sent at once after each message that raises them: the lookup must not
    read the whole outbox (hundreds of thousands of rows by the end of a campaign)."""
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM outbox WHERE inbox_id = ? AND status = 'queued'",
        [1],
    ).fetchall()
    assert any("USING INDEX outbox_inbox" in row[-1] for row in plan), plan


def test_a_patient_transaction_gives_up_before_writing_when_the_lock_stays_taken(
    db: sqlite_utils.Database, db_path: Path
) -> None:
    other = connect(db_path)
    try:
        with transaction(other):  # another writer holds the lock throughout
            with pytest.raises(LockBusy), transaction(db, patience=(0.0, 0.001, 0.002)):
                db.execute("INSERT INTO settings (key, value) VALUES ('never', 'written')")
            assert not db.conn.in_transaction
        with transaction(db, patience=(0.0,)):  # free again: taken at the first try
            db.execute("INSERT INTO settings (key, value) VALUES ('now', 'written')")
    finally:
        other.close()
    keys = {key for (key,) in db.execute("SELECT key FROM settings").fetchall()}
    assert "now" in keys and "never" not in keys


def test_a_patient_transaction_gives_up_on_a_writer_that_skips_the_lock_file(
    db: sqlite_utils.Database, db_path: Path
) -> None:
    """An sqlite3 shell or a backup holds the database itself: waited for as long as the
    lock file would be, not SQLite's whole busy timeout, and the timeout is restored."""
    shell = sqlite3.connect(db_path, isolation_level=None)
    try:
        shell.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockBusy), transaction(db, patience=(0.0, 0.01)):
            pass
        assert not db.conn.in_transaction
        assert pragma(db, "busy_timeout") == storage_db.BUSY_TIMEOUT_MS
    finally:
        shell.execute("ROLLBACK")
        shell.close()


class _Flocks:
    """storage.db's fcntl, telling when a thread asks for the write lock or polls the line."""

    def __init__(self) -> None:
        self.asked: dict[str, threading.Event] = {}

    def event(self, name: str) -> threading.Event:
        return self.asked.setdefault(name, threading.Event())

    def flock(self, fd: int, operation: int) -> None:
        asked = self.event(threading.current_thread().name)
        if operation == fcntl.LOCK_EX:  # it blocks: asked is what can be known
            asked.set()
        try:
            fcntl.flock(fd, operation)
        finally:  # a shared lock taken, a poll answered
            asked.set()

    def __getattr__(self, name: str) -> object:
        return getattr(fcntl, name)


def test_a_schedule_writer_lets_every_waiting_reply_go_first(
    db: sqlite_utils.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A province's fan-out writes a batch only when no reply waits for the lock: the
    reply that came while another held it goes before the batch that waited longer."""
    flocks = _Flocks()
    monkeypatch.setattr(storage_db, "fcntl", flocks)
    monkeypatch.setattr(storage_db, "MAX_YIELD_SECONDS", 60.0)
    schedule = connect(db_path)
    reply = connect(db_path)
    order: list[str] = []

    def write(who: sqlite_utils.Database, name: str) -> None:
        with transaction(who, yields=who is schedule):
            who.execute("INSERT INTO settings (key, value) VALUES (?, ?)", [name, "x"])
            order.append(name)

    threads = [
        threading.Thread(target=write, args=(schedule, "schedule"), name="schedule"),
        threading.Thread(target=write, args=(reply, "reply"), name="reply"),
    ]
    with transaction(db):  # a reply being stored holds the lock
        threads[0].start()
        assert flocks.event("schedule").wait(10)  # the batch waits for the line to clear
        threads[1].start()
        assert flocks.event("reply").wait(10)  # the next reply is in line
        db.execute("INSERT INTO settings (key, value) VALUES ('first', 'x')")
    for thread in threads:
        thread.join(10)
    assert order == ["reply", "schedule"]
    schedule.conn.close()
    reply.conn.close()


def test_a_schedule_writer_goes_anyway_when_the_line_never_clears(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_db, "MAX_YIELD_SECONDS", 0.05)
    schedule = open_db(db_path)
    line = os.open(f"{db_path}-lock.line", os.O_RDWR)
    try:
        fcntl.flock(line, fcntl.LOCK_SH)  # a writer in line for ever (a stuck process)
        with transaction(schedule, yields=True):
            schedule.execute("INSERT INTO settings (key, value) VALUES ('batch', 'written')")
    finally:
        os.close(line)
    assert schedule.execute("SELECT value FROM settings WHERE key = 'batch'").fetchone()[0]
    schedule.conn.close()


def test_a_writer_that_gave_up_leaves_the_line(db: sqlite_utils.Database, db_path: Path) -> None:
    other = connect(db_path)
    try:
        with transaction(other), pytest.raises(LockBusy), transaction(db, patience=(0.0,)):
            pass
    finally:
        other.conn.close()
    line = os.open(f"{db_path}-lock.line", os.O_RDWR)
    try:
        fcntl.flock(line, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it: no error
    finally:
        os.close(line)


def _line_is_free(db_path: Path) -> bool:
    line = os.open(f"{db_path}-lock.line", os.O_RDWR)
    try:
        fcntl.flock(line, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(line)


def test_a_writer_interrupted_while_waiting_leaves_the_line(
    db: sqlite_utils.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal while a reply waits for the write lock: the line is not left held (the
    schedule would then wait its longest on every batch)."""
    lock_fd = db.write_lock_fd  # type: ignore[attr-defined]

    class Interrupted:
        def __getattr__(self, name: str) -> object:
            return getattr(fcntl, name)

        def flock(self, fd: int, operation: int) -> None:
            if fd == lock_fd and operation == fcntl.LOCK_EX:
                raise KeyboardInterrupt
            fcntl.flock(fd, operation)

    monkeypatch.setattr(storage_db, "fcntl", Interrupted())
    with pytest.raises(KeyboardInterrupt), transaction(db):
        pass
    assert _line_is_free(db_path)


def test_a_patient_writer_does_not_wait_on_the_line_past_its_patience(
    db: sqlite_utils.Database, db_path: Path
) -> None:
    """The schedule holds the line exclusively for the instant of its poll; a patient
    writer caught there gives up as patiently as it does for the write lock."""
    line = os.open(f"{db_path}-lock.line", os.O_RDWR)
    try:
        fcntl.flock(line, fcntl.LOCK_EX)  # the schedule's poll, paused right there
        with pytest.raises(LockBusy), transaction(db, patience=(0.0, 0.001)):
            pass
    finally:
        os.close(line)
    assert _line_is_free(db_path) and not db.conn.in_transaction
    with transaction(db, patience=(0.0,)):  # free again: taken at the first try
        db.execute("INSERT INTO settings (key, value) VALUES ('now', 'written')")


def test_the_line_file_of_another_user_is_shared_read_only(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sudo gridwatch tick` created the line file first: a server that may only read it
    still stands in line (flock needs no write access)."""
    open_db(db_path).conn.close()
    real_open = os.open

    def as_another_user(path: str, flags: int, *mode: int) -> int:
        if path.endswith(".line") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *mode)

    monkeypatch.setattr(storage_db.os, "open", as_another_user)
    server = connect(db_path)
    monkeypatch.undo()
    try:
        assert getattr(server, "line_lock_fd", None) is not None
        with transaction(server):  # in line, read-only
            assert not _line_is_free(db_path)
    finally:
        server.conn.close()


def test_a_long_write_checkpoints_once_after_outside_the_lock(
    db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that crosses 1,000 WAL pages would copy them back holding the lock file;
    inside `checkpoint_after` no commit does, and one PASSIVE checkpoint follows."""
    checkpoints: list[bool] = []
    monkeypatch.setattr(
        storage_db, "passive_checkpoint", lambda d: checkpoints.append(d.conn.in_transaction)
    )
    before = pragma(db, "wal_autocheckpoint")
    with storage_db.checkpoint_after(db):
        with transaction(db):
            assert pragma(db, "wal_autocheckpoint") == 0
        assert checkpoints == []
    assert pragma(db, "wal_autocheckpoint") == before > 0
    assert checkpoints == [False]
    with transaction(db), storage_db.checkpoint_after(db):  # inside a transaction: none
        pass
    assert checkpoints == [False]


def test_a_long_writes_checkpoint_syncs_the_database_file_outside_the_lock(
    db: sqlite_utils.Database, database_syncs: list[bool]
) -> None:
    """What the schedule's checkpoint copied is synced by it, not left to the serving
    checkpointer's next RESTART (which holds every writer while it syncs)."""
    with storage_db.checkpoint_after(db):
        for number in range(20):
            with transaction(db):
                db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", [f"s{number}", "x"])
    assert database_syncs == [True]


def test_a_database_path_that_became_a_fifo_is_not_waited_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone put a FIFO where the database file was: the sync after a checkpoint says so
    and returns (a blocking open would wait for a writer that never comes, and hold up the
    schedule's job or the checkpointer)."""
    fifo = tmp_path / "gridwatch.db"
    os.mkfifo(fifo)
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (storage_db.sync_database_file(str(fifo)), done.set()), daemon=True
    )
    worker.start()
    assert done.wait(5)
    assert "no longer a regular file" in caplog.text
