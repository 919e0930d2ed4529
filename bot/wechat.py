"""The /wechat callback (mp and work): verify → parse → the pipeline → the passive reply."""

from __future__ import annotations

import logging
import threading

from flask import Blueprint, Response, abort, current_app, request

from bot.clock import now as clock_now
from bot.config import ChannelSettings, Config
from bot.wechat_crypto import open_envelope, seal, verify_url
from bot.wechat_reply import HandlingFailed, ReplyRunner
from bot.wechat_xml import MAX_BODY, Rejected, decode_body, parse, render_reply

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)
REPLY_BUDGET = 3.5  # seconds of WeChat's 5 spent waiting for the reply; the rest is network
_runner_lock = threading.Lock()


@bp.get("/wechat")
def verify() -> Response:
    try:
        echo = verify_url(_settings(), request.args)
    except Rejected as refused:
        return _refuse(refused)
    return Response(echo, mimetype="text/plain")


@bp.post("/wechat")
def receive() -> Response:
    config: Config = current_app.config["GRIDWATCH"]
    settings = _settings()
    received_at = clock_now(config.tz)
    try:
        envelope = open_envelope(settings, request.args, decode_body(_read_body()))
        parsed = parse(settings.kind, envelope.xml, config.tz, received_at)
    except Rejected as refused:
        return _refuse(refused)
    if parsed.incoming is None:
        return _success()
    try:
        reply = _runner().answer(parsed.incoming)
    except HandlingFailed:
        return Response("busy, try again", status=503, mimetype="text/plain")
    if not reply:  # nothing to say, or it comes later through the API
        return _success()
    xml = render_reply(settings.kind, parsed.message, reply, received_at.timestamp())
    if envelope.encrypted:
        xml = seal(settings, xml, int(received_at.timestamp()))
    return Response(xml, mimetype="application/xml")


def _settings() -> ChannelSettings:
    settings: ChannelSettings = current_app.config["GRIDWATCH"].channel
    if settings.kind not in ("mp", "work"):
        abort(404)
    return settings


def _read_body() -> bytes:
    if (request.content_length or 0) > MAX_BODY:
        raise Rejected(413, f"body over {MAX_BODY} bytes")
    return request.stream.read(MAX_BODY + 1)


def _runner() -> ReplyRunner:
    with _runner_lock:
        runner = current_app.extensions.get("gridwatch_wechat")
        if runner is None:
            runner = ReplyRunner(
                current_app.config["DB_PATH"],
                current_app.config["GRIDWATCH"],
                float(current_app.config.get("WECHAT_REPLY_BUDGET", REPLY_BUDGET)),
                current_app.extensions.get("gridwatch_pool"),
                # as many as the server's request threads: each keeps a warm connection
                workers=int(current_app.config.get("WECHAT_REPLY_WORKERS", 8)),
            )
            current_app.extensions["gridwatch_wechat"] = runner
        return runner


def _success() -> Response:
    return Response("success", mimetype="text/plain")


def _refuse(refused: Rejected) -> Response:
    log.warning("wechat callback refused (%s): %s", refused.status, refused)
    return Response(str(refused), status=refused.status, mimetype="text/plain")
