"""Opening the database: WAL, foreign keys, busy timeout, schema migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from storage.migrations import MIGRATIONS


def default_db_path() -> str:
    return os.environ.get("GRIDWATCH_DB") or "gridwatch.db"


def connect(path: str | os.PathLike[str]) -> sqlite_utils.Database:
    """Open a database file with the settings every process must share."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn)


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply the migrations the database lacks; return their numbers."""
    applied = []
    for number, migration in enumerate(MIGRATIONS, start=1):
        if schema_version(db) >= number:
            continue
        with transaction(db):
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


class transaction:
    """BEGIN IMMEDIATE … COMMIT, nested uses join the outer one."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.conn = db.conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def insert_row(db: sqlite_utils.Database, table: str, record: dict[str, object]) -> int:
    """INSERT one row by plain SQL (hot paths: sqlite-utils inspects the schema on each call)."""
    columns = ", ".join(record)
    marks = ", ".join("?" * len(record))
    cursor = db.conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(record.values())
    )
    return int(cursor.lastrowid or 0)


def update_row(
    db: sqlite_utils.Database, table: str, row_id: object, changes: dict[str, object]
) -> None:
    """UPDATE one row by its `id`."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    db.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), row_id])
