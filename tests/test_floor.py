"""bench/floor.py: the least callback `make bench` compares with must be a real callback, or
the figure it gives says nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask import Flask

from bench.floor import FloorCallback, floor_db_path
from bench.harness import encrypted_post, reply_content, server_env


def test_the_floor_answers_an_encrypted_callback_and_stores_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server_env(tmp_path / "bench.db").items():
        if name.startswith(("GRIDWATCH_", "WECHAT_")):
            monkeypatch.setenv(name, value)
    app = Flask(__name__)
    floor = FloorCallback(app.wsgi_app)
    app.wsgi_app = floor  # type: ignore[method-assign]
    post = encrypted_post("wx1", "张三 36.5 正常", 7_000_000_001, 1_772_416_800)
    client = app.test_client()
    for _ in range(2):  # WeChat's retry: the same answer, stored once
        answer = client.post(post.path, data=post.body.encode())
        assert reply_content(answer.get_data(as_text=True)) == "已记录：张三 36.5 正常"
    floor.local.conn.close()
    stored = sqlite3.connect(floor_db_path())
    try:
        counts = [stored.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES]
    finally:
        stored.close()
    assert counts == [1, 1, 1]


TABLES = ("inbox", "contacts", "outbox")
