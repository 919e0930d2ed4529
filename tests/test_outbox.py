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
    stored = {
        row[0]: row[1:]
        for row in db.execute("SELECT key, kind, target, date, slot, created_at FROM sends")
    }
    for k in fresh:  # claimed here, as of now, with the key's parts
        kind, target, day, slot = k.split("|")
        assert stored[k] == (kind, target, day, slot, NOW.isoformat(timespec="seconds"))


def test_a_long_batch_is_read_in_chunks(db: sqlite_utils.Database) -> None:
    keys = [key(f"person:{n}") for n in range(1_234)]
    with transaction(db):
        assert claim_key(db, keys[700], NOW)  # in the second chunk of 500
        assert claim_key(db, keys[1_100], NOW + dt.timedelta(days=1))  # a clock ahead, third
        asked = [*keys, keys[3], keys[600]]  # two asked again, past the first chunk
        assert claim_keys(db, asked, NOW) == set(keys) - {keys[700]}
    assert db.execute("SELECT count(*) FROM sends").fetchone()[0] == 1_234
