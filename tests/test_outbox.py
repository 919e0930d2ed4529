"""Scheduled sends are claimed once by their key (kind, target, date, slot)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils

from storage.db import transaction
from storage.outbox import claim_key, claim_keys, claimed, send_key

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=TZ)
DAY = NOW.date()


def key(target: str, slot: str = "morning") -> str:
    return send_key(kind="prompt", target=target, day=DAY, slot=slot)


@pytest.mark.parametrize(
    ("claimed_at", "asked", "fresh"),
    [
        pytest.param(
            {},
            [key("person:1"), key("person:2")],
            {key("person:1"), key("person:2")},
            id="nothing-claimed-yet",
        ),
        pytest.param(
            {key("person:1"): NOW - dt.timedelta(hours=1)},
            [key("person:1"), key("person:2")],
            {key("person:2")},
            id="one-claimed-earlier",
        ),
        pytest.param(
            {key("person:1"): NOW}, [key("person:1")], set(), id="claimed-this-very-second"
        ),
        pytest.param(
            {key("person:1"): NOW + dt.timedelta(days=1)},
            [key("person:1")],
            {key("person:1")},
            id="claimed-by-a-clock-ahead-counts-for-nothing",
        ),
        pytest.param(
            {}, [key("person:1"), key("person:1")], {key("person:1")}, id="the-same-key-twice"
        ),
        pytest.param({}, [], set(), id="none-asked"),
    ],
)
def test_a_batch_claims_what_one_by_one_would(
    db: sqlite_utils.Database,
    claimed_at: dict[str, dt.datetime],
    asked: list[str],
    fresh: set[str],
) -> None:
    with transaction(db):
        for earlier, when in claimed_at.items():
            assert claim_key(db, earlier, when)
        assert claim_keys(db, asked, NOW) == fresh
    assert all(claimed(db, k, NOW) for k in asked)
    assert claim_keys(db, asked, NOW) == set()  # and never twice
    rows = db.execute("SELECT key, kind, target, date, slot FROM sends ORDER BY key").fetchall()
    assert (key("person:1"), "prompt", "person:1", "2026-03-02", "morning") in rows or not asked


def test_a_long_batch_is_read_in_chunks(db: sqlite_utils.Database) -> None:
    keys = [key(f"person:{n}") for n in range(1_234)]
    with transaction(db):
        assert claim_key(db, keys[700], NOW)
        assert claim_keys(db, keys, NOW) == set(keys) - {keys[700]}
    assert db.execute("SELECT count(*) FROM sends").fetchone()[0] == 1_234
