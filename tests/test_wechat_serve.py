"""End to end: a real `gridwatch serve` process, real encrypted callbacks, the real WeCom API shape.

Proves: a member's encrypted report posted three times (WeChat's retries) is stored once and
every answer decrypts to the confirmation (work and mp); and `gridwatch tick` sends the
morning prompts through the local API server, retrying -1, with every attempt in the outbox.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlite_utils
from pytest_httpserver import HTTPServer

from bot.config import ChannelSettings
from tests.conftest import ROOT
from tests.fake_wechat import MP, WORK, FakeWeChat
from tests.test_wechat_callback import inner_xml, open_reply, wecom_request

CREATED = 1772412060  # 2026-03-02 08:41 Asia/Shanghai, a morning report


def env_for(settings: ChannelSettings, api_base: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDWATCH_", "WECHAT_"))}
    env |= {
        "GRIDWATCH_CHANNEL": settings.kind,
        "WECHAT_TOKEN": settings.token,
        "WECHAT_AES_KEY": settings.aes_key,
        "WECHAT_SECRET": settings.secret,
        "PYTHONPATH": str(ROOT),
    }
    env |= {"WECHAT_CORP_ID": settings.corp_id, "WECHAT_AGENT_ID": settings.agent_id}
    if settings.kind == "mp":
        env["WECHAT_APP_ID"] = settings.app_id
    if api_base:
        env["WECHAT_API_BASE"] = api_base
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


Serve = Callable[[ChannelSettings], str]


@pytest.fixture
def serve(db_path: Path, tmp_path: Path) -> Iterator[Serve]:
    """serve(settings) starts `gridwatch serve --no-scheduler`; returns its base URL."""
    started: list[subprocess.Popen] = []

    def start(settings: ChannelSettings) -> str:
        port = free_port()
        log = open(tmp_path / f"serve-{port}.log", "w")  # noqa: SIM115 - closed below
        command = [sys.executable, "-c", "from bot.cli.main import cli; cli()", "serve"]
        command += ["--no-scheduler", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--db", str(db_path)]
        proc = subprocess.Popen(command, env=env_for(settings), stdout=log, stderr=log)
        log.close()
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                time.sleep(0.1)
        raise AssertionError((tmp_path / f"serve-{port}.log").read_text())

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def post(url: str, query: dict[str, str], body: str) -> str:
    request = urllib.request.Request(
        f"{url}/wechat?{urllib.parse.urlencode(query)}", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        return answer.read().decode()


@pytest.mark.parametrize("settings", [WORK, MP], ids=["work", "mp"])
def test_encrypted_report_posted_three_times_is_recorded_once(
    serve: Serve, loaded_db: sqlite_utils.Database, settings: ChannelSettings
) -> None:
    url = serve(settings)
    xml = inner_xml(
        "lianghong", "text", "<Content><![CDATA[张三 36.5 正常]]></Content>", 424242, CREATED
    )
    query, body = wecom_request(settings, xml)
    replies = [open_reply(settings, post(url, query, body)) for _ in range(3)]
    contents = {reply.findtext("Content") for reply in replies}
    assert len(contents) == 1
    content = contents.pop()
    assert "已记录（3月2日早）" in content and "张三 36.5℃ 正常" in content
    assert {reply.findtext("ToUserName") for reply in replies} == {"lianghong"}
    assert loaded_db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 1
    contacts = loaded_db.execute(
        "SELECT s.name, c.date, c.slot, c.temperature, c.status FROM contacts c"
        " JOIN subjects s ON s.id = c.subject_id"
    ).fetchall()
    assert contacts == [("张三", "2026-03-02", "morning", 36.5, "normal")]
    assert loaded_db.execute("SELECT kind, status FROM outbox").fetchall() == [("reply", "sent")]


def test_scheduled_prompts_reach_the_wecom_api(
    httpserver: HTTPServer, loaded_db: sqlite_utils.Database, db_path: Path
) -> None:
    fake = FakeWeChat(httpserver)
    fake.script("/cgi-bin/message/send", {"errcode": -1, "errmsg": "system busy"})
    command = [sys.executable, "-c", "from bot.cli.main import cli; cli()", "tick"]
    command += ["--at", "2026-03-02T08:00:20", "--db", str(db_path)]
    done = subprocess.run(
        command, env=env_for(WORK, fake.base), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    sends = fake.sent("/cgi-bin/message/send")
    rows = list(loaded_db.query("SELECT * FROM outbox ORDER BY id"))
    prompts = [row for row in rows if row["kind"] == "prompt"]
    assert len(prompts) == 6 and {row["status"] for row in rows} == {"sent"}
    # one call per distinct text (the release notice goes to two people in one call), +1 retry
    assert len(sends) == len({row["text"] for row in rows}) + 1
    assert sends[0] == sends[1]  # the -1 answer, then the same call again
    first = [
        row
        for row in rows
        if row["recipient"] in sends[0]["touser"].split("|")
        and row["text"] == sends[0]["text"]["content"]
    ]
    assert {(row["attempts"], row["error"].split(" ", 1)[1]) for row in first} == {
        (2, "-1 system busy")
    }
    assert all(row["attempts"] == 1 and not row["error"] for row in rows if row not in first)
    assert all(send["agentid"] == 1000002 for send in sends)
    assert {name for send in sends for name in send["touser"].split("|")} == {
        row["recipient"] for row in rows
    }
    outbox = subprocess.run(
        [sys.executable, "-c", "from bot.cli.main import cli; cli()", "outbox", "--json"]
        + ["--db", str(db_path)],
        env=env_for(WORK, fake.base),
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = json.loads(outbox.stdout)
    assert [(row["kind"], row["status"]) for row in listed].count(("prompt", "sent")) == 6
