"""bench.week_jobs at one county: each job runs in a fresh process on a generated week."""

from __future__ import annotations

from pathlib import Path

from bench.week_jobs import measure


def test_the_pack_and_the_note_are_timed_on_a_generated_week(tmp_path: Path) -> None:
    rows = measure(1, tmp_path / "province.db")
    assert [row["job"] for row in rows] == ["review", "flags"]
    review, _ = rows
    assert review["sent"] == 105  # 100 villages, 5 towns, the county: each has a pack
    assert all(row["seconds"] > 0 and row["rss_mb"] > 0 for row in rows)
