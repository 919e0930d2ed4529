"""The table of realistic reports (tests/data/reports.jsonl), one test per row, and the
accuracy per phenomenon (printed by `.venv/bin/python -m tests.report_accuracy`).

A row the parser still gets wrong says why in "known_wrong": it is an expected failure, and
a strict one, so a fix shows (and the row's note goes)."""

from __future__ import annotations

import pytest

from tests.report_accuracy import accuracy, check, load, table

ROWS = load()
TAGS = {
    "comma_decimal", "digit_safety", "notice_negation", "notice_template", "bulk_after_names",
    "bulk_alone", "status_first", "given_name", "courtesy_teacher", "courtesy", "traditional",
    "symptom_over", "absent_phrases", "unreachable_phrases", "acknowledgement",
    "single_subject", "voice_input", "group_chat",
}  # fmt: skip


def _param(i: int, row: dict) -> object:
    marks = ()
    if "known_wrong" in row:
        marks = pytest.mark.xfail(strict=True, reason=row["known_wrong"])
    return pytest.param(row, id=f"{i}-{row['tag']}", marks=marks)


@pytest.mark.parametrize("row", [_param(i, row) for i, row in enumerate(ROWS)])
def test_row(row: dict) -> None:
    right, got, want = check(row)
    assert got == want, row["text"]


def test_the_table_covers_every_phenomenon() -> None:
    assert len(ROWS) >= 190
    assert {row["tag"] for row in ROWS} == TAGS
    assert all(set(row) >= {"tag", "text", "names", "entries", "problems"} for row in ROWS)


def test_accuracy_per_tag(capsys: pytest.CaptureFixture[str]) -> None:
    scores = accuracy(ROWS)
    with capsys.disabled():
        print("\n" + table(scores))
    known = sum("known_wrong" in row for row in ROWS)
    assert sum(good for good, _ in scores.values()) == len(ROWS) - known
