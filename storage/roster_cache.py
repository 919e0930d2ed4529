"""Roster reads on the message path, cached per roster version.

Triggers bump `settings.roster_version` on every change to units, people, subjects or
assignments; a cached answer is reused only while the version it was read at is current.
Callers must not modify what they get back (it is shared).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from storage.people import person_by_wechat_id
from storage.subjects import member_subject_ids, subjects_by_ids, village_subjects
from storage.units import village_of

# A county's members all report within the same few minutes, and each serving process sees
# any of them: the cache holds a county (10,000 members: a person and a subject list each,
# 500 villages) rather than thrash. Member entries point into their village's rows, so the
# whole county costs ~20 MB per process (`make bench` measures the RSS).
MAX_ENTRIES = 32_768


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


@contextmanager
def one_roster_version(db: sqlite_utils.Database) -> Iterator[None]:
    """Reads inside share one look at the roster version (a message's reads take a few)."""
    db.pinned_roster_version = roster_version(db)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del db.pinned_roster_version  # type: ignore[attr-defined]


def _key(db: sqlite_utils.Database, *parts: Hashable) -> tuple:
    # the database file and its roster version: tests and tools open many databases
    version = getattr(db, "pinned_roster_version", None)
    if version is None:
        version = roster_version(db)
    return (getattr(db, "path_key", id(db)), version, *parts)


def cached_person(db: sqlite_utils.Database, wechat_id: str) -> dict | None:
    return _cache.get(_key(db, "person", wechat_id), lambda: person_by_wechat_id(db, wechat_id))


class Brief(Mapping[str, Any]):
    """A subject as a report reads it: a read-only mapping like the row it comes from
    (`s["name"]`, `s.get("address")`). A county's 50,000 of them stay in every serving
    process: as dicts they took ~30 MB of each one; this takes about a third."""

    __slots__ = ("id", "name", "unit", "category", "address")

    def __init__(self, row: Mapping[str, Any], address: bool = True) -> None:
        """`address` False leaves it out (""): only telling namesakes apart needs it."""
        self.id = row["id"]
        self.name = row["name"]
        self.unit = sys.intern(row["unit"])  # a village's rows share a few units and categories
        self.category = sys.intern(row["category"])
        self.address = row["address"] if address else ""

    def __getitem__(self, key: str) -> Any:
        if key not in _BRIEF_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__slots__)

    def __len__(self) -> int:
        return len(self.__slots__)

    def __repr__(self) -> str:
        return f"Brief({dict(self)})"


_BRIEF_FIELDS = frozenset(Brief.__slots__)


class Village:
    """A village's active subjects on a day (id, name, unit, category, address), shared by
    every member of the village."""

    def __init__(self, rows: list[dict]) -> None:
        shared = {name for name, count in Counter(row["name"] for row in rows).items() if count > 1}
        briefs = [Brief(row, address=row["name"] in shared) for row in rows]
        self.rows: list[Brief] = briefs
        # attributes, not the mapping: a province's morning builds a village per message
        self.by_id = {brief.id: brief for brief in briefs}
        self.by_name: dict[str, Brief] = {}
        for brief in briefs:
            self.by_name[brief.name] = brief  # namesakes: the later one, as a dict would keep
        self.names = tuple(sorted(self.by_name))  # unique, sorted
        self.row_names = tuple(brief.name for brief in briefs)  # in roster order
        self.namesakes: dict[str, list[Brief]] = {}  # names that two or more subjects share
        if len(self.names) < len(briefs):
            for brief in briefs:
                self.namesakes.setdefault(brief.name, []).append(brief)
            self.namesakes = {n: same for n, same in self.namesakes.items() if len(same) > 1}


def cached_village(db: sqlite_utils.Database, unit: str, day: dt.date) -> Village:
    """The village that `unit` (a village or one of its grids) belongs to."""
    village = _cache.get(_key(db, "village_of", unit), lambda: village_of(db, unit) or unit)
    return _cache.get(
        _key(db, "village", village, day), lambda: Village(village_subjects(db, village, day))
    )


def cached_member_subjects(
    db: sqlite_utils.Database, person_id: int, unit: str, day: dt.date
) -> list[dict]:
    """A member's active subjects on `day` in roster order: rows of the member's village (a
    subject of another village, which a roster may assign, is read on its own)."""

    def read() -> list[dict]:
        village = cached_village(db, unit, day)
        ids = member_subject_ids(db, person_id, day)
        missing = set(ids) - village.by_id.keys()
        elsewhere = {row["id"]: Brief(row) for row in subjects_by_ids(db, missing)}
        return [village.by_id.get(i) or elsewhere[i] for i in ids]

    return _cache.get(_key(db, "member", person_id, day), read)
