"""bench.province at a small size: a county-sized day (100 villages) with a trickle of
callbacks; the province-sized run belongs to `make bench`."""

from __future__ import annotations

from bench.province import growth_table, rows, run_day


def test_a_small_province_day_runs_every_job_and_reports_every_figure() -> None:
    result = run_day(1, rate=50, window=1, quiet=True)
    assert result.villages == 100 and result.subjects == 5000 and result.members == 1000
    # release, 3 × (prompt, reminder, deadline), 2 digests; Monday: the weekly pack; flags note
    assert len(result.jobs) == 14 and {"review", "flags"} <= set(result.jobs)
    assert all(job["detail"].endswith("queued") for job in result.jobs.values())
    assert result.jobs["prompt:morning"]["detail"] == "1000 queued"
    assert set(result.callbacks) == {"morning", "noon", "evening"}
    assert all(c["answered"] == 50 and c["failed"] == 0 for c in result.callbacks.values())
    assert result.rss_serving_mb > 0 and result.rss_schedule_mb > 0
    assert result.db_after_mb > result.db_before_mb
    budgets = rows(result)
    assert [row["budget"] for row in budgets] == [
        "<= 60 s",
        "< 30 s",
        "< 200 ms",
        "< 400 MB",
        "reported",
    ]
    assert budgets[0]["pass"] and budgets[1]["pass"] and budgets[3]["pass"]
    table = growth_table([result])
    assert "| counties | 1 |" in table and "| subjects | 5,000 |" in table
