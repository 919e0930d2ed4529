"""The Monday pack and the flags note alone, on a province with a real week before its day.

`python -m bench.week_jobs COUNTIES [DB]` generates the province of bench.province with the
7 days before its Monday (`make_county(week=True)`) into DB (kept: the next run reuses it;
a temporary file when DB is not given), then runs each job in a fresh process at its time
(the pack at 09:00, the note at 20:45: its 7 days hold 6 of the week's), its sends
collected instead of written, and prints each one's seconds, what it sent, and the peak RSS
of its process and of its largest worker (GRIDWATCH_JOB_WORKERS)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS = {"review": dt.time(9), "flags": dt.time(20, 45)}


def run_job(db_path: Path, job: str) -> dict:
    """One job on the database as the province bench's schedule runs it (in this process)."""
    from bench.harness import DAY, TZ
    from bench.province import PUBLIC_URL, SECRET_KEY
    from bot.config import Config
    from schedules import review
    from storage.db import connect

    config = dataclasses.replace(
        Config(), public_url=PUBLIC_URL, public_url_set=True, secret_key=SECRET_KEY
    )
    db = connect(db_path)
    sent: list[str] = []

    def send(person: dict, kind: str, text: str, key: str) -> bool:
        sent.append(key)
        return True

    run = review.weekly_review if job == "review" else review.daily_flags
    started = time.perf_counter()
    try:
        run(db, config, send, dt.datetime.combine(DAY, JOBS[job], tzinfo=TZ))
    finally:
        db.conn.close()
    return {
        "job": job,
        "seconds": round(time.perf_counter() - started, 2),
        "sent": len(sent),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def measure(counties: int, db_path: Path) -> list[dict]:
    from bench.province import generate

    if not db_path.exists():
        sizes = generate(db_path, counties, week=True)
        print(
            f"generated {counties} counties with a week: {sizes['contacts']:,} reports"
            f" in {sizes['seconds']:.0f} s",
            file=sys.stderr,
        )
    found = []
    for job in JOBS:
        out = subprocess.run(
            [sys.executable, "-m", "bench.week_jobs", "--run", job, str(db_path.resolve())],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],  # bench is a folder of the checkout
        ).stdout
        found.append(json.loads(out.strip().splitlines()[-1]))
    return found


if __name__ == "__main__":
    if sys.argv[1] == "--run":
        print(json.dumps(run_job(Path(sys.argv[3]), sys.argv[2])))
    elif len(sys.argv) > 2:
        for row in measure(int(sys.argv[1]), Path(sys.argv[2])):
            print(json.dumps(row))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for row in measure(int(sys.argv[1]), Path(tmp) / "province.db"):
                print(json.dumps(row))
