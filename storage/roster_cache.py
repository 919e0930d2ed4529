"""Roster reads on the message path, cached per roster version.

Triggers bump `settings.roster_version` on every change to units, people, subjects or
assignments; a cached answer is reused only while the version it was read at is current.
Callers must not modify what they get back (it is shared).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import sqlite_utils

from storage.people import person_by_wechat_id
from storage.subjects import member_subjects, village_subjects

MAX_ENTRIES = 1024  # members and villages in use at one moment; a few MB


class _Cache:
    """A small LRU shared by the serving threads."""

    def __init__(self) -> None:
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = read()
        with self.lock:
            self.entries[key] = value
            if len(self.entries) > MAX_ENTRIES:
                self.entries.popitem(last=False)
        return value


_cache = _Cache()


def roster_version(db: sqlite_utils.Database) -> int:
    row = db.conn.execute("SELECT value FROM settings WHERE key = 'roster_version'").fetchone()
    return int(row[0]) if row else 0


def _key(db: sqlite_utils.Database, *parts: Hashable) -> tuple:
    # the database file and its roster version: tests and tools open many databases
    return (getattr(db, "path_key", id(db)), roster_version(db), *parts)


def cached_person(db: sqlite_utils.Database, wechat_id: str) -> dict | None:
    return _cache.get(_key(db, "person", wechat_id), lambda: person_by_wechat_id(db, wechat_id))


def cached_member_subjects(db: sqlite_utils.Database, person_id: int, day: dt.date) -> list[dict]:
    return _cache.get(
        _key(db, "member", person_id, day), lambda: member_subjects(db, person_id, day)
    )


def cached_village_subjects(db: sqlite_utils.Database, unit: str, day: dt.date) -> list[dict]:
    return _cache.get(_key(db, "village", unit, day), lambda: village_subjects(db, unit, day))
