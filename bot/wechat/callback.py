"""The /wechat callback (mp and work): verify → parse → the pipeline → the passive reply.

WeChat's GET (checking the URL) is a Flask route. Its POSTs, one per message a member sends,
are answered by `CallbackRoute`, a plain WSGI handler in front of the Flask app: the POST
needs none of Flask's request machinery (context, session, routing, proxies), which cost
~230 µs of a callback's ~1,000 in one process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, abort, current_app, request

from bot.clock import now as clock_now
from bot.config import ChannelSettings, Config
from bot.wechat.crypto import open_envelope, seal, verify_url
from bot.wechat.message_xml import (
    MAX_BODY,
    Rejected,
    decode_body,
    parse,
    render_button,
    render_reply,
)
from bot.wechat.reply import STORE_BUDGET, HandlingFailed, ReplyRunner
from handlers.pipeline import CARD_EVENT

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)
REPLY_BUDGET = 3.5  # seconds of WeChat's 5 spent waiting for the reply; the rest is network
PATH = "/wechat"

StartResponse = Callable[..., Any]
Answer = tuple[int, str, bytes]  # HTTP status, content type, body


@bp.route(PATH, methods=["GET", "POST"])
def verify() -> Response:
    """WeChat's check of the URL. A POST gets here only when the channel is not WeChat's
    (CallbackRoute answers the others): no such page then."""
    settings: ChannelSettings = current_app.config["GRIDWATCH"].channel
    if settings.kind not in ("mp", "work") or request.method == "POST":
        abort(404)
    try:
        echo = verify_url(settings, request.args)
    except Rejected as refused:
        _log_refusal(refused)
        return Response(str(refused), status=refused.status, mimetype="text/plain")
    return Response(echo, mimetype="text/plain")


class CallbackRoute:
    """POST /wechat, answered before the Flask app; every other request goes on to it."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.runner: ReplyRunner | None = None
        self.runner_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        config: Config = self.app.config["GRIDWATCH"]
        if config.channel.kind not in ("mp", "work"):
            return self.wsgi_app(environ, start_response)  # Flask answers 404
        try:
            status, content_type, body = self.receive(config, environ)
        except Exception:
            log.exception("wechat callback failed")
            status, content_type, body = 500, "text/plain", b"internal error"
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]

    def receive(self, config: Config, environ: dict[str, Any]) -> Answer:
        settings = config.channel
        received_at = clock_now(config.tz)
        try:
            envelope = open_envelope(settings, query_args(environ), decode_body(read_body(environ)))
            parsed = parse(settings.kind, envelope.xml, config.tz, received_at)
        except Rejected as refused:
            _log_refusal(refused)
            return refused.status, "text/plain; charset=utf-8", str(refused).encode()
        if parsed.incoming is None:
            return _SUCCESS
        runner = self.reply_runner(config, bool(environ.get("wsgi.multithread")))
        try:
            reply = runner.answer(parsed.incoming)
        except HandlingFailed:
            return 503, "text/plain; charset=utf-8", b"busy, try again"
        if parsed.incoming.type == CARD_EVENT:
            # a button's click: its answer goes through the API; the passive reply can only
            # change the card, to 已处置·张三 once its alert is handled
            name = runner.button_after(parsed.incoming) if reply is not None else None
            if not name:
                return _SUCCESS
            xml = render_button(parsed.message, name, received_at.timestamp())
        elif not reply:  # nothing to say, or it comes later through the API
            return _SUCCESS
        else:
            xml = render_reply(settings.kind, parsed.message, reply, received_at.timestamp())
        if envelope.encrypted:
            xml = seal(settings, xml, int(received_at.timestamp()))
        return 200, "application/xml; charset=utf-8", xml.encode()

    def reply_runner(self, config: Config, threaded: bool = False) -> ReplyRunner:
        """The process's runner, made with its first callback. Under a threaded server the
        request threads' messages share commits (group commit; WECHAT_GROUP_COMMIT, true or
        false, overrides): a sync worker has one request at a time, nothing to share."""
        with self.runner_lock:
            if self.runner is None:
                app_config = self.app.config
                group = app_config.get("WECHAT_GROUP_COMMIT", os.environ.get("WECHAT_GROUP_COMMIT"))
                if group is not None and not isinstance(group, bool):
                    group = str(group).strip().lower() in ("1", "true", "on", "yes")
                self.runner = ReplyRunner(
                    app_config["DB_PATH"],
                    config,
                    float(app_config.get("WECHAT_REPLY_BUDGET", REPLY_BUDGET)),
                    self.app.extensions["gridwatch_pool"],
                    # as many as the server's request threads: each keeps a warm connection
                    workers=int(app_config.get("WECHAT_REPLY_WORKERS", 8)),
                    store_budget=float(app_config.get("WECHAT_STORE_BUDGET", STORE_BUDGET)),
                    group_commit=threaded if group is None else group,
                )
                self.app.extensions["gridwatch_wechat"] = self.runner
            return self.runner


_SUCCESS: Answer = (200, "text/plain; charset=utf-8", b"success")


def query_args(environ: dict[str, Any]) -> dict[str, str]:
    args: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", "")):
        args.setdefault(name, value)  # a repeated one: the first counts, as in Flask
    return args


def read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "bad Content-Length") from None
    if length < 0:
        raise Rejected(400, "bad Content-Length")
    if length > MAX_BODY:
        raise Rejected(413, f"body over {MAX_BODY} bytes")
    stream = environ["wsgi.input"]
    if length:
        return stream.read(length)
    # no length (a chunked body): read only from a server that ends the stream itself
    return stream.read(MAX_BODY + 1) if environ.get("wsgi.input_terminated") else b""


def _log_refusal(refused: Rejected) -> None:
    log.warning("wechat callback refused (%s): %s", refused.status, refused)
