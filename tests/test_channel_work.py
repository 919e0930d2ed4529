"""The work channel: scheduled messages reach the local WeCom API batched, split, retried."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils
from pytest_httpserver import HTTPServer

from bot.channels import channel_for, deliver_pending
from bot.channels.api import ApiClient
from bot.channels.work import BATCH, PER_MEMBER_PER_MINUTE, WorkChannel
from storage.outbox import queue_message
from tests.conftest import TZ
from tests.fake_wechat import WORK, FakeWeChat, config_for

SEND = "/cgi-bin/message/send"
AT = dt.datetime(2026, 3, 2, 8, 0, tzinfo=TZ)
LATER = dt.datetime(2026, 3, 2, 8, 3, 10, tzinfo=TZ)


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeWeChat:
    return FakeWeChat(httpserver)


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def channel(fake: FakeWeChat, slept: list[float]) -> WorkChannel:
    config = config_for(WORK, fake.base)
    return WorkChannel(config, ApiClient(config.channel, sleep=slept.append))


def queue(db: sqlite_utils.Database, recipient: str, text: str, kind: str = "prompt") -> int:
    person = {"wechat_id": recipient, "name": recipient}
    return queue_message(db, at=AT, person=person, kind=kind, text=text)


def outbox(db: sqlite_utils.Database) -> list[tuple]:
    return db.execute(
        "SELECT recipient, status, attempts, next_attempt_at FROM outbox ORDER BY id"
    ).fetchall()


def test_channel_for_work(fake: FakeWeChat) -> None:
    assert isinstance(channel_for(config_for(WORK, fake.base)), WorkChannel)


def test_same_text_is_batched_up_to_1000_recipients(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    for n in range(BATCH + 5):
        queue(db, f"m{n}", "请联系您的监测对象")
    queue(db, "m0", "另一条")
    assert deliver_pending(db, channel, LATER) == BATCH + 6
    calls = fake.sent(SEND)
    assert [len(c["touser"].split("|")) for c in calls] == [BATCH, 5, 1]
    assert calls[0]["agentid"] == 1000002 and "enable_duplicate_check" not in calls[0]
    assert calls[0]["msgtype"] == "text" and calls[0]["text"] == {"content": "请联系您的监测对象"}
    statuses = {row[1] for row in outbox(db)}
    assert statuses == {"sent"}
    assert (
        db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at = ?", [LATER.isoformat()]).fetchone()[
            0
        ]
        == BATCH + 6
    )


def test_long_text_is_split_on_lines(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    text = "\n".join(f"第{i}行：张三 36.5℃ 正常，李四 36.8℃ 正常" for i in range(100))
    queue(db, "lianghong", text, kind="digest")
    deliver_pending(db, channel, LATER)
    parts = [c["text"]["content"] for c in fake.sent(SEND)]
    assert len(parts) > 1 and "\n".join(parts) == text
    assert all(len(part.encode()) <= 2048 for part in parts)
    assert outbox(db) == [("lianghong", "sent", len(parts), None)]


def test_busy_is_retried_and_every_attempt_shows(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database, slept: list[float]
) -> None:
    fake.script(
        SEND, {"errcode": -1, "errmsg": "system busy"}, {"errcode": -1, "errmsg": "system busy"}
    )
    queue(db, "lianghong", "早上好，请联系：张三、李四")
    deliver_pending(db, channel, LATER)
    assert len(fake.sent(SEND)) == 3 and slept == [1.0, 2.0]
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert row["error"].count("-1 system busy") == 2


def test_still_busy_stays_queued_for_later_then_fails(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, *[{"errcode": -1, "errmsg": "system busy"}] * 100)
    queue(db, "lianghong", "提醒")
    deliver_pending(db, channel, LATER)
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"]) == ("queued", 4)
    assert row["next_attempt_at"] == "2026-03-02T08:05:10+08:00"
    assert deliver_pending(db, channel, LATER) == 0  # not before its time
    now = LATER
    for _ in range(2):
        now += dt.timedelta(hours=1)
        deliver_pending(db, channel, now)
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 12, None)
    assert row["error"]


def test_rate_limit_waits_for_the_window(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, {"errcode": 45009, "errmsg": "api freq out of limit"})
    queue(db, "lianghong", "提醒")
    deliver_pending(db, channel, LATER)
    assert outbox(db) == [("lianghong", "queued", 1, "2026-03-02T08:04:10+08:00")]
    deliver_pending(db, channel, LATER + dt.timedelta(minutes=1))
    assert outbox(db)[0][1:3] == ("sent", 2)


def test_invalid_users_are_undeliverable(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, {"errcode": 0, "errmsg": "ok", "invaliduser": "ghost"})
    queue(db, "lianghong", "提醒")
    queue(db, "ghost", "提醒")
    queue(db, "", "提醒")
    deliver_pending(db, channel, LATER)
    assert [row[:2] for row in outbox(db)] == [
        ("lianghong", "sent"),
        ("ghost", "undeliverable"),
        ("", "undeliverable"),
    ]
    fake.script(SEND, {"errcode": 81013, "errmsg": "user & party & tag all invalid"})
    queue(db, "ghost2", "提醒")
    deliver_pending(db, channel, LATER)
    assert outbox(db)[-1][:2] == ("ghost2", "undeliverable")


def test_configuration_errors_fail_visibly(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    fake.script("/cgi-bin/gettoken", {"errcode": 40013, "errmsg": "invalid corpid"})
    queue(db, "lianghong", "提醒")
    deliver_pending(db, channel, LATER)
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "40013 invalid corpid" in row["error"]


def test_thirty_messages_per_member_per_minute(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    for n in range(PER_MEMBER_PER_MINUTE + 3):
        queue(db, "lianghong", f"消息{n}")
    queue(db, "hanbing", "消息0")
    deliver_pending(db, channel, LATER)
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_MINUTE  # 消息0 to both in one call
    held = db.execute(
        "SELECT text, next_attempt_at FROM outbox WHERE status = 'queued' ORDER BY id"
    ).fetchall()
    assert held == [(f"消息{n}", "2026-03-02T08:04:00+08:00") for n in range(30, 33)]
    deliver_pending(db, channel, LATER + dt.timedelta(seconds=30))  # still inside the minute
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_MINUTE
    deliver_pending(db, channel, LATER + dt.timedelta(seconds=61))
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_MINUTE + 3
    assert {row[1] for row in outbox(db)} == {"sent"}


def test_bulk_sends_move_off_the_half_hour_mark(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    channel.spread = True
    for n in range(25):
        queue(db, f"m{n}", "早上好，请联系您的监测对象")
    queue(db, "lianghong", "单独一条")
    deliver_pending(db, channel, AT)  # 08:00:00: nothing leaves on the congested mark
    assert fake.sent(SEND) == []
    later = sorted({row[3] for row in outbox(db) if row[1] == "queued"})
    assert len(later) == 2  # one moment per text, so the same text stays one batch
    for moment in later:
        moved = dt.datetime.fromisoformat(moment)
        assert AT + dt.timedelta(minutes=1) <= moved < AT + dt.timedelta(minutes=5)
    deliver_pending(db, channel, dt.datetime.fromisoformat(later[-1]))
    assert len(fake.sent(SEND)) == 2 and {row[1] for row in outbox(db)} == {"sent"}


def test_a_text_too_long_for_a_minute_fails_visibly(
    channel: WorkChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    """More parts than WeCom takes from one person in a minute: never held forever."""
    queue(db, "liumin", "\n".join(f"第{n}行 " + "未报" * 300 for n in range(60)))
    deliver_pending(db, channel, AT)
    assert fake.sent(SEND) == []
    status, error = db.execute("SELECT status, error FROM outbox").fetchone()
    assert status == "failed" and "too long: " in error
