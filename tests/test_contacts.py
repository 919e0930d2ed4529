"""Contact reports: one current row per subject, date and slot; each replaced row kept."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils

from storage.contacts import NewContact, record_contacts
from storage.db import insert_rows, transaction

DAY = dt.date(2026, 3, 2)
AT = dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ZHANG, LI, WANG = 1, 2, 3


@pytest.fixture
def village(tree: sqlite_utils.Database) -> sqlite_utils.Database:
    """The village of `tree` with three subjects of its member (梁红, id 1)."""
    db = tree
    for subject_id, name in ((ZHANG, "张三"), (LI, "李四"), (WANG, "王五")):
        db["subjects"].insert(
            {
                "id": subject_id,
                "name": name,
                "category": "涉鄂人员",
                "unit": "HX01",
                "start_date": "2026-03-01",
                "days": 14,
                "status": "active",
            }
        )
    return db


def record(db: sqlite_utils.Database, *contacts: NewContact) -> list[int]:
    return record_contacts(
        db, contacts, day=DAY, slot="morning", member_id=1, at=AT, inbox_id=None, actor="梁红"
    )


def rows(db: sqlite_utils.Database) -> list[tuple]:
    return db.execute(
        "SELECT id, subject_id, temperature, current, replaced_by FROM contacts ORDER BY id"
    ).fetchall()


def said(subject_id: int, temperature: float, superseded_by: int | None = None) -> NewContact:
    return NewContact(subject_id, temperature, "normal", (), superseded_by=superseded_by)


@pytest.mark.parametrize(
    ("earlier", "now", "expected"),
    [
        pytest.param(
            [],
            [said(ZHANG, 36.5), said(LI, 36.6), said(WANG, 36.7)],
            [(1, ZHANG, 36.5, 1, None), (2, LI, 36.6, 1, None), (3, WANG, 36.7, 1, None)],
            id="three-new-in-one-go",
        ),
        pytest.param(
            [],
            [said(ZHANG, 36.5), said(LI, 36.6), said(ZHANG, 37.9)],
            [(1, ZHANG, 36.5, 0, 3), (2, LI, 36.6, 1, None), (3, ZHANG, 37.9, 1, None)],
            id="the-same-subject-twice-the-second-wins",
        ),
        pytest.param(
            [said(LI, 36.1)],
            [said(ZHANG, 36.5), said(LI, 36.6), said(WANG, 36.7)],
            [
                (1, LI, 36.1, 0, 3),
                (2, ZHANG, 36.5, 1, None),
                (3, LI, 36.6, 1, None),
                (4, WANG, 36.7, 1, None),
            ],
            id="a-replacement-between-new-ones",
        ),
        pytest.param(
            [said(ZHANG, 36.1)],
            [said(ZHANG, 36.9, superseded_by=1), said(LI, 36.6)],
            [(1, ZHANG, 36.1, 1, None), (2, ZHANG, 36.9, 0, 1), (3, LI, 36.6, 1, None)],
            id="a-late-report-goes-under-the-current-one",
        ),
        pytest.param(
            [said(ZHANG, 36.1)],
            [said(ZHANG, 36.9, superseded_by=1), said(ZHANG, 37.2), said(LI, 36.6)],
            [
                (1, ZHANG, 36.1, 0, 3),
                (2, ZHANG, 36.9, 0, 1),
                (3, ZHANG, 37.2, 1, None),
                (4, LI, 36.6, 1, None),
            ],
            id="a-late-report-and-a-new-one-for-the-same-subject",
        ),
        pytest.param(
            [],
            [said(ZHANG, 36.5), said(ZHANG, 36.6), said(ZHANG, 36.7)],
            [(1, ZHANG, 36.5, 0, 2), (2, ZHANG, 36.6, 0, 3), (3, ZHANG, 36.7, 1, None)],
            id="three-times-in-a-row",
        ),
    ],
)
def test_each_report_replaces_the_current_one_and_ids_follow_the_message(
    village: sqlite_utils.Database,
    earlier: list[NewContact],
    now: list[NewContact],
    expected: list[tuple],
) -> None:
    before = record(village, *earlier)
    ids = record(village, *now)
    assert ids == [row[0] for row in expected][len(before) :]
    assert rows(village) == expected


def test_a_replacement_is_audited_and_new_reports_are_not(village: sqlite_utils.Database) -> None:
    record(village, said(LI, 36.1))
    record(village, said(ZHANG, 36.5), said(LI, 38.2), said(WANG, 36.7))
    audited = village.execute("SELECT entity_id, action FROM audit").fetchall()
    assert audited == [("3", "replace")]


def test_rows_go_in_one_statement_and_come_back_in_the_order_given(
    village: sqlite_utils.Database,
) -> None:
    statements: list[str] = []
    village.conn.set_trace_callback(statements.append)
    with transaction(village):
        ids = record(village, *(said(s, 36.0 + s / 10) for s in (WANG, ZHANG, LI)))
    village.conn.set_trace_callback(None)
    assert sum(s.startswith("INSERT INTO contacts") for s in statements) == 1
    by_id = dict(village.execute("SELECT id, subject_id FROM contacts").fetchall())
    assert [by_id[i] for i in ids] == [WANG, ZHANG, LI]


def test_a_hundred_new_reports_in_one_message_keep_their_order(
    village: sqlite_utils.Database,
) -> None:
    """More rows than one statement binds (12 columns: 83 a statement)."""
    for extra in range(4, 104):
        village["subjects"].insert(
            {
                "id": extra,
                "name": f"甲{extra}",
                "category": "涉鄂人员",
                "unit": "HX01",
                "start_date": "2026-03-01",
                "days": 14,
                "status": "active",
            }
        )
    order = list(range(103, 3, -1))  # the message names them last first
    ids = record(village, *(said(s, 36.0) for s in order))
    by_id = dict(village.execute("SELECT id, subject_id FROM contacts").fetchall())
    assert [by_id[i] for i in ids] == order


def outbox_rows(count: int, **extra: object) -> list[dict[str, object]]:
    return [
        {"at": "2026-03-02T08:00:00+08:00", "recipient": f"wx{i}", "kind": "reply"}
        | {"text": "好的", "status": "sent"}
        | extra
        for i in range(count)
    ]


def test_insert_rows_chunks_a_long_list(village: sqlite_utils.Database) -> None:
    records = outbox_rows(1_203)
    ids = insert_rows(village, "outbox", records)
    stored = dict(village.execute("SELECT id, recipient FROM outbox").fetchall())
    assert [stored[i] for i in ids] == [r["recipient"] for r in records]
    assert insert_rows(village, "outbox", []) == []


def test_insert_rows_keeps_ids_given_in_ascending_order(village: sqlite_utils.Database) -> None:
    records = [r | {"id": 10 + 5 * n} for n, r in enumerate(outbox_rows(3))]
    assert insert_rows(village, "outbox", records) == [10, 15, 20]


@pytest.mark.parametrize(
    ("records", "refused"),
    [
        pytest.param(
            [*outbox_rows(1), *outbox_rows(1, error="boom")], "same columns", id="a-column-more"
        ),
        pytest.param([{}], "same columns", id="no-columns"),
        pytest.param(
            [r | {"id": i} for r, i in zip(outbox_rows(3), (50, 10, 30), strict=True)],
            "ascend",
            id="ids-out-of-order",
        ),
    ],
)
def test_insert_rows_refuses_what_it_could_not_line_up(
    village: sqlite_utils.Database, records: list[dict[str, object]], refused: str
) -> None:
    with pytest.raises(ValueError, match=refused):
        insert_rows(village, "outbox", records)
    assert village.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
