"""Jobs read a province county by county (schedules.digest.scopes): the same messages as
reading it all at once, with one county's day in memory at a time."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

import schedules.jobs as jobs
from bench.county import make_county
from bot.config import Config
from schedules.digest import UnitTree, scopes
from storage.db import open_db

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def province(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = open_db(tmp_path / "province.db")
    make_county(
        db,
        day=DAY,
        tz=Config().tz,
        villages=6,
        subjects=300,
        contacts=600,
        members_per_village=4,
        villages_per_town=2,
        counties=3,
    )
    yield db
    db.conn.close()


_SIGNATURE = re.compile(r"(/(?:view|me|review)/[A-Za-z0-9_-]+)\.[A-Za-z0-9_.-]+")


def sent_by(job, db, monkeypatch, whole: bool, **kw) -> list[tuple]:  # type: ignore[no-untyped-def]
    if whole:
        monkeypatch.setattr(jobs, "scopes", lambda tree: [None])
    messages: list[tuple] = []

    def send(person: dict, kind: str, text: str, key: str, card: dict | None = None) -> bool:
        # a link's payload (unit, day, issue time) must match; its signature carries the
        # signer's own timestamp (the real second), which two runs need not share
        text = _SIGNATURE.sub(r"\1.<signature>", text)
        messages.append((person["id"], kind, text, key, repr(card)))
        return True

    job(db, Config(), send, **kw)
    monkeypatch.undo()
    return sorted(messages)


def test_three_counties_are_three_scopes(province) -> None:  # type: ignore[no-untyped-def]
    assert scopes(UnitTree.load(province)) == ["C000", "C001", "C002"]


@pytest.mark.parametrize(
    "job, kw",
    [
        (
            jobs.deadline,
            {"now": dt.datetime(2026, 3, 2, 20, 0, tzinfo=Config().tz), "slot": "evening"},
        ),
        (jobs.digest, {"now": dt.datetime(2026, 3, 2, 20, 30, tzinfo=Config().tz), "report": 2}),
    ],
)
def test_county_by_county_sends_what_all_at_once_sends(province, monkeypatch, job, kw) -> None:  # type: ignore[no-untyped-def]
    # the evening not reported yet: every subject is missing, in every county
    province.execute("DELETE FROM contacts WHERE date = ? AND slot = 'evening'", [DAY.isoformat()])
    split = sent_by(job, province, monkeypatch, whole=False, **kw)
    whole = sent_by(job, province, monkeypatch, whole=True, **kw)
    assert split and split == whole
    assert len({person for person, *_ in split}) >= 3  # someone in each county heard


def test_a_unit_no_root_reaches_keeps_the_day_whole(province) -> None:  # type: ignore[no-untyped-def]
    province.execute(
        "INSERT INTO units (code, name, level, parent) VALUES ('X', 'x', 'town', NULL)"
    )
    province.execute("INSERT INTO units (code, name, level, parent) VALUES ('Y', 'y', 'town', 'X')")
    province.execute("UPDATE units SET parent = 'Y' WHERE code = 'X'")  # a cycle, by hand
    assert scopes(UnitTree.load(province)) == [None]
