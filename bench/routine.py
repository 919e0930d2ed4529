"""The daily routine at county scale (DESIGN §9): all digests, and a slot's fan-out."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from bench.county import make_county
from bot.config import Config
from schedules.runner import DueJob, day_jobs, deliver_all, run_job
from storage.db import open_db

DAY = dt.date(2026, 3, 2)
DIGEST_BUDGET = 2.0  # seconds, every digest of the county
FANOUT_BUDGET = 10.0  # seconds, one slot's prompts to 10,000 members, delivered


def _job(config: Config, name: str) -> DueJob:
    return next(job for job in day_jobs(config, DAY) if job.name == name)


def _row(name: str, budget: float, measured: float) -> dict:
    return {
        "name": name,
        "budget": f"< {budget:g} s",
        "measured": round(measured, 3),
        "unit": "s",
        "pass": measured < budget,
    }


def run() -> list[dict]:
    config = Config()
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "county.db")
        try:
            county = make_county(db, day=DAY, tz=config.tz)
            # the 20:30 report: every village digest, the town and county roll-ups, their
            # texts with signed links, claimed and queued for 500+ recipients
            digest = _job(config, "digest:2")
            start = time.perf_counter()
            run_job(db, config, digest, digest.due)
            digests = time.perf_counter() - start
            prompt = _job(config, "prompt:evening")
            start = time.perf_counter()
            run_job(db, config, prompt, prompt.due)
            deliver_all(db, config, prompt.due)
            fanout = time.perf_counter() - start
            queued = db.execute("SELECT count(*) FROM outbox WHERE kind = 'prompt'").fetchone()[0]
            assert queued == county.members, (queued, county.members)
        finally:
            db.close()
    return [
        _row(
            f"county digests ({county.villages} villages, {county.subjects:,} subjects,"
            f" {county.contacts:,} contacts)",
            DIGEST_BUDGET,
            digests,
        ),
        _row(f"slot fan-out to {county.members:,} members (console)", FANOUT_BUDGET, fanout),
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
