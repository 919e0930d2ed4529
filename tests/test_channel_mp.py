"""The mp channel: template messages where configured, else customer-service messages inside
the 48-hour / 5-message window, and 'undeliverable' for what cannot go."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlite_utils
from pytest_httpserver import HTTPServer

from bot.channels import channel_for, deliver_pending
from bot.channels.api import ApiClient
from bot.channels.mp import MpChannel, record_inbound, window_room
from storage.outbox import queue_message
from tests.conftest import TZ
from tests.fake_wechat import MP, FakeWeChat, config_for

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=TZ)


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeWeChat:
    return FakeWeChat(httpserver)


@pytest.fixture
def channel(fake: FakeWeChat) -> MpChannel:
    config = config_for(MP, fake.base, templates={"digest": "TPL-DIGEST"})
    return MpChannel(config, ApiClient(config.channel, sleep=lambda _s: None))


def queue(db: sqlite_utils.Database, recipient: str, text: str, kind: str = "prompt") -> int:
    person = {"wechat_id": recipient, "name": recipient}
    return queue_message(db, at=NOW, person=person, kind=kind, text=text)


def statuses(db: sqlite_utils.Database) -> list[tuple]:
    return db.execute("SELECT recipient, kind, status FROM outbox ORDER BY id").fetchall()


def test_channel_for_mp() -> None:
    assert isinstance(channel_for(config_for(MP)), MpChannel)


def test_template_where_configured(
    channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    queue(db, "oOPENID", "河西村 3月2日 第1次汇总", kind="digest")
    deliver_pending(db, channel, NOW)
    assert fake.sent(TEMPLATE) == [
        {
            "touser": "oOPENID",
            "template_id": "TPL-DIGEST",
            # a row without a card (not from a job): its kind and first line, no link
            "data": {
                "thing1": {"value": "监测汇总"},
                "time2": {"value": "3月2日 12:00"},
                "thing3": {"value": "河西村 3月2日 第1次汇总"},
            },
        }
    ]
    assert statuses(db) == [("oOPENID", "digest", "sent")]


def test_customer_service_inside_the_window(
    channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    record_inbound(db, "oOPENID", NOW - dt.timedelta(hours=47))
    queue(db, "oOPENID", "请联系：张三")
    deliver_pending(db, channel, NOW)
    assert fake.sent(CUSTOM) == [
        {"touser": "oOPENID", "msgtype": "text", "text": {"content": "请联系：张三"}}
    ]
    assert statuses(db) == [("oOPENID", "prompt", "sent")]
    assert window_room(db, "oOPENID", NOW) == 4


def test_outside_the_window_is_undeliverable(
    channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    record_inbound(db, "old", NOW - dt.timedelta(hours=48))
    queue(db, "old", "请联系：张三")
    queue(db, "never", "请联系：李四")
    queue(db, "", "请联系：王五")
    deliver_pending(db, channel, NOW)
    assert fake.calls == []
    assert [row[2] for row in statuses(db)] == ["undeliverable"] * 3
    error = db.execute("SELECT error FROM outbox WHERE recipient = 'old'").fetchone()[0]
    assert "48 h" in error


def test_five_messages_per_window(
    channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database
) -> None:
    record_inbound(db, "oOPENID", NOW - dt.timedelta(hours=1))
    for n in range(6):
        queue(db, "oOPENID", f"消息{n}")
    deliver_pending(db, channel, NOW)
    assert len(fake.sent(CUSTOM)) == 5
    assert [row[2] for row in statuses(db)] == ["sent"] * 5 + ["undeliverable"]
    record_inbound(db, "oOPENID", NOW)  # the user writes again: a new window
    assert window_room(db, "oOPENID", NOW) == 5
    record_inbound(db, "oOPENID", NOW - dt.timedelta(minutes=5))  # a replay: no reset
    assert window_room(db, "oOPENID", NOW) == 5


@pytest.mark.parametrize("errcode", [45015, 45047, 43004, 40003])
def test_wechat_says_undeliverable(
    channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database, errcode: int
) -> None:
    record_inbound(db, "oOPENID", NOW - dt.timedelta(hours=1))
    fake.script(CUSTOM, {"errcode": errcode, "errmsg": "refused"})
    queue(db, "oOPENID", "请联系：张三")
    deliver_pending(db, channel, NOW)
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"]) == ("undeliverable", 1)
    assert f"{errcode} refused" in row["error"]


def test_busy_then_sent(channel: MpChannel, fake: FakeWeChat, db: sqlite_utils.Database) -> None:
    record_inbound(db, "oOPENID", NOW - dt.timedelta(hours=1))
    fake.script(CUSTOM, {"errcode": -1, "errmsg": "system busy"})
    queue(db, "oOPENID", "请联系：张三")
    deliver_pending(db, channel, NOW)
    row = next(db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"]) == ("sent", 2)
