"""The API client against a local server: base URL, token cache shared by processes, retries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlite_utils
from pytest_httpserver import HTTPServer

from bot.channels.api import MAX_RETRIES, NETWORK, NOT_CONFIGURED, REFRESH_MARGIN, ApiClient
from bot.config import ChannelSettings
from tests.conftest import ROOT
from tests.fake_wechat import MP, WORK, FakeWeChat

SEND = "/cgi-bin/message/send"


class Clock:
    def __init__(self) -> None:
        self.now = 1_772_400_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeWeChat:
    return FakeWeChat(httpserver)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(fake: FakeWeChat, clock: Clock, settings: ChannelSettings = WORK) -> ApiClient:
    settings = ChannelSettings(**{**settings.__dict__, "api_base": fake.base})
    return ApiClient(settings, sleep=clock.sleep, clock=clock)


def test_default_hosts() -> None:
    assert ApiClient(WORK).base == "https://qyapi.weixin.qq.com"
    assert ApiClient(MP).base == "https://api.weixin.qq.com"


def test_every_call_goes_to_the_base_token_included(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    result = client(fake, clock).post(db, SEND, {"touser": "a", "text": {"content": "张三"}})
    assert result.ok and result.attempts == 1
    gettoken, send = fake.calls
    assert gettoken.path == "/cgi-bin/gettoken"
    assert gettoken.args == {"corpid": WORK.corp_id, "corpsecret": "work-secret"}
    assert send.args == {"access_token": "TOKEN-1"}
    assert send.body["text"]["content"] == "张三"


def test_mp_token_shape(fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database) -> None:
    assert client(fake, clock, MP).token(db) == "TOKEN-1"
    assert fake.calls[0].path == "/cgi-bin/token"
    assert fake.calls[0].args == {
        "grant_type": "client_credential",
        "appid": MP.app_id,
        "secret": "mp-secret",
    }


def test_token_is_cached_in_sqlite_and_refreshed_before_expiry(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    api = client(fake, clock)
    assert api.token(db) == api.token(db) == "TOKEN-1"
    assert db.execute("SELECT name, value, expires_at FROM tokens").fetchall() == [
        (f"work:{WORK.corp_id}:1000002", "TOKEN-1", clock.now + 7200)
    ]
    clock.now += 7200 - REFRESH_MARGIN - 1
    assert api.token(db) == "TOKEN-1"
    clock.now += 2
    assert api.token(db) == "TOKEN-2"
    assert len(fake.issued) == 2


def test_another_client_reads_the_same_token(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database, db_path: Path
) -> None:
    from storage.db import connect

    client(fake, clock).token(db)
    other = connect(db_path)
    try:
        assert client(fake, clock).token(other) == "TOKEN-1"
    finally:
        other.close()
    assert len(fake.issued) == 1


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_token_errors_refetch_once(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database, errcode: int
) -> None:
    fake.script(SEND, {"errcode": errcode, "errmsg": "invalid credential"})
    result = client(fake, clock).post(db, SEND, {})
    assert result.ok and result.attempts == 2
    assert result.failures == (f"{errcode} invalid credential",)
    assert fake.issued == ["TOKEN-1", "TOKEN-2"]
    assert fake.calls[-1].args == {"access_token": "TOKEN-2"}


def test_a_second_token_error_is_final(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, *[{"errcode": 40014, "errmsg": "invalid access_token"}] * 2)
    result = client(fake, clock).post(db, SEND, {})
    assert (result.ok, result.errcode, result.attempts) == (False, 40014, 2)


def test_busy_is_retried_with_backoff(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, *[{"errcode": -1, "errmsg": "system busy"}] * 2)
    result = client(fake, clock).post(db, SEND, {})
    assert result.ok and result.attempts == 3
    assert clock.slept == [1.0, 2.0]


def test_busy_at_most_three_retries(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, *[{"errcode": -1, "errmsg": "system busy"}] * 10)
    result = client(fake, clock).post(db, SEND, {})
    assert (result.ok, result.errcode, result.attempts) == (False, -1, 1 + MAX_RETRIES)
    assert clock.slept == [1.0, 2.0, 4.0]
    assert len(fake.sent(SEND)) == 1 + MAX_RETRIES


def test_rate_limit_is_not_retried_in_the_call(
    fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database
) -> None:
    fake.script(SEND, {"errcode": 45009, "errmsg": "api freq out of limit"})
    result = client(fake, clock).post(db, SEND, {})
    assert (result.errcode, result.attempts, clock.slept) == (45009, 1, [])


def test_token_fetch_errors(fake: FakeWeChat, clock: Clock, db: sqlite_utils.Database) -> None:
    fake.script("/cgi-bin/gettoken", {"errcode": 40013, "errmsg": "invalid corpid"})
    result = client(fake, clock).post(db, SEND, {})
    assert (result.errcode, result.errmsg) == (40013, "invalid corpid")
    assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0
    no_secret = ChannelSettings(**{**WORK.__dict__, "secret": "", "api_base": fake.base})
    result = ApiClient(no_secret, sleep=clock.sleep, clock=clock).post(db, SEND, {})
    assert result.errcode == NOT_CONFIGURED and "WECHAT_SECRET" in result.errmsg


def test_unreachable_host_is_a_network_error(clock: Clock, db: sqlite_utils.Database) -> None:
    settings = ChannelSettings(**{**WORK.__dict__, "api_base": "http://127.0.0.1:9"})
    result = ApiClient(settings, sleep=clock.sleep, clock=clock, timeout=2).post(db, SEND, {})
    assert result.errcode == NETWORK and result.attempts == 1 + MAX_RETRIES


@pytest.mark.parametrize("answer", [b"<html>502</html>", b"[1, 2]"])
def test_answers_that_are_not_json_objects(
    httpserver: HTTPServer, clock: Clock, db: sqlite_utils.Database, answer: bytes
) -> None:
    httpserver.expect_request("/cgi-bin/gettoken").respond_with_data(answer)
    settings = ChannelSettings(**{**WORK.__dict__, "api_base": httpserver.url_for("")})
    result = ApiClient(settings, sleep=clock.sleep, clock=clock).post(db, SEND, {})
    assert result.errcode == NETWORK


TWO_PROCESSES = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from bot.channels.api import ApiClient
    from bot.config import ChannelSettings
    from storage.db import connect

    settings = ChannelSettings(kind="work", token="t", corp_id="corp", agent_id="1",
                               secret="s", api_base={base!r})
    db = connect({db!r})
    while time.time() < {start}:
        time.sleep(0.005)
    print(ApiClient(settings).token(db))
    db.close()
    """
)


def test_two_processes_share_one_token(
    httpserver: HTTPServer, db: sqlite_utils.Database, db_path: Path
) -> None:
    import time

    fetched = []

    def gettoken(request: object) -> object:
        from werkzeug import Response

        fetched.append(1)
        time.sleep(0.3)  # a slow fetch: the other process must wait for it, not fetch too
        return Response('{"errcode":0,"access_token":"SHARED","expires_in":7200}')

    httpserver.expect_request("/cgi-bin/gettoken").respond_with_handler(gettoken)
    script = TWO_PROCESSES.format(
        root=str(ROOT), base=httpserver.url_for(""), db=str(db_path), start=time.time() + 1.5
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=30)[0].strip() for proc in procs]
    assert outputs == ["SHARED", "SHARED"]
    assert len(fetched) == 1


def test_a_slow_token_fetch_does_not_hold_up_the_database(
    httpserver: HTTPServer, db: sqlite_utils.Database, db_path: Path, clock: Clock
) -> None:
    """While one process waits on the token endpoint, messages keep being written."""
    import threading

    from storage.db import connect, transaction

    release = threading.Event()

    def gettoken(request: object) -> object:
        from werkzeug import Response

        release.wait(10)
        return Response('{"errcode":0,"access_token":"SLOW","expires_in":7200}')

    httpserver.expect_request("/cgi-bin/gettoken").respond_with_handler(gettoken)
    settings = ChannelSettings(**{**WORK.__dict__, "api_base": httpserver.url_for("")})
    fetching = threading.Thread(target=lambda: ApiClient(settings, clock=clock).token(db))
    fetching.start()
    wrote = threading.Event()

    def write() -> None:
        other = connect(db_path)
        try:
            with transaction(other):
                other.execute("INSERT INTO settings (key, value) VALUES ('probe', '1')")
            wrote.set()
        finally:
            other.close()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(5)
    written = wrote.is_set()
    release.set()
    fetching.join(10)
    writer.join(10)
    assert written, "a write waited for the token fetch"
