"""Roster reads cached per roster version: every roster change is seen at once."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils

from storage.roster_cache import (
    cached_member_subjects,
    cached_person,
    cached_village,
    roster_version,
)

DAY = dt.date(2026, 3, 2)


def person(db: sqlite_utils.Database, name: str) -> dict:
    return next(db.query("SELECT * FROM people WHERE name = ?", [name]))


def names(rows: list[dict]) -> list[str]:
    return [row["name"] for row in rows]


def test_every_roster_table_bumps_the_version(loaded_db: sqlite_utils.Database) -> None:
    version = roster_version(loaded_db)
    loaded_db.execute("UPDATE subjects SET address = 'x' WHERE name = '张三'")
    loaded_db.execute("UPDATE people SET phone = '13800009999' WHERE name = '梁红'")
    loaded_db.execute("DELETE FROM assignments WHERE subject_id = 1")
    loaded_db.execute("UPDATE units SET name = '河西' WHERE code = 'HX'")
    assert roster_version(loaded_db) == version + 4
    loaded_db.execute(
        "INSERT INTO needs (subject_id, kind, text, created_at) VALUES (2, '其他', 'x', 'now')"
    )
    assert roster_version(loaded_db) == version + 4  # not a roster change


def test_a_released_subject_leaves_the_cached_lists(loaded_db: sqlite_utils.Database) -> None:
    member = person(loaded_db, "梁红")
    assert "张三" in names(cached_member_subjects(loaded_db, member["id"], member["unit"], DAY))
    assert "张三" in names(cached_village(loaded_db, "HX01", DAY).rows)
    loaded_db.execute(
        "UPDATE subjects SET status = 'released', released_on = ? WHERE name = '张三'",
        [DAY.isoformat()],
    )
    assert "张三" not in names(cached_member_subjects(loaded_db, member["id"], member["unit"], DAY))
    assert "张三" not in names(cached_village(loaded_db, "HX01", DAY).rows)


def test_a_new_binding_is_seen_at_once(loaded_db: sqlite_utils.Database) -> None:
    assert cached_person(loaded_db, "openid-new") is None
    loaded_db.execute("UPDATE people SET wechat_id = 'openid-new' WHERE name = '韩冰'")
    assert cached_person(loaded_db, "openid-new")["name"] == "韩冰"


def test_two_databases_never_share_answers(loaded_db: sqlite_utils.Database, make_db) -> None:
    other = make_db("other.db")
    assert cached_person(loaded_db, "lianghong")["name"] == "梁红"
    assert cached_person(other, "lianghong") is None


def test_a_member_shares_the_rows_of_the_village(loaded_db: sqlite_utils.Database) -> None:
    member = person(loaded_db, "梁红")
    own = cached_member_subjects(loaded_db, member["id"], member["unit"], DAY)
    village = cached_village(loaded_db, "HX02", DAY)  # another grid of the same village
    assert village is cached_village(loaded_db, "HX01", DAY)
    assert all(row is village.by_id[row["id"]] for row in own)


def test_a_subject_of_another_village_is_read_on_its_own(
    loaded_db: sqlite_utils.Database,
) -> None:
    member = person(loaded_db, "梁红")
    loaded_db.execute(
        "INSERT INTO units (code, name, level, parent) VALUES ('DX', '东溪村', 'village', 'CG')"
    )
    loaded_db.execute("UPDATE subjects SET unit = 'DX' WHERE name = '张三'")
    own = cached_member_subjects(loaded_db, member["id"], member["unit"], DAY)
    assert "张三" in names(own)
    assert "张三" not in names(cached_village(loaded_db, "HX01", DAY).rows)


def test_a_cached_subject_reads_like_its_row(loaded_db: sqlite_utils.Database) -> None:
    member = person(loaded_db, "梁红")
    own = cached_member_subjects(loaded_db, member["id"], member["unit"], DAY)
    row = next(loaded_db.query("SELECT * FROM subjects WHERE id = ?", [own[0]["id"]]))
    brief = own[0]
    assert {key: brief[key] for key in brief} == {
        "id": row["id"],
        "name": row["name"],
        "unit": row["unit"],
        "category": row["category"],
        "address": "",  # kept only where two subjects of the village share a name
    }
    assert brief.get("phone") is None and "phone" not in brief
    with pytest.raises(KeyError):
        brief["phone"]
