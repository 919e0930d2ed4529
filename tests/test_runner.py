"""The schedule as data, catch-up and skip rules, idempotency, and the scheduler wiring."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from apscheduler.triggers.cron import CronTrigger
from click.testing import Result

from bot.config import Config
from bot.links import link_key, read_member_token
from schedules import runner, wiring
from schedules.runner import DueJob, due_jobs, run_due
from storage.db import open_db, transaction
from storage.outbox import queue_message

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)
DAY_NAMES = [
    "release",
    "prompt:morning",
    "review",  # 3/2 is a Monday: the weekly pack (DESIGN §11)
    "reminder:morning",
    "deadline:morning",
    "digest:1",
    "prompt:noon",
    "reminder:noon",
    "deadline:noon",
    "prompt:evening",
    "reminder:evening",
    "deadline:evening",
    "digest:2",
    "flags",
]


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def runs(db: sqlite_utils.Database) -> list[tuple[str, str, str]]:
    return [
        (row["job"], row["due"][11:16], row["outcome"])
        for row in db.query("SELECT * FROM job_runs ORDER BY due, rowid")
    ]


def test_day_jobs_in_order() -> None:
    found = due_jobs(Config(), at(0), at(23, 59))
    assert [job.name for job in found] == DAY_NAMES
    assert [job.due.strftime("%H:%M") for job in found] == [
        "00:05", "08:00", "09:00", "09:30", "10:00", "10:30", "12:00", "13:30", "14:00",
        "18:00", "19:30", "20:00", "20:30", "20:45",
    ]  # fmt: skip
    assert all(isinstance(job, DueJob) and callable(job.run) for job in found)


def test_due_jobs_window_is_inclusive_and_spans_days() -> None:
    found = due_jobs(Config(), at(20, 30), at(8, 0, DAY + dt.timedelta(days=1)))
    assert [(job.name, job.due.day) for job in found] == [
        ("digest:2", 2),
        ("flags", 2),
        ("release", 3),
        ("prompt:morning", 3),
    ]


def test_due_jobs_accepts_other_zones() -> None:
    utc = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)  # 08:00 in Shanghai
    assert [job.name for job in due_jobs(Config(), utc, utc)] == ["prompt:morning"]


def test_fresh_database_considers_only_today(loaded_db: sqlite_utils.Database) -> None:
    done = run_due(loaded_db, Config(), at(10, 31))
    assert [(r.job, r.outcome) for r in done] == [
        ("release", "ran"),
        ("prompt:morning", "skipped"),
        ("review", "skipped"),
        ("reminder:morning", "skipped"),
        ("deadline:morning", "ran"),
        ("digest:1", "ran"),
    ]
    assert done[1].detail == "151 min late, beyond the 60 min grace"
    assert runs(loaded_db)[0] == ("release", "00:05", "ran")
    kinds = [row["kind"] for row in loaded_db.query("SELECT kind FROM outbox ORDER BY id")]
    assert kinds == ["release", "release", "missed_alert", "digest", "digest"]


def test_second_run_adds_nothing(
    loaded_db: sqlite_utils.Database, dump_db: Callable[[sqlite_utils.Database], str]
) -> None:
    run_due(loaded_db, Config(), at(12, 0))
    before = dump_db(loaded_db)
    assert run_due(loaded_db, Config(), at(12, 0)) == []
    assert dump_db(loaded_db) == before


@pytest.mark.parametrize(("minutes", "outcome"), [(59, "ran"), (60, "skipped")])
def test_grace_boundary(loaded_db: sqlite_utils.Database, minutes: int, outcome: str) -> None:
    run_due(loaded_db, Config(), at(7))
    done = run_due(loaded_db, Config(), at(8) + dt.timedelta(minutes=minutes))
    assert [(r.job, r.outcome) for r in done if r.job != "review"] == [("prompt:morning", outcome)]


def test_grace_comes_from_config(loaded_db: sqlite_utils.Database) -> None:
    run_due(loaded_db, Config(grace_minutes=10), at(7))
    done = run_due(loaded_db, Config(grace_minutes=10), at(8, 15))
    assert [(r.job, r.outcome) for r in done] == [("prompt:morning", "skipped")]


def test_release_always_catches_up(loaded_db: sqlite_utils.Database) -> None:
    run_due(loaded_db, Config(), at(20, 30))
    # down from 20:31 on 3/2 until noon on 3/9
    done = run_due(loaded_db, Config(), at(12, 30, dt.date(2026, 3, 9)))
    ran = [(r.job, r.due.day) for r in done if r.outcome == "ran"]
    assert ran == [("release", 9), ("prompt:noon", 9)]  # the last release covers them all
    covered = [r.due.day for r in done if r.detail.startswith("covered by the release")]
    assert covered == list(range(3, 9))
    # and the flag notes of 3/2 … 3/8 (20:45), and 3/9's weekly pack (a Monday, 09:00)
    assert len([r for r in done if r.outcome == "skipped"]) == 6 * 11 + 4 + 6 + 7 + 1
    released = dict(
        loaded_db.execute("SELECT name, released_on FROM subjects WHERE status = 'released'")
    )
    assert released["高远"] == "2026-03-09"  # recorded by the 3/9 run, dated by its period
    assert released["杨桂芳"] == "2026-03-08"  # dated by its own period, not the run
    # each person told once for the whole gap (DESIGN §2), not once per past day
    notices = loaded_db.execute(
        "SELECT person, count(*) FROM outbox WHERE kind = 'release' AND at LIKE '2026-03-09%'"
        " GROUP BY person"
    ).fetchall()
    assert notices and {count for _, count in notices} == {1}


def test_messages_are_delivered_after_the_jobs(loaded_db: sqlite_utils.Database) -> None:
    run_due(loaded_db, Config(), at(8))
    statuses = {row["status"] for row in loaded_db.query("SELECT status FROM outbox")}
    assert statuses == {"sent"}
    assert loaded_db["outbox"].count == 8  # 2 release + 6 prompts


def test_outbox_at_is_the_time_of_the_table_even_when_late(
    loaded_db: sqlite_utils.Database,
) -> None:
    run_due(loaded_db, Config(), at(8, 20))
    rows = loaded_db.query("SELECT kind, at, sent_at FROM outbox ORDER BY id")
    assert {(row["kind"], row["at"], row["sent_at"]) for row in rows} == {
        ("release", "2026-03-02T00:05:00+08:00", "2026-03-02T08:20:00+08:00"),
        ("prompt", "2026-03-02T08:00:00+08:00", "2026-03-02T08:20:00+08:00"),
    }


def test_failed_job_is_not_recorded_and_retried(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.jobs, "prompt", broken)
    done = run_due(loaded_db, Config(), at(8))
    assert [(r.job, r.outcome, r.detail) for r in done] == [
        ("release", "ran", "2 queued"),
        ("prompt:morning", "failed", "RuntimeError: boom"),
    ]
    assert loaded_db["outbox"].count == 2  # the failed job's messages rolled back
    monkeypatch.undo()
    done = run_due(loaded_db, Config(), at(8, 10))
    assert [(r.job, r.outcome) for r in done] == [("prompt:morning", "ran")]


def test_two_processes_never_run_a_job_twice(
    loaded_db: sqlite_utils.Database, db_path: Path
) -> None:
    other = open_db(db_path)
    try:
        first = run_due(loaded_db, Config(), at(8))
        assert run_due(other, Config(), at(8)) == []
        # the other connection raced past the history read: the job_runs row stops it
        assert runner.run_job(other, Config(), due_jobs(Config(), at(8), at(8))[0], at(8)) is None
    finally:
        other.close()
    assert len(first) == 2
    assert loaded_db["outbox"].count == 8


def test_cli_tick(loaded_db: sqlite_utils.Database, run_cli: Callable[..., object]) -> None:
    result = run_cli("tick", "--at", "2026-03-02T08:00")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ran     2026-03-02T00:05+08:00 release: 2 queued",
        "ran     2026-03-02T08:00+08:00 prompt:morning: 6 queued",
    ]
    result = run_cli("tick", "--at", "2026-03-02T09:40")
    assert result.output.splitlines() == [
        # a Monday, the first of the system: last week asked nothing, so no pack
        "ran     2026-03-02T09:00+08:00 review: 0 queued",
        "ran     2026-03-02T09:30+08:00 reminder:morning: 6 queued",
    ]
    assert run_cli("tick", "--at", "2026-03-02T09:40").output == "nothing due\n"
    bad = run_cli("tick", "--at", "nine")
    assert bad.exit_code == 2
    assert "is not an ISO time" in bad.output


def test_cli_tick_ahead_of_the_clock_is_refused_on_a_database_served_live(
    loaded_db: sqlite_utils.Database, run_cli: Callable[..., Result]
) -> None:
    """A rehearsal (`tick --at` a later day) is fine on a database of its own; on one whose
    schedule a server runs by the real clock it would send tomorrow's prompts today."""
    real = dt.datetime.now(TZ)
    runner.record_firing(loaded_db, real)
    later = (real + dt.timedelta(days=1)).isoformat(timespec="minutes")
    refused = run_cli("tick", "--at", later)
    assert refused.exit_code == 1
    assert "later than the clock" in refused.output and "copy" in refused.output
    assert loaded_db["job_runs"].count == 0
    past = run_cli("tick", "--at", "2026-03-02T08:00")  # before the clock: as usual
    assert past.exit_code == 0 and "prompt:morning: 6 queued" in past.output


# the wiring


def test_job_times() -> None:
    assert wiring.job_times(Config()) == [
        (0, 5), (8, 0), (9, 30), (10, 0), (10, 30), (12, 0), (13, 30), (14, 0),
        (18, 0), (19, 30), (20, 0), (20, 30),
    ]  # fmt: skip


def test_one_scheduler_per_database(db_path: Path) -> None:
    open_db(db_path).close()
    config = Config(timezone="Europe/Berlin")
    first = wiring.start_scheduler(db_path, config)
    assert first is not None
    try:
        assert wiring.start_scheduler(db_path, config) is None
        crons = [job for job in first.get_jobs() if isinstance(job.trigger, CronTrigger)]
        assert len(crons) == 12
        assert {str(job.trigger.timezone) for job in crons} == {"Europe/Berlin"}
        berlin = ZoneInfo("Europe/Berlin")
        prompt = next(job for job in crons if job.id == "tick-0800")
        fire = prompt.trigger.get_next_fire_time(None, dt.datetime(2026, 3, 2, 7, tzinfo=berlin))
        assert fire == dt.datetime(2026, 3, 2, 8, tzinfo=berlin)
        assert prompt.misfire_grace_time == 3600
        assert prompt.coalesce is True
    finally:
        wiring.stop_scheduler(first)
    again = wiring.start_scheduler(db_path, config)
    assert again is not None
    wiring.stop_scheduler(again)


def test_only_one_worker_process_gets_the_scheduler(db_path: Path, tmp_path: Path) -> None:
    """Three processes start at once, as gunicorn workers do; exactly one runs it."""
    open_db(db_path).close()
    script = textwrap.dedent(
        f"""
        import sys, time
        from bot.config import Config
        from schedules.wiring import start_scheduler, stop_scheduler
        scheduler = start_scheduler({str(db_path)!r}, Config())
        print("scheduler" if scheduler else "none", flush=True)
        time.sleep(1.5)
        if scheduler:
            stop_scheduler(scheduler)
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = sorted(worker.communicate(timeout=60)[0].strip() for worker in workers)
    assert outputs == ["none", "none", "scheduler"]


def test_tick_reads_the_clock_and_runs(db_path: Path) -> None:
    open_db(db_path).close()
    wiring.tick(db_path, Config())  # on an empty roster: records today's due jobs, sends nothing
    db = open_db(db_path)
    try:
        assert db["outbox"].count == 0
        assert {row["outcome"] for row in db.query("SELECT outcome FROM job_runs")} <= {
            "ran",
            "skipped",
        }
    finally:
        db.close()


def test_a_job_that_failed_before_a_later_one_ran_is_retried(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.jobs, "release", broken)
    done = run_due(loaded_db, Config(), at(8))
    assert [(r.job, r.outcome) for r in done] == [("release", "failed"), ("prompt:morning", "ran")]
    monkeypatch.undo()
    done = run_due(loaded_db, Config(), at(8, 10))
    assert [(r.job, r.outcome) for r in done] == [("release", "ran")]


def test_a_job_run_dated_in_the_future_does_not_stall_the_schedule(
    loaded_db: sqlite_utils.Database,
) -> None:
    """`tick --at` two days ahead on a new database (a rehearsal, say) records that day's
    jobs; the live clock's jobs of today still run when they fall due."""
    run_due(loaded_db, Config(), at(8, 0, day=DAY + dt.timedelta(days=2)))
    done = run_due(loaded_db, Config(), at(8, 0))
    assert [(r.job, r.outcome) for r in done] == [("release", "ran"), ("prompt:morning", "ran")]
    assert run_due(loaded_db, Config(), at(8, 0)) == []


def test_a_job_writes_what_it_sends_in_short_transactions(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt of 6 members, 2 messages per transaction: 3 transactions, then the job's
    record; the write lock is free between them (a callback stores its message there)."""
    monkeypatch.setattr(runner, "WRITE_BATCH", 2)
    batches: list[int] = []
    claim_keys = runner.claim_keys

    def counted(db: sqlite_utils.Database, keys: list[str], now: dt.datetime) -> set[str]:
        if keys[0].startswith("prompt|"):  # committed before this one, 2 by 2
            prompts = "SELECT count(*) FROM outbox WHERE kind = 'prompt'"
            batches.append(db.execute(prompts).fetchone()[0] // 2)
        return claim_keys(db, keys, now)

    monkeypatch.setattr(runner, "claim_keys", counted)
    [run] = [r for r in run_due(loaded_db, Config(), at(8)) if r.job == "prompt:morning"]
    assert run.detail == "6 queued"
    assert batches == [0, 1, 2]


def test_a_job_that_dies_part_way_sends_the_rest_when_run_again_and_nothing_twice(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "WRITE_BATCH", 2)
    claim_keys = runner.claim_keys
    written: list[str] = []

    def dies_on_the_third_batch(
        db: sqlite_utils.Database, keys: list[str], now: dt.datetime
    ) -> set[str]:
        if keys[0].startswith("prompt|"):
            if len(written) == 4:
                raise OSError("the process died")
            written.extend(keys)
        return claim_keys(db, keys, now)

    monkeypatch.setattr(runner, "claim_keys", dies_on_the_third_batch)
    first = run_due(loaded_db, Config(), at(8))
    assert ("prompt:morning", "failed") in [(r.job, r.outcome) for r in first]
    prompts = "SELECT count(*) FROM outbox WHERE kind = 'prompt'"
    assert loaded_db.execute(prompts).fetchone()[0] == 4
    monkeypatch.undo()
    again = run_due(loaded_db, Config(), at(8, 1))
    assert [(r.job, r.outcome, r.detail) for r in again] == [("prompt:morning", "ran", "2 queued")]
    prompts = loaded_db.execute(
        "SELECT person, count(*) FROM outbox WHERE kind = 'prompt' GROUP BY person"
    ).fetchall()
    assert len(prompts) == 6 and {count for _, count in prompts} == {1}


def test_a_clock_that_jumped_ahead_cannot_silence_the_real_day(
    loaded_db: sqlite_utils.Database,
) -> None:
    """The clock jumped to the next morning and back (or `tick --at` a later day): the
    rest of the day was recorded skipped by that clock. At their real times the jobs run
    (or are skipped by the real clock), each message once."""
    run_due(loaded_db, Config(), at(8, 5))
    ahead = run_due(loaded_db, Config(), at(9, 0, day=DAY + dt.timedelta(days=1)))
    assert ("prompt:noon", "skipped") in [(r.job, r.outcome) for r in ahead]
    done = run_due(loaded_db, Config(), at(12, 0))  # the clock is back
    assert [(r.job, r.outcome) for r in done] == [
        ("review", "skipped"),
        ("reminder:morning", "skipped"),  # 150 min late by the real clock
        ("deadline:morning", "skipped"),
        ("digest:1", "skipped"),
        ("prompt:noon", "ran"),
    ]
    assert done[-1].detail == "6 queued"
    tomorrow = run_due(loaded_db, Config(), at(8, 0, day=DAY + dt.timedelta(days=1)))
    # tomorrow's release and prompt were done by the clock ahead: they run again in time
    assert ("prompt:morning", "ran") in [(r.job, r.outcome) for r in tomorrow]
    prompts = loaded_db.execute(
        "SELECT at, count(*) FROM outbox WHERE kind = 'prompt' AND person = '梁红' GROUP BY at"
    ).fetchall()
    assert [count for _, count in prompts] == [1, 1, 1]


def test_a_prompt_sent_early_by_a_clock_ahead_goes_out_again_on_the_real_day(
    loaded_db: sqlite_utils.Database,
) -> None:
    """The clock jumped to 08:30 tomorrow: tomorrow's prompt ran then, within its grace.
    On the real tomorrow at 08:00 the members get it again, on time, once."""
    tomorrow = DAY + dt.timedelta(days=1)
    run_due(loaded_db, Config(), at(8, 5))
    ahead = run_due(loaded_db, Config(), at(8, 30, day=tomorrow))
    assert ("prompt:morning", "ran", "6 queued") in [(r.job, r.outcome, r.detail) for r in ahead]
    run_due(loaded_db, Config(), at(12, 0))  # the clock is back
    on_time = run_due(loaded_db, Config(), at(8, 0, day=tomorrow))
    assert ("prompt:morning", "ran", "6 queued") in [(r.job, r.outcome, r.detail) for r in on_time]
    assert run_due(loaded_db, Config(), at(8, 1, day=tomorrow)) == []
    prompts = loaded_db.execute(
        "SELECT count(*) FROM outbox WHERE kind = 'prompt' AND person = '梁红' AND at LIKE ?",
        [f"{tomorrow.isoformat()}%"],
    ).fetchone()[0]
    assert prompts == 2  # the early one, and the one on time


def _linked_ids(db: sqlite_utils.Database, config: Config) -> list[tuple[int, int | None]]:
    """(row id, message id its member-page link names) of each prompt."""
    key = link_key(db, config)
    found = []
    for row in db.query("SELECT id, text FROM outbox WHERE kind = 'prompt' ORDER BY id"):
        token = re.search(r"逐人填报：\S+/me/(\S+)", row["text"])[1]  # type: ignore[index]
        found.append((row["id"], read_member_token(key, token, at(8), 7)[2]))
    return found


@pytest.mark.parametrize(
    ("slack", "replies_meanwhile"),
    [
        (256, 3),  # replies stored while the batch was made: its ids lie past them
        (2, 3),  # more replies than the slack: the batch is made again inside
        (256, 0),
    ],
)
def test_each_prompt_link_names_its_own_row_whatever_was_written_meanwhile(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slack: int,
    replies_meanwhile: int,
) -> None:
    """A batch's rows and links are made before its transaction, with ids past the last
    row; replies another process stores meanwhile take ids of their own."""
    monkeypatch.setattr(runner, "WRITE_BATCH", 2)
    monkeypatch.setattr(runner, "ID_SLACK", slack)
    config = Config(public_url="https://gw.example.cn", public_url_set=True)
    other = open_db(db_path)
    made = runner.Collected._rows

    def replies_arrive(self: runner.Collected, *args: object) -> list[dict]:
        rows = made(self, *args)  # type: ignore[arg-type]
        if self.db.conn.in_transaction:  # made again inside: nobody else writes now
            return rows
        with transaction(other):
            for _ in range(replies_meanwhile):
                queue_message(other, at=at(8), person=None, kind="reply", text="已记录")
        return rows

    monkeypatch.setattr(runner.Collected, "_rows", replies_arrive)
    run_due(loaded_db, config, at(8))
    linked = _linked_ids(loaded_db, config)
    assert len(linked) == 6 and all(row_id == named for row_id, named in linked)
    replies = loaded_db.execute("SELECT count(*) FROM outbox WHERE kind = 'reply'").fetchone()
    assert replies[0] >= 3 * replies_meanwhile


@pytest.mark.parametrize("dies_after", [0, 1])
def test_a_digest_job_that_dies_part_way_keeps_no_digest_whose_messages_were_not_written(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch, dies_after: int
) -> None:
    """What a job sent is written as it goes (a province's 10,500 digests are not held to
    the end); a digest is kept as sent only once every message carrying it is written."""
    monkeypatch.setattr(runner, "FLUSH_AT", 1)
    monkeypatch.setattr(runner, "DIGESTS_AT", 1)
    [job] = [j for j in due_jobs(Config(), at(10, 30), at(10, 30)) if j.name == "digest:1"]
    expected: dict[str, int] = {}

    def counted(person: dict, kind: str, text: str, key: str, card: object = None) -> bool:
        unit = key.split("|")[1].split("/")[0]
        expected[unit] = expected.get(unit, 0) + 1
        return True

    run_due(loaded_db, Config(), at(10, 29))  # the morning's jobs, so the digest has a day
    job.run(loaded_db, Config(), counted, job.due)  # what a whole run sends, per unit
    assert len(expected) == 2  # the two villages' secretaries
    collect = runner.Collected.__call__
    calls: list[str] = []

    def dies(self: runner.Collected, *args: object, **more: object) -> bool:
        if len(calls) == dies_after:
            raise OSError("the process died")
        calls.append("sent")
        return collect(self, *args, **more)  # type: ignore[arg-type]

    monkeypatch.setattr(runner.Collected, "__call__", dies)
    assert ("digest:1", "failed") in [
        (r.job, r.outcome) for r in run_due(loaded_db, Config(), at(10, 30))
    ]
    kept = [unit for (unit,) in loaded_db.execute("SELECT unit FROM digests_sent")]
    written = dict(
        loaded_db.execute(
            "SELECT substr(send_key, 8, instr(substr(send_key, 8), '/') - 1), count(*)"
            " FROM outbox WHERE kind = 'digest' GROUP BY 1"
        ).fetchall()
    )
    assert all(written.get(unit) == expected[unit] for unit in kept)
    assert len(kept) == dies_after  # the units finished before it died: kept as it went
    monkeypatch.undo()
    run_due(loaded_db, Config(), at(10, 31))  # the next firing sends the rest, nothing twice
    written = dict(
        loaded_db.execute(
            "SELECT substr(send_key, 8, instr(substr(send_key, 8), '/') - 1), count(*)"
            " FROM outbox WHERE kind = 'digest' GROUP BY 1"
        ).fetchall()
    )
    assert written == expected


def test_a_fan_out_commits_without_checkpointing_then_checkpoints_once(
    loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A province's fan-out commits 400 batches: none may copy the WAL back while it holds
    the lock file (every reply would wait for the fsyncs)."""
    monkeypatch.setattr(runner, "WRITE_BATCH", 2)
    claim_keys = runner.claim_keys
    seen: set[int] = set()

    def watched(db: sqlite_utils.Database, keys: list[str], now: dt.datetime) -> set[str]:
        seen.add(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        return claim_keys(db, keys, now)

    monkeypatch.setattr(runner, "claim_keys", watched)
    [run] = [r for r in run_due(loaded_db, Config(), at(8)) if r.job == "prompt:morning"]
    assert run.detail == "6 queued" and seen == {0}
    assert loaded_db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
