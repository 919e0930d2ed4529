"""One database connection per serving thread."""

from __future__ import annotations

import threading

import sqlite_utils

from storage.checkpoint import serving_connection
from storage.db import connect, migrate


class ConnectionPool:
    """One connection per thread, reused across requests (opening one costs more than a
    request's queries); the schema was migrated once when the app was built."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[sqlite_utils.Database] = []
        self.migrated = False

    def get(self) -> sqlite_utils.Database:
        db = getattr(self.local, "db", None)
        if db is None:
            db = connect(self.path)
            with self.lock:
                if not self.migrated:  # once per process (cheap when nothing is due)
                    migrate(db)
                    self.migrated = True
                self.opened.append(db)
            serving_connection(db.conn)
            self.local.db = db
        return db

    def close_all(self) -> None:
        with self.lock:
            for db in self.opened:
                db.conn.close()
            self.opened.clear()
        self.local = threading.local()
