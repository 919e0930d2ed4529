"""Shared fixtures: real SQLite files in tmp_path, the demo roster, the CLI runner.

Every test runs in its own tmp_path as the working directory, with no GRIDWATCH_* or
WECHAT_* variable set, so a developer's ./gridwatch.toml or shell environment never leaks in.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

import storage.db as storage_db
from bot.config import Config
from storage.db import open_db
from storage.roster import import_roster
from tests.fake_wechat import MP, WORK, config_for, make_app

ROOT = Path(__file__).resolve().parent.parent
DEMO_ROSTER = ROOT / "examples" / "demo_roster"
TZ = ZoneInfo("Asia/Shanghai")
# The demo roster's "today": 林峰 starts, 何平's last day was yesterday.
NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=TZ)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real config file, database or channel settings: env cleared, cwd = tmp_path."""
    for name in list(os.environ):
        if name.startswith(("GRIDWATCH_", "WECHAT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gridwatch.db"


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[[str], sqlite_utils.Database]]:
    """Open (and migrate) more databases in tmp_path by file name; all closed at teardown."""
    opened: list[sqlite_utils.Database] = []

    def make(name: str) -> sqlite_utils.Database:
        database = open_db(tmp_path / name)
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()


@pytest.fixture
def database_syncs(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each sync of db_path's file by `storage.db.sync_database_file` (the database must
    exist): whether a writer could have begun at that moment, both the queue on the lock
    file (`<db>-lock`, where the app's writers wait first) and SQLite's write lock."""
    synced: list[bool] = []
    real = storage_db._fdatasync

    def queue_is_free() -> bool:
        try:
            fd = os.open(f"{db_path}-lock", os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another description: it conflicts
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # and lets go of it

    def spy(fd: int) -> None:
        if os.path.samestat(os.fstat(fd), os.stat(db_path)):
            probe = sqlite3.connect(db_path, timeout=0)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                synced.append(queue_is_free())
            except sqlite3.OperationalError:
                synced.append(False)
            finally:
                probe.close()
        real(fd)

    monkeypatch.setattr(storage_db, "_fdatasync", spy)
    return synced


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """The database at db_path, opened and migrated."""
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def tree(db: sqlite_utils.Database) -> sqlite_utils.Database:
    """A village with one grid, one member."""
    db["units"].insert_all(
        [
            {"code": "HX", "name": "河西村", "level": "village", "parent": None},
            {"code": "HX01", "name": "河西村第一网格", "level": "grid", "parent": "HX"},
        ]
    )
    db["people"].insert({"id": 1, "name": "梁红", "roles": "member", "unit": "HX01"})
    return db


@pytest.fixture
def roster_dir(tmp_path: Path) -> Path:
    """A private copy of examples/demo_roster (CSV, Chinese headers) that tests may edit."""
    target = tmp_path / "roster"
    shutil.copytree(DEMO_ROSTER, target)
    return target


@pytest.fixture
def loaded_db(db: sqlite_utils.Database, roster_dir: Path, config: Config) -> sqlite_utils.Database:
    """`db` with the demo roster imported at NOW (5 units, 9 people, 30 subjects)."""
    report = import_roster(
        db, roster_dir, now=NOW, categories=config.categories, period=config.period_days
    )
    assert not report.errors, report.errors
    return db


def stop_runaway_queries(conn: sqlite3.Connection, steps: int = 20_000) -> None:
    """Interrupt any statement after `steps` thousand SQLite VM steps on this connection, so a
    query that would run forever fails the test instead of hanging it."""
    count = 0

    def progress() -> int:
        nonlocal count
        count += 1
        return 1 if count > steps else 0

    conn.set_progress_handler(progress, 1000)


@pytest.fixture
def cyclic_db(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """The demo roster with unit cycles written by hand in SQL (import refuses them): HX and
    its grid HX01 are each other's parent, and the county KC is its own."""
    loaded_db.execute("UPDATE units SET parent = 'HX01' WHERE code = 'HX'")
    loaded_db.execute("UPDATE units SET parent = 'KC' WHERE code = 'KC'")
    stop_runaway_queries(loaded_db.conn)
    return loaded_db


@pytest.fixture
def dump_db() -> Callable[[sqlite_utils.Database], str]:
    """The whole database as SQL text, to prove that something changed nothing."""

    def dump(database: sqlite_utils.Database) -> str:
        return "\n".join(database.conn.iterdump())

    return dump


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def run_cli(runner: CliRunner, db_path: Path) -> Callable[..., Result]:
    """run_cli("roster", "import", path) invokes `gridwatch ... --db db_path`.

    Keyword arguments go to CliRunner.invoke (input=, env=, ...). Exceptions other than
    SystemExit propagate, so a crash shows its traceback instead of a bare exit code 1.
    """
    from bot.cli.main import cli

    def run(*args: str | os.PathLike[str], **kwargs: object) -> Result:
        argv = [str(arg) for arg in args] + ["--db", str(db_path)]
        kwargs.setdefault("catch_exceptions", False)
        return runner.invoke(cli, argv, **kwargs)  # type: ignore[arg-type]

    return run


@pytest.fixture
def work(loaded_db: sqlite_utils.Database, db_path: Path) -> FlaskClient:
    """A test client of the app in WeCom mode on the loaded database."""
    return make_app(db_path, config_for(WORK)).test_client()


@pytest.fixture
def mp(loaded_db: sqlite_utils.Database, db_path: Path) -> FlaskClient:
    """A test client of the app in Official Account mode on the loaded database."""
    return make_app(db_path, config_for(MP)).test_client()


@pytest.fixture
def mp_plaintext(loaded_db: sqlite_utils.Database, db_path: Path) -> FlaskClient:
    """The Official Account in plaintext mode (明文模式): no EncodingAESKey is set."""
    return make_app(db_path, config_for(MP, aes_key="")).test_client()


@pytest.fixture
def say(loaded_db: sqlite_utils.Database, config: Config) -> Callable[..., str]:
    """say("lianghong", "张三 36.5") sends one message through the pipeline (at 3/2 10:40
    unless `at` is given) and returns the reply."""
    from bot.context import Context
    from handlers.pipeline import Incoming, handle_message

    ctx = Context(db=loaded_db, config=config)
    default = dt.datetime(2026, 3, 2, 10, 40, tzinfo=ZoneInfo("Asia/Shanghai"))

    def send(sender: str, text: str, at: dt.datetime = default) -> str:
        return handle_message(
            ctx, Incoming(channel="console", sender=sender, text=text, at=at, received_at=at)
        ).reply

    return send
