"""A local stand-in for the WeChat / WeCom HTTP API (on pytest-httpserver), and test helpers.

It speaks the documented shapes: gettoken / token hand out access tokens; message/send,
message/custom/send and message/template/send check the token and answer errcode 0 unless
a test scripted other answers for that path.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from bot.config import ChannelSettings, Config
from bot.web.app import build_app

WORK = ChannelSettings(
    kind="work",
    token="QDG6eK",
    aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    corp_id="wx5823bf96d3bd56c7",
    agent_id="1000002",
    secret="work-secret",
)
MP = ChannelSettings(
    kind="mp",
    token="spamtest",
    aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    app_id="wx2c2769f8efd9abc2",
    secret="mp-secret",
)


def config_for(settings: ChannelSettings, api_base: str = "", **more: Any) -> Config:
    return Config(channel=ChannelSettings(**{**settings.__dict__, "api_base": api_base, **more}))


@dataclass
class Call:
    path: str
    args: dict[str, str]
    body: Any


@dataclass
class FakeWeChat:
    server: HTTPServer
    calls: list[Call] = field(default_factory=list)
    scripted: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def base(self) -> str:
        return self.server.url_for("").rstrip("/")

    def script(self, path: str, *answers: dict) -> None:
        """The next answers for `path`, in order; after them, success again."""
        self.scripted[path].extend(answers)

    def sent(self, path: str) -> list[Any]:
        return [call.body for call in self.calls if call.path == path]

    def handle(self, request: Request) -> Response:
        body = json.loads(request.get_data() or b"null")
        self.calls.append(Call(request.path, dict(request.args), body))
        if self.scripted[request.path]:
            return _json(self.scripted[request.path].pop(0))
        if request.path in ("/cgi-bin/gettoken", "/cgi-bin/token"):
            token = f"TOKEN-{len(self.issued) + 1}"
            self.issued.append(token)
            return _json({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})
        token = request.args.get("access_token", "")
        if token not in self.issued or token in self.revoked:
            return _json({"errcode": 40014, "errmsg": "invalid access_token"})
        if request.path == "/cgi-bin/message/send":
            return _json({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "m1"})
        return _json({"errcode": 0, "errmsg": "ok", "msgid": 1})


def _json(data: dict) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), content_type="application/json")


def make_app(db_path: Path, config: Config, **extra: Any) -> Flask:
    """The app in a channel's mode on db_path, without the live schedule."""
    app = build_app({"GRIDWATCH": config, "DB_PATH": str(db_path), "SCHEDULER": False, **extra})
    app.testing = True
    return app
