"""Budget: a province on one machine (DESIGN §9) — a day's schedule while callbacks come.

A seeded province (bench.county, `counties` roots of 100 villages each; 100 counties are the
budget's 10,000 villages / 500,000 subjects / 100,000 members) is written straight into
SQLite with yesterday's reports. Then the day runs, its clock ticked from job to job (the
console channel): at each due time the jobs due run in order (`run_job`, as `run_due`
does) and what they queued is delivered. Around each prompt a load client offers encrypted
WeCom callbacks at 500 a second for `window` seconds to gunicorn serving the same database
(the members answering the prompt), while the fan-out runs. The rest of each slot's reports
(members keep answering for two hours) are written straight in, 500 a transaction: 90 % of
the subjects before the reminder, 97 % before the deadline, so reminders, deadline alerts
and digests have a real day's size.

Reported: each job's lateness (wall seconds from its due time, when the tick reached it, to
its end: the jobs due at one time run one after another, so a later one waits for the
earlier ones), fan-out and digest times, callback p50/p99 at 500/s, the RSS of each serving
process and of the scheduling process, and the database's size before and after the day.

`python -m bench.province 1 10 100` runs each size and prints how each figure grows;
`make bench` runs the province (100). The generator runs in a child process, so the
scheduling process's RSS is the schedule's own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.callback import SERVING_THREADS
from bench.county import make_county
from bench.harness import (
    DAY,
    TZ,
    encrypted_post,
    gunicorn,
    member_names,
    report_text,
    server_env,
    worker_rss_mb,
    workers_cpu_seconds,
)
from bench.paced import PacedResult, run_paced
from bot.config import SLOTS, Config
from schedules.runner import day_jobs, deliver_all, run_job
from storage.db import connect, open_db, transaction

VILLAGES_PER_COUNTY = 100
SUBJECTS_PER_VILLAGE = 50
MEMBERS_PER_VILLAGE = 10
RATE = 500.0  # callbacks a second offered around each prompt
WINDOW = 20.0  # seconds of callbacks after each prompt
JOB_BUDGET = 60.0  # every job within 60 s of its time
DIGEST_BUDGET = 30.0  # all digests of a report
CALLBACK_P99_BUDGET = 200.0  # ms at 500/s
RSS_BUDGET = 400.0  # MB per process
WRITE_BATCH = 500  # reports written straight in, per transaction
# the deployment README "Limits and scale" gives a province: gunicorn -w 2 -k gthread
# --threads 8 (as bench.callback serves), the schedule in a process of its own under
# `nice -n 10` (cron's `gridwatch tick`), so replies keep the CPU the fan-out would take
SCHEDULE_NICE = 10
PUBLIC_URL = "https://gridwatch.example.cn"
SECRET_KEY = "bench-province-" + "k" * 32


@dataclass
class DayResult:
    counties: int
    villages: int
    subjects: int
    members: int
    generate_seconds: float
    week: bool = False  # the 7 days before were a real week (the Monday pack reads them)
    jobs: dict[str, dict] = field(default_factory=dict)  # name: {start, end, late, queued}
    delivered: dict[str, float] = field(default_factory=dict)  # due time: delivery seconds
    reports_written: dict[str, float] = field(default_factory=dict)  # slot: seconds
    callbacks: dict[str, dict] = field(default_factory=dict)  # slot: paced result
    rss_serving_mb: float = 0.0
    rss_schedule_mb: float = 0.0
    db_before_mb: float = 0.0
    db_after_mb: float = 0.0

    @property
    def worst_late(self) -> float:
        return max(job["late"] for job in self.jobs.values())

    @property
    def digest_seconds(self) -> float:
        return max(job["run"] for name, job in self.jobs.items() if name.startswith("digest"))

    @property
    def fanout_seconds(self) -> float:
        return max(job["run"] for name, job in self.jobs.items() if name.startswith("prompt"))

    @property
    def callback_p99(self) -> float:
        return max((c["p99"] for c in self.callbacks.values()), default=0.0)

    @property
    def callback_p50(self) -> float:
        return max((c["p50"] for c in self.callbacks.values()), default=0.0)

    @property
    def callback_cpu_us(self) -> float:
        return max((c.get("cpu_us", 0) for c in self.callbacks.values()), default=0.0)

    @property
    def callbacks_failed(self) -> int:
        return sum(c["failed"] for c in self.callbacks.values())


def _generate(db_path: str, counties: int, seed: int, week: bool = False) -> dict:
    db = open_db(db_path)
    try:
        started = time.perf_counter()
        county = make_county(
            db,
            day=DAY,
            tz=TZ,
            villages=VILLAGES_PER_COUNTY * counties,
            subjects=SUBJECTS_PER_VILLAGE * VILLAGES_PER_COUNTY * counties,
            contacts=10**9,  # all of yesterday's
            members_per_village=MEMBERS_PER_VILLAGE,
            counties=counties,
            seed=seed,
            today_reported=False,
            week=week,
        )
        seconds = time.perf_counter() - started
    finally:
        db.conn.close()
    return asdict(county) | {"seconds": seconds}


def generate(db_path: Path, counties: int, seed: int = 2020, week: bool = False) -> dict:
    """The province, written by a child process (its memory is not the schedule's); with
    `week` the 7 days before the bench's day are a real week (bench.county.make_county)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        return pool.apply(_generate, (str(db_path), counties, seed, week))


def members_with_names(db_path: Path) -> list[tuple[str, list[str]]]:
    db = connect(db_path)
    try:
        return member_names(db)
    finally:
        db.conn.close()


def slot_posts(
    members: list[tuple[str, list[str]]], prompt: dt.time, count: int, seed: int, base: int
) -> list:
    """`count` members' replies to a prompt (each member once), sent within 10 minutes."""
    rng = random.Random(seed)
    start = int(dt.datetime.combine(DAY, prompt, tzinfo=TZ).timestamp())
    chosen = rng.sample(members, min(count, len(members)))
    return [
        encrypted_post(member, report_text(rng, names), base + index, start + rng.randrange(600))
        for index, (member, names) in enumerate(chosen)
    ]


def write_reports(db_path: Path, slot: str, share: int, at: dt.datetime) -> float:
    """Reports for `share` % of the active subjects not yet reported in `slot` (the members
    who answer over the next two hours), WRITE_BATCH subjects a transaction; seconds."""
    db = connect(db_path)
    day = DAY.isoformat()
    started = time.perf_counter()
    try:
        top = db.execute("SELECT COALESCE(MAX(id), 0) FROM subjects").fetchone()[0]
        for low in range(1, top + 1, WRITE_BATCH):
            with transaction(db):
                db.execute(
                    """INSERT INTO contacts (subject_id, date, slot, member_id, temperature,
                         status, symptoms, reported_at)
                       SELECT s.id, :day, :slot, a.person_id, 36.0 + (s.id % 10) / 10.0,
                         CASE WHEN s.id % 97 = 0 THEN 'unreachable' ELSE 'normal' END, '', :at
                       FROM subjects s JOIN assignments a ON a.subject_id = s.id AND a.position = 0
                       WHERE s.id BETWEEN :low AND :high AND s.start_date <= :day
                         AND s.end_date >= :day AND (s.id * 7919) % 100 < :share
                         AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.subject_id = s.id
                           AND c.date = :day AND c.slot = :slot AND c.current = 1)""",
                    {
                        "day": day,
                        "slot": slot,
                        "at": at.isoformat(timespec="seconds"),
                        "low": low,
                        "high": low + WRITE_BATCH - 1,
                        "share": share,
                    },
                )
    finally:
        db.conn.close()
    return time.perf_counter() - started


def _size_mb(db_path: Path) -> float:
    return sum(
        Path(f"{db_path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{db_path}{suffix}").exists()
    ) / (1024 * 1024)


def run_day(
    counties: int,
    rate: float = RATE,
    window: float = WINDOW,
    folder: Path | None = None,
    serving_workers: int = 2,
    quiet: bool = False,
    nice: int = SCHEDULE_NICE,
    threads: int = SERVING_THREADS,
    week: bool = False,
) -> DayResult:
    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        db_path = Path(tmp) / "province.db"
        say(
            f"… generating {counties} counties ({counties * VILLAGES_PER_COUNTY:,} villages)"
            + (", with the week before" if week else "")
        )
        sizes = generate(db_path, counties, week=week)
        result = DayResult(
            counties,
            sizes["villages"],
            sizes["subjects"],
            sizes["members"],
            round(sizes["seconds"], 2),
            week,
        )
        say(
            f"  {sizes['subjects']:,} subjects, {sizes['members']:,} members,"
            f" {sizes['contacts']:,} contacts in {sizes['seconds']:.1f} s"
        )
        members = members_with_names(db_path)
        # a deployment with a public address: each prompt carries its member-page link
        config = dataclasses.replace(
            Config(), public_url=PUBLIC_URL, public_url_set=True, secret_key=SECRET_KEY
        )
        posts_files: dict[str, Path] = {}
        for number, slot in enumerate(SLOTS):
            posts = slot_posts(
                members,
                config.slots[slot].prompt,
                int(rate * window),
                seed=number,
                base=9_000_000_000 + number * 10_000_000,
            )
            posts_files[slot] = Path(tmp) / f"{slot}.tsv"
            posts_files[slot].write_text(
                "".join(f"{p.path}\t{p.body}\n" for p in posts), encoding="utf-8"
            )
        del members
        result.db_before_mb = round(_size_mb(db_path), 1)
        db = open_db(db_path)
        jobs = day_jobs(config, DAY)
        with gunicorn(
            "bot:create_app()", server_env(db_path), workers=serving_workers, threads=threads
        ) as (
            url,
            master,
        ):
            if nice:  # this thread only (Linux): the server and the load client keep theirs
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            for due in sorted({job.due for job in jobs}):
                due_now = [job for job in jobs if job.due == due]
                load: threading.Thread | None = None
                paced: dict[str, PacedResult | float] = {}
                for job in due_now:
                    if job.name.startswith("prompt:"):
                        slot = job.name.split(":")[1]

                        def offer(slot: str = slot, into: dict = paced) -> None:
                            cpu = workers_cpu_seconds(master.pid)
                            into[slot] = run_paced(url, posts_files[slot], rate, window)
                            into[f"{slot}:cpu"] = workers_cpu_seconds(master.pid) - cpu

                        load = threading.Thread(target=offer)
                        load.start()
                tick = time.perf_counter()
                for job in due_now:
                    start = time.perf_counter() - tick
                    run = run_job(db, config, job, due)
                    end = time.perf_counter() - tick
                    queued = run.detail if run else ""
                    result.jobs[job.name] = {
                        "start": round(start, 3),
                        "run": round(end - start, 3),
                        "late": round(end, 3),
                        "detail": queued,
                    }
                    say(f"  {due:%H:%M} {job.name}: {end - start:.2f} s ({queued})")
                started = time.perf_counter()
                while deliver_all(db, config, due):
                    pass
                delivered = time.perf_counter() - tick
                result.delivered[f"{due:%H:%M}"] = round(time.perf_counter() - started, 3)
                for job in due_now:  # what they queued is out when the delivery ends
                    result.jobs[job.name]["delivered"] = round(delivered, 3)
                if load is not None:
                    load.join()
                    for slot, measured in paced.items():
                        if slot.endswith(":cpu"):
                            continue
                        cpu = paced[f"{slot}:cpu"] / max(1, measured.answered)
                        result.callbacks[slot] = asdict(measured) | {"cpu_us": round(cpu * 1e6)}
                        say(
                            f"  callbacks after the {slot} prompt: p50 {measured.p50:.1f} ms"
                            f" p99 {measured.p99:.1f} ms, {measured.answered} answered,"
                            f" {measured.failed} failed; {cpu * 1e6:.0f} µs of the serving"
                            " processes' CPU per callback (steadier than the latency on a"
                            f" busy machine; load {os.getloadavg()[0]:.1f})"
                        )
                for job in due_now:
                    slot = job.name.split(":")[-1]
                    if job.name.startswith("prompt:"):
                        when = dt.datetime.combine(DAY, config.slots[slot].prompt, tzinfo=TZ)
                        seconds = write_reports(db_path, slot, 90, when + dt.timedelta(minutes=30))
                        result.reports_written[slot] = round(seconds, 2)
                    elif job.name.startswith("reminder:"):
                        when = dt.datetime.combine(DAY, config.slots[slot].reminder, tzinfo=TZ)
                        seconds = write_reports(db_path, slot, 97, when + dt.timedelta(minutes=10))
                        result.reports_written[slot] += round(seconds, 2)
            result.rss_serving_mb = round(worker_rss_mb(master.pid), 1)
        db.conn.close()
        result.rss_schedule_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result.db_after_mb = round(_size_mb(db_path), 1)
    return result


def rows(result: DayResult) -> list[dict]:
    size = f"{result.villages:,} villages, {result.subjects:,} subjects, {result.members:,} members"
    if result.week:
        size += ", a week of reports before"
    return [
        {
            "name": f"province day ({size}): every job's end after its time (worst: "
            + max(result.jobs, key=lambda name: result.jobs[name]["late"])
            + ")",
            "budget": "<= 60 s",
            "measured": result.worst_late,
            "unit": "s",
            "pass": result.worst_late <= JOB_BUDGET,
        },
        {
            "name": f"province day ({size}): all digests of a report",
            "budget": "< 30 s",
            "measured": result.digest_seconds,
            "unit": "s",
            "pass": result.digest_seconds < DIGEST_BUDGET,
        },
        {
            "name": f"province day: callbacks at {RATE:.0f}/s around the prompts, p99",
            "budget": "< 200 ms",
            "measured": result.callback_p99,
            "unit": "ms",
            "pass": result.callback_p99 < CALLBACK_P99_BUDGET and result.callbacks_failed == 0,
        },
        {
            "name": "province day: RSS per process (serving worker, schedule)",
            "budget": "< 400 MB",
            "measured": max(result.rss_serving_mb, result.rss_schedule_mb),
            "unit": "MB",
            "pass": max(result.rss_serving_mb, result.rss_schedule_mb) < RSS_BUDGET,
        },
        {
            "name": "province day: database growth in the day"
            f" (from {result.db_before_mb:,.0f} MB)",
            "budget": "reported",
            "measured": result.db_after_mb - result.db_before_mb,
            "unit": "MB",
            "pass": None,
        },
    ]


def growth_table(results: list[DayResult]) -> str:
    figures = [
        ("villages", lambda r: f"{r.villages:,}"),
        ("subjects", lambda r: f"{r.subjects:,}"),
        ("members", lambda r: f"{r.members:,}"),
        ("generate (s)", lambda r: f"{r.generate_seconds:.1f}"),
        ("fan-out, one prompt (s)", lambda r: f"{r.fanout_seconds:.2f}"),
        ("digests, one report (s)", lambda r: f"{r.digest_seconds:.2f}"),
        ("worst job end after its time (s)", lambda r: f"{r.worst_late:.2f}"),
        ("delivery after a prompt (s)", lambda r: f"{max(r.delivered.values()):.2f}"),
        (
            "callback p50 / p99 at 500/s (ms)",
            lambda r: f"{r.callback_p50:.0f} / {r.callback_p99:.0f}",
        ),
        ("callbacks failed", lambda r: f"{r.callbacks_failed}"),
        ("serving CPU per callback (µs)", lambda r: f"{r.callback_cpu_us:.0f}"),
        (
            "RSS serving / schedule (MB)",
            lambda r: f"{r.rss_serving_mb:.0f} / {r.rss_schedule_mb:.0f}",
        ),
        ("database before → after (MB)", lambda r: f"{r.db_before_mb:.0f} → {r.db_after_mb:.0f}"),
    ]
    header = "| counties | " + " | ".join(str(r.counties) for r in results) + " |"
    lines = [header, "|---" * (len(results) + 1) + "|"]
    for label, show in figures:
        lines.append(f"| {label} | " + " | ".join(show(r) for r in results) + " |")
    return "\n".join(lines)


def run() -> list[dict]:
    counties = int(os.environ.get("BENCH_PROVINCE_COUNTIES", "100"))
    result = run_day(
        counties,
        nice=int(os.environ.get("BENCH_SCHEDULE_NICE", SCHEDULE_NICE)),
        week=os.environ.get("BENCH_PROVINCE_WEEK", "1") != "0",
    )
    print(json.dumps(asdict(result), ensure_ascii=False), file=sys.stderr)
    return rows(result)


if __name__ == "__main__":
    # `python -m bench.province [--week] 1 10 100`: --week writes the week before the day
    week = "--week" in sys.argv[1:]
    sizes = [int(arg) for arg in sys.argv[1:] if arg != "--week"] or [1, 10, 100]
    results = []
    for size in sizes:
        results.append(run_day(size, week=week))
        print(json.dumps(asdict(results[-1]), ensure_ascii=False), flush=True)
    print(growth_table(results))
