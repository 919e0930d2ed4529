"""Messages stored raw whose handling never finished are handled by the minute round."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlite_utils

from bot.config import Config
from bot.context import Context
from handlers.pipeline import Incoming, store_raw
from schedules.recovery import STALE, recover_unhandled

TZ = ZoneInfo("Asia/Shanghai")
SENT = dt.datetime(2026, 3, 2, 8, 40, tzinfo=TZ)


def stored_only(db: sqlite_utils.Database, text: str, msg_id: int) -> int:
    """What a worker killed between storing and handling a message leaves behind."""
    message = Incoming(
        channel="work",
        sender="lianghong",
        text=text,
        at=SENT,
        received_at=SENT,
        dedup_key=f"work:msg:{msg_id}",
    )
    return store_raw(Context(db, Config()), message)


def outcome(db: sqlite_utils.Database, inbox_id: int) -> str:
    return db.execute("SELECT outcome FROM inbox WHERE id = ?", [inbox_id]).fetchone()[0]


def test_a_message_stored_and_never_handled_is_handled_as_of_when_it_was_sent(
    loaded_db: sqlite_utils.Database,
) -> None:
    inbox_id = stored_only(loaded_db, "张三 38.2 咳嗽", 1)
    assert outcome(loaded_db, inbox_id) == "received"
    assert recover_unhandled(loaded_db, Config(), SENT + STALE) == 1
    assert outcome(loaded_db, inbox_id) == "ok"
    contact = loaded_db.execute(
        "SELECT date, slot, temperature, status FROM contacts WHERE inbox_id = ?", [inbox_id]
    ).fetchall()
    assert contact == [("2026-03-02", "morning", 38.2, "abnormal")]
    kinds = loaded_db.execute(
        "SELECT kind, status FROM outbox WHERE inbox_id = ? ORDER BY id", [inbox_id]
    ).fetchall()
    # the member never got a passive reply: it goes through the API, with the alerts
    assert ("reply", "queued") in kinds and ("abnormal_alert", "queued") in kinds


def test_a_message_is_left_to_its_worker_until_it_is_stale_and_recovered_once(
    loaded_db: sqlite_utils.Database,
) -> None:
    inbox_id = stored_only(loaded_db, "张三 36.5", 2)
    just_stored = SENT + dt.timedelta(seconds=5)
    assert recover_unhandled(loaded_db, Config(), just_stored) == 0  # its worker is on it
    assert outcome(loaded_db, inbox_id) == "received"
    assert recover_unhandled(loaded_db, Config(), SENT + STALE) == 1
    assert recover_unhandled(loaded_db, Config(), SENT + 2 * STALE) == 0
    replies = loaded_db.execute(
        "SELECT count(*) FROM outbox WHERE inbox_id = ? AND kind = 'reply'", [inbox_id]
    ).fetchone()[0]
    assert replies == 1


def test_wechats_retry_of_a_message_never_handled_handles_it_once(
    loaded_db: sqlite_utils.Database,
) -> None:
    """The worker died between storing and handling; WeChat sends the message again (same
    MsgId): the retry handles it and answers, and a third copy changes nothing."""
    from handlers.pipeline import handle_message

    inbox_id = stored_only(loaded_db, "张三 36.5", 3)
    again = Incoming(
        channel="work", sender="lianghong", text="张三 36.5", at=SENT,
        received_at=SENT + dt.timedelta(seconds=6), dedup_key="work:msg:3",
    )  # fmt: skip
    first = handle_message(Context(loaded_db, Config()), again)
    assert (first.inbox_id, first.outcome) == (inbox_id, "ok") and "已记录" in first.reply
    third = handle_message(Context(loaded_db, Config()), again)
    assert third.duplicate and third.reply == first.reply
    assert outcome(loaded_db, inbox_id) == "ok"
    assert recover_unhandled(loaded_db, Config(), SENT + STALE) == 0
