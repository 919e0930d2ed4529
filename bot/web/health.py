"""/healthz: whether this server can store a message now, found by storing something."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading

import sqlite_utils

from schedules.runner import last_firing
from storage.db import LockBusy, transaction

# how long the probe waits for the write lock (seconds before each try): a roster import
# writes in short batches, so a longer wait means the database is stuck
PROBE_PATIENCE = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
FIRING_LATE = dt.timedelta(minutes=2)
# /healthz is open to anyone: a flood of it must not become a flood of commits (each an
# fsync under the write lock). A process probes at most this often and reuses the answer.
PROBE_EVERY = dt.timedelta(seconds=1)
_last_probe: dict[str, tuple[dt.datetime, str]] = {}  # database path → (when, problem)
_probing = threading.Lock()


def check(
    db: sqlite_utils.Database, db_path: str, schedule: bool, now: dt.datetime
) -> tuple[bool, dict]:
    """(healthy, the report): healthy only when a write was committed just now. The report
    also says whether the schedule fired in the last two minutes (it fires every minute,
    in whichever serving process holds its lock)."""
    report: dict[str, str] = {"status": "ok", "database": "writable"}
    problem = _probe(db, db_path, now)
    if problem:
        report.update(status="failing", database=problem)
    fired = last_firing(db)
    if fired is not None:
        report["schedule_fired_at"] = fired.isoformat(timespec="seconds")
    if fired is not None and now - fired <= FIRING_LATE:
        report["schedule"] = "running"
    else:
        report["schedule"] = "not running" if schedule else "off in this process"
    return not problem, report


def _probe(db: sqlite_utils.Database, db_path: str, now: dt.datetime) -> str:
    """The write probe's finding, made at most once per PROBE_EVERY in this process."""
    with _probing:
        last = _last_probe.get(db_path)
        if last is not None and dt.timedelta(0) <= now - last[0] < PROBE_EVERY:
            return last[1]
        problem = _write_problem(db, db_path)
        _last_probe[db_path] = (now, problem)
        return problem


def _write_problem(db: sqlite_utils.Database, db_path: str) -> str:
    if db_path != ":memory:" and not os.path.exists(db_path):
        return f"the database file {db_path} is gone"
    try:
        with transaction(db, patience=PROBE_PATIENCE):
            db.conn.execute(
                "INSERT INTO settings (key, value) VALUES ('healthz', '1') ON CONFLICT (key)"
                " DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
    except LockBusy:
        return "the write lock stayed taken for 2 s"
    except sqlite3.Error as error:
        return f"cannot write: {error}"
    return ""
