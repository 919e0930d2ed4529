"""Signed, expiring links to the secretary's view of one unit on one date."""

from __future__ import annotations

import datetime as dt

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.config import Config

SALT = "gridwatch-secretary-view"


class LinkError(Exception):
    "The link is tampered with, malformed or expired; the message says which, in Chinese."


def _serializer(config: Config) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config.secret_key, salt=SALT)


def view_token(config: Config, unit: str, day: dt.date, issued: dt.datetime) -> str:
    """A token for (unit, day); it carries its issue time so expiry needs no clock here."""
    return _serializer(config).dumps(
        {"u": unit, "d": day.isoformat(), "i": int(issued.timestamp())}
    )


def view_link(config: Config, unit: str, day: dt.date, issued: dt.datetime) -> str:
    return f"{config.public_url}/view/{view_token(config, unit, day, issued)}"


def read_view_token(config: Config, token: str, now: dt.datetime) -> tuple[str, dt.date]:
    """The (unit, day) a token grants, checked against `now` and config.link_days."""
    try:
        data = _serializer(config).loads(token)
    except SignatureExpired:  # pragma: no cover - no max_age is passed; expiry is ours
        raise LinkError("链接已过期，请在最新的汇总消息中重新打开") from None
    except BadSignature:
        raise LinkError("链接无效（可能被改动或不完整），请从汇总消息中重新打开") from None
    try:
        unit, day, issued = str(data["u"]), dt.date.fromisoformat(data["d"]), int(data["i"])
    except (KeyError, TypeError, ValueError):
        raise LinkError("链接无效，请从汇总消息中重新打开") from None
    if now.timestamp() - issued > config.link_days * 86400:
        raise LinkError(f"链接已过期（有效期 {config.link_days} 天），请在最新的汇总消息中重新打开")
    return unit, day
