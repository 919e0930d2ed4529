"""Group commit (bot.wechat.group_commit): under a threaded server the messages waiting share
one transaction, and each request answers only once the commit holding its message returned."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from flask import Flask
from pytest_httpserver import HTTPServer

from tests import test_wechat_callback
from tests.fake_wechat import WORK, FakeWeChat, config_for, make_app
from tests.test_wechat_callback import (
    CREATED,
    inbox,
    inner_xml,
    open_reply,
    wecom_request,
)

busy_writer = test_wechat_callback.busy_writer  # the fixture


def grouped_app(db_path: Path, base: str = "http://127.0.0.1:9", **extra: Any) -> Flask:
    return make_app(db_path, config_for(WORK, base), WECHAT_GROUP_COMMIT=True, **extra)


def post(app: Flask, msg_id: int, text: str = "张三 36.6", sender: str = "lianghong") -> Any:
    xml = inner_xml(sender, "text", f"<Content>{text}</Content>", msg_id, CREATED)
    query, body = wecom_request(WORK, xml)
    return app.test_client().post("/wechat", query_string=query, data=body.encode())


def content(answer: Any) -> str:
    return open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")


def test_messages_waiting_for_the_lock_share_one_commit(
    loaded_db: sqlite_utils.Database, db_path: Path, busy_writer: Callable[[], None]
) -> None:
    app = grouped_app(db_path)
    post(app, 100)  # builds the runner and starts its writer
    busy_writer()  # 0.3 s: the next eight all wait for it
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: post(app, 101 + n), range(8)))
    assert all("已记录" in content(answer) for answer in answers)
    writer = app.extensions["gridwatch_wechat"].group
    # 1, then the eight waiting for the lock: in one batch here, in fewer than eight always
    assert writer.messages == 9 and writer.batches < 9
    keys = sorted(row["dedup_key"] for row in inbox(loaded_db))
    assert keys == sorted(f"work:msg:{n}" for n in range(100, 109))
    assert loaded_db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'").fetchone() == (9,)


def test_no_answer_before_the_commit_that_holds_the_message(
    loaded_db: sqlite_utils.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each item is told 'committed' only after COMMIT returned: the row is visible to
    another connection by then, and the request answers after that."""
    import bot.wechat.reply as wechat_reply

    seen: list[int] = []
    committed = wechat_reply._Job.committed

    def check(job: Any, stored: bool) -> None:
        other = sqlite3.connect(db_path)
        try:
            key = job.message.dedup_key
            seen.append(
                other.execute("SELECT COUNT(*) FROM inbox WHERE dedup_key = ?", [key]).fetchone()[0]
            )
        finally:
            other.close()
        committed(job, stored)

    monkeypatch.setattr(wechat_reply._Job, "committed", check)
    app = grouped_app(db_path)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: post(app, 200 + n), range(6)))
    assert all("已记录" in content(answer) for answer in answers)
    assert seen == [1] * 6


def test_a_retry_in_the_same_batch_is_stored_once_with_the_same_reply(
    loaded_db: sqlite_utils.Database, db_path: Path, busy_writer: Callable[[], None]
) -> None:
    app = grouped_app(db_path)
    post(app, 300)
    busy_writer()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(app, 301), range(4)))
    replies = {content(answer) for answer in answers}
    assert len(replies) == 1 and "已记录" in replies.pop()
    assert [row["dedup_key"] for row in inbox(loaded_db)].count("work:msg:301") == 1
    assert loaded_db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'reply'").fetchone() == (2,)


def test_a_message_given_up_is_never_stored(
    loaded_db: sqlite_utils.Database, db_path: Path, busy_writer: Callable[[], None]
) -> None:
    app = grouped_app(db_path, WECHAT_REPLY_BUDGET=0.01, WECHAT_STORE_BUDGET=0.05)
    busy_writer()  # 0.3 s, past the store budget
    answer = post(app, 400)
    assert answer.status_code == 503
    app.extensions["gridwatch_wechat"].drain()  # the writer got the lock and skipped it
    assert inbox(loaded_db) == [] and loaded_db["outbox"].count == 0


def test_a_late_batch_answers_success_and_the_reply_goes_through_the_api(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    httpserver: HTTPServer,
    busy_writer: Callable[[], None],
) -> None:
    fake = FakeWeChat(httpserver)
    app = grouped_app(db_path, fake.base, WECHAT_REPLY_BUDGET=0.01)
    busy_writer()
    answer = post(app, 500, "帮助")
    assert answer.get_data(as_text=True) == "success"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not fake.sent("/cgi-bin/message/send"):
        time.sleep(0.02)
    app.extensions["gridwatch_wechat"].drain()
    [sent] = fake.sent("/cgi-bin/message/send")
    assert sent["touser"] == "lianghong" and "上报请这样写" in sent["text"]["content"]
    assert loaded_db.execute("SELECT kind, status FROM outbox").fetchall() == [("reply", "sent")]


def test_a_message_that_breaks_its_batch_is_handled_alone_and_the_others_commit(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    busy_writer: Callable[[], None],
) -> None:
    """SQLite refuses one message's writes (its savepoint is undone): the batch commits the
    others, and that one is handled on its own path, which keeps at least its raw message."""
    import bot.wechat.reply as wechat_reply

    write = wechat_reply.write_prepared

    def refuse_one(ctx: Any, message: Any, *args: Any) -> Any:
        if message.dedup_key == "work:msg:603":
            raise sqlite3.OperationalError("disk I/O error")
        return write(ctx, message, *args)

    monkeypatch.setattr(wechat_reply, "write_prepared", refuse_one)
    app = grouped_app(db_path)
    post(app, 600)
    busy_writer()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: post(app, 601 + n), range(4)))
    assert all("已记录" in content(answer) for answer in answers)
    keys = sorted(row["dedup_key"] for row in inbox(loaded_db))
    assert keys == [f"work:msg:{n}" for n in range(600, 605)]


def test_a_batch_whose_commit_fails_stores_nothing_and_each_is_handled_alone(
    loaded_db: sqlite_utils.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.wechat.group_commit as group_commit

    failures = []
    real = group_commit.transaction

    class FailingOnce(real):  # type: ignore[misc,valid-type]
        def __exit__(self, *exc: object) -> None:
            if not failures and exc[0] is None:
                failures.append(1)
                self.conn.execute("ROLLBACK")
                self._unlock()
                raise sqlite3.OperationalError("database or disk is full")
            super().__exit__(*exc)

    monkeypatch.setattr(group_commit, "transaction", FailingOnce)
    app = grouped_app(db_path)
    answer = post(app, 700)
    assert "已记录" in content(answer) and failures == [1]
    assert [row["dedup_key"] for row in inbox(loaded_db)] == ["work:msg:700"]
    assert app.extensions["gridwatch_wechat"].group.messages == 0


def test_a_sync_worker_commits_alone(loaded_db: sqlite_utils.Database, db_path: Path) -> None:
    """Flask's test client is not multithreaded: without the setting, no writer thread."""
    app = make_app(db_path, config_for(WORK, "http://127.0.0.1:9"))
    post(app, 800)
    assert app.extensions["gridwatch_wechat"].group is None
    assert threading.active_count() >= 1
