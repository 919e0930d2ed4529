"""The unit tree's queries (storage/units.py): bounded, so a cycle cannot make them spin."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
import sqlite_utils

from storage.people import medics_for, monitors_for, secretaries_of
from storage.subjects import find_subjects_by_name, unit_subjects, village_subjects
from storage.units import ancestors, descendants, village_of, villages_under
from tests.conftest import stop_runaway_queries

DAY = dt.date(2026, 3, 2)


def test_descendants_and_ancestors(loaded_db: sqlite_utils.Database) -> None:
    assert descendants(loaded_db, "KC") == ["KC", "CG", "HX", "HX01", "HX02"]
    assert descendants(loaded_db, "HX01") == ["HX01"]
    assert ancestors(loaded_db, "HX02") == ["HX02", "HX", "CG", "KC"]
    assert village_of(loaded_db, "HX02") == "HX"
    assert [v["code"] for v in villages_under(loaded_db, "KC")] == ["HX"]


@pytest.mark.parametrize(
    ("unit", "village"),
    [("HX01", "HX"), ("HX02", "HX"), ("HX", "HX"), ("CG", None), ("KC", None), ("NOPE", None)],
    ids=["grid", "another-grid", "a-village-is-its-own", "town", "county", "unknown"],
)
def test_the_village_a_unit_belongs_to(
    loaded_db: sqlite_utils.Database, unit: str, village: str | None
) -> None:
    assert village_of(loaded_db, unit) == village


def test_the_guard_stops_a_query_that_would_not_end(db: sqlite_utils.Database) -> None:
    stop_runaway_queries(db.conn)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
        )


def test_tree_queries_end_on_a_cycle_stored_by_hand(cyclic_db: sqlite_utils.Database) -> None:
    assert descendants(cyclic_db, "HX") == ["HX", "HX01", "HX02"]
    assert descendants(cyclic_db, "KC") == ["KC", "CG"]
    assert ancestors(cyclic_db, "HX02") == ["HX02", "HX", "HX01"]
    assert ancestors(cyclic_db, "CG") == ["CG", "KC"]
    assert village_of(cyclic_db, "HX01") == "HX"
    assert villages_under(cyclic_db, "KC") == []


def test_subject_and_people_queries_end_on_a_cycle(cyclic_db: sqlite_utils.Database) -> None:
    assert len(village_subjects(cyclic_db, "HX01", DAY)) == len(unit_subjects(cyclic_db, "HX", DAY))
    assert unit_subjects(cyclic_db, "HX", DAY)
    assert [s["name"] for s in find_subjects_by_name(cyclic_db, "HX", "张三")] == ["张三"]
    assert [p["name"] for p in secretaries_of(cyclic_db, "HX")] == ["陈志刚"]
    assert [p["name"] for p in medics_for(cyclic_db, "HX01")] == ["黄永红"]
    assert monitors_for(cyclic_db, "HX01") == []  # 刘敏 is at CG, no longer above HX
