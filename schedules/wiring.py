"""The live scheduler: APScheduler calls `run_due` at each job time, every minute (delivery,
retries, messages stored but not handled, escalation of alerts and overdue problems) and
once at start.

Only one process may run it: the one that takes an exclusive lock on a file next to the
database (`start_scheduler`; the others get None, or wait for it with `wait`). The lock lives
as long as the process (or until `stop_scheduler`): when the process dies, another takes over.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import now as clock_now
from bot.config import SLOTS, Config
from schedules.recovery import recover_unhandled
from schedules.runner import record_firing, run_due
from storage.db import open_db

log = logging.getLogger("gridwatch.schedule")

_locks: dict[int, IO[str]] = {}
_firing = threading.Lock()
LOCK_POLL = 1.0  # seconds between tries of a process waiting to take the schedule over


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    if str(db_path) == ":memory:":
        return Path(tempfile.gettempdir()) / f"gridwatch-memory-{os.getpid()}.scheduler.lock"
    return Path(f"{db_path}.scheduler.lock")


def take_lock(path: Path, wait: threading.Event | None = None) -> IO[str] | None:
    """An exclusive flock on `path`; None when another holder has it. With `wait`, tried
    every LOCK_POLL seconds until it is taken or `wait` is set."""
    handle = open(path, "a+", encoding="utf-8")  # held open: closing it drops the lock
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if wait is None or wait.wait(LOCK_POLL):
                handle.close()
                return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each firing in a daemon thread. A process told to stop (SIGTERM) then does not
    wait for a firing's slow API calls: what a firing had not finished (its writes are
    transactions, its sends leases) the next firing, here or in another process, does."""

    def _do_submit_job(self, job: Any, run_times: list[Any]) -> None:
        threading.Thread(
            target=self._run, args=(job, run_times), name="schedule-firing", daemon=True
        ).start()

    def _run(self, job: Any, run_times: list[Any]) -> None:
        try:
            events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
        except BaseException:
            self._run_job_error(job.id, *sys.exc_info()[1:])
        else:
            self._run_job_success(job.id, events)


def job_times(config: Config) -> list[tuple[int, int]]:
    """Every (hour, minute) at which some job is due, sorted."""
    times = {config.release, *config.reports}
    for slot in SLOTS:
        slot_times = config.slots[slot]
        times |= {slot_times.prompt, slot_times.reminder, slot_times.deadline}
    return sorted((t.hour, t.minute) for t in times)


def tick(db_path: str | os.PathLike[str], config: Config) -> None:
    """One scheduler firing: run whatever is due now (the clock is read here, at the edge),
    then handle messages that were stored but whose handling never finished."""
    with _firing:  # the minute's firing and a job's wait for each other: one fan-out each
        _fire(db_path, config)


def _fire(db_path: str | os.PathLike[str], config: Config) -> None:
    db = open_db(db_path)
    try:
        now = clock_now(config.tz)
        record_firing(db, now)
        recover_unhandled(db, config, now)
        for run in run_due(db, config, now):  # then delivers what both queued
            log.info("%s %s due %s %s", run.outcome, run.job, run.due.isoformat(), run.detail)
    except Exception:
        log.exception("scheduled run failed")
    finally:
        db.conn.close()


def start_scheduler(
    db_path: str | os.PathLike[str], config: Config, wait: threading.Event | None = None
) -> BackgroundScheduler | None:
    """Start the one scheduler of this database, or return None if another process runs it
    (with `wait`: once it is free, unless `wait` is set first)."""
    handle = take_lock(lock_path(db_path), wait)
    if handle is None:
        log.info("scheduler runs in another process")
        return None
    scheduler = BackgroundScheduler(
        executors={"default": DaemonThreadExecutor()},
        timezone=config.tz,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": max(config.grace_minutes, 1) * 60,
        },
    )
    for number, (hour, minute) in enumerate(job_times(config)):
        extra = {}
        if number == 0:  # the catch-up run at start (a one-off date job races shutdown)
            extra["next_run_time"] = clock_now(config.tz)
        scheduler.add_job(
            tick,
            CronTrigger(hour=hour, minute=minute, timezone=config.tz),
            args=[str(db_path), config],
            id=f"tick-{hour:02d}{minute:02d}",
            **extra,
        )
    # every minute as well: a job that failed is retried while still within its grace, and
    # the outbox's deferred and retried messages go out (run_due delivers after the jobs)
    scheduler.add_job(
        tick,
        IntervalTrigger(minutes=1, timezone=config.tz),
        args=[str(db_path), config],
        id="every-minute",
    )
    scheduler.start()
    _locks[id(scheduler)] = handle
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler, wait: bool = True) -> None:
    """Shut down and release the lock so another process may take over."""
    scheduler.shutdown(wait=wait)
    handle = _locks.pop(id(scheduler), None)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
