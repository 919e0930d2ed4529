"""Delivery rounds: whoever claims a queued row sends it; nobody else does."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import sqlite_utils

from bot.channels import LEASE, claim, deliver_pending
from storage.db import connect
from storage.outbox import queue_message
from tests.conftest import NOW


class SlowChannel:
    """Takes a while per round, like a WeChat API call, and remembers what it sent."""

    name = "slow"

    def __init__(self, sent: list[int]) -> None:
        self.sent = sent

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        time.sleep(0.2)
        self.sent.extend(row["id"] for row in rows)
        for row in rows:
            db.execute("UPDATE outbox SET status = 'sent' WHERE id = ?", [row["id"]])


def queue(db: sqlite_utils.Database, count: int) -> list[int]:
    person = next(db.query("SELECT * FROM people WHERE name = '陈志刚'"))
    return [
        queue_message(db, at=NOW, person=person, kind="abnormal_alert", text=f"告警{n}")
        for n in range(count)
    ]


def test_two_rounds_at_once_send_each_message_once(
    loaded_db: sqlite_utils.Database, db_path: Path
) -> None:
    ids = queue(loaded_db, 5)
    sent: list[int] = []

    def round_() -> None:
        db = connect(db_path)
        try:
            deliver_pending(db, SlowChannel(sent), NOW)
        finally:
            db.close()

    threads = [threading.Thread(target=round_) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == ids


def test_a_claim_left_by_a_dead_round_is_taken_again_after_the_lease(
    loaded_db: sqlite_utils.Database,
) -> None:
    ids = queue(loaded_db, 2)
    rows = list(loaded_db.query("SELECT * FROM outbox ORDER BY id"))
    assert [r["id"] for r in claim(loaded_db, rows, NOW)] == ids  # then the process dies
    assert claim(loaded_db, rows, NOW + dt.timedelta(minutes=1)) == []
    sent: list[int] = []
    assert deliver_pending(loaded_db, SlowChannel(sent), NOW + dt.timedelta(minutes=1)) == 0
    assert deliver_pending(loaded_db, SlowChannel(sent), NOW + LEASE) == 2
    assert sent == ids


def test_due_times_compare_across_a_daylight_saving_change(
    loaded_db: sqlite_utils.Database,
) -> None:
    """Europe/Berlin falls back at 03:00 CEST: 02:30+02:00 is before 02:10+01:00, though the
    strings sort the other way; the message is due."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    queued = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC).astimezone(berlin)
    assert queued.isoformat() == "2026-10-25T02:30:00+02:00"
    person = next(loaded_db.query("SELECT * FROM people WHERE name = '陈志刚'"))
    queue_message(loaded_db, at=queued, person=person, kind="digest", text="汇总")
    now = dt.datetime(2026, 10, 25, 1, 10, tzinfo=dt.UTC).astimezone(berlin)
    assert now.isoformat() == "2026-10-25T02:10:00+01:00"
    sent: list[int] = []
    assert deliver_pending(loaded_db, SlowChannel(sent), now) == 1
