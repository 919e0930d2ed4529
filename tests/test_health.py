"""/healthz: 200 only while the database takes a write; whether the schedule fires."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from flask import Flask

from bot.config import Config
from bot.web import health
from schedules.runner import record_firing
from tests.fake_wechat import make_app


@pytest.fixture
def app(
    db: sqlite_utils.Database, db_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    monkeypatch.setattr(health, "PROBE_EVERY", dt.timedelta(0))  # probe on every request
    app = make_app(db_path, config)
    yield app
    app.extensions["gridwatch_pool"].close_all()
    background = app.extensions.get("gridwatch_background")
    if background is not None:
        background.stop()


def test_a_writable_database_is_healthy_and_the_probe_is_a_commit(
    app: Flask, db: sqlite_utils.Database
) -> None:
    first = app.test_client().get("/healthz")
    second = app.test_client().get("/healthz")
    assert first.status_code == second.status_code == 200
    assert first.json["database"] == "writable" and first.json["status"] == "ok"
    probes = db.execute("SELECT value FROM settings WHERE key = 'healthz'").fetchone()[0]
    assert probes == "2"  # each answer committed a write


def test_a_vanished_database_file_is_not_healthy(app: Flask, db_path: Path) -> None:
    assert app.test_client().get("/healthz").status_code == 200
    os.rename(db_path, db_path.with_suffix(".moved"))
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503 and "gone" in answer.json["database"]


def test_a_write_lock_held_past_the_probe_is_not_healthy(app: Flask, db_path: Path) -> None:
    """A writer that does not let go (a stuck import, say) for longer than the probe waits."""
    assert app.test_client().get("/healthz").status_code == 200
    fd = os.open(f"{db_path}-lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        answer = app.test_client().get("/healthz")
    finally:
        os.close(fd)
    assert answer.status_code == 503 and "write lock" in answer.json["database"]
    assert app.test_client().get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "fired_ago, schedule",
    [(dt.timedelta(seconds=30), "running"), (dt.timedelta(minutes=10), "off in this process")],
)
def test_the_report_says_when_the_schedule_last_fired(
    app: Flask, db: sqlite_utils.Database, fired_ago: dt.timedelta, schedule: str
) -> None:
    fired = dt.datetime.now(Config().tz) - fired_ago
    record_firing(db, fired)
    report = app.test_client().get("/healthz").json
    assert report["schedule"] == schedule  # this app runs no schedule of its own
    assert report["schedule_fired_at"] == fired.isoformat(timespec="seconds")


def test_a_flood_of_healthz_commits_once_a_second(db: sqlite_utils.Database, db_path: Path) -> None:
    """/healthz is open to anyone: requests within PROBE_EVERY reuse the last probe."""
    start = dt.datetime(2026, 3, 2, 8, 0, tzinfo=Config().tz)
    for n in range(50):
        ok, _ = health.check(db, str(db_path), False, start + dt.timedelta(milliseconds=n))
        assert ok
    probes = db.execute("SELECT value FROM settings WHERE key = 'healthz'").fetchone()[0]
    assert probes == "1"
    health.check(db, str(db_path), False, start + health.PROBE_EVERY)
    assert db.execute("SELECT value FROM settings WHERE key = 'healthz'").fetchone()[0] == "2"
