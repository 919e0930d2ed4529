"""Signed, expiring links to the secretary's view of one unit on one date.

Links are signed with the deployment's own key (DESIGN §7): GRIDWATCH_SECRET_KEY or
`secret_key` in the config file, else the key generated once and kept with the database.
No built-in key exists: without a key nothing is signed or read.
"""

from __future__ import annotations

import datetime as dt
import os
import threading

import sqlite_utils
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.config import Config
from storage.secret_key import stored_secret_key

SALT = "gridwatch-secretary-view"
REVIEW_SALT = "gridwatch-weekly-review"  # a week's pack: its link opens no day's view
CLOCK_SKEW = 60  # seconds a link's issue time may be ahead of the reader's clock (another process)


class LinkError(Exception):
    "The link is tampered with, malformed or expired; the message says which, in Chinese."


class NoKey(Exception):
    "No key to sign or read links with: the deployment's setup is incomplete."


# database file → its stored key, read at first use: a key never changes under a running
# process (GRIDWATCH_SECRET_KEY and the config file are read at start)
_stored: dict[str, str] = {}
_stored_lock = threading.Lock()


def link_key(db: sqlite_utils.Database, config: Config) -> str:
    """The key that signs and reads this deployment's links."""
    if config.secret_key:
        return config.secret_key
    where = getattr(db, "path_key", "")
    cacheable = bool(where) and not where.startswith(":memory:")
    with _stored_lock:
        if cacheable and where in _stored:
            return _stored[where]
    key = stored_secret_key(db)
    if not key:
        raise NoKey(
            "no key to sign links with: set GRIDWATCH_SECRET_KEY, or run `gridwatch init` "
            "to generate one for the database"
        )
    if cacheable:
        with _stored_lock:
            _stored[where] = key
    return key


def forget_stored_key(path: str | os.PathLike[str]) -> None:
    """Drop the cached key of a database file that is being replaced (the demo's)."""
    with _stored_lock:
        _stored.pop(os.path.abspath(path), None)


def _serializer(key: str, salt: str = SALT) -> URLSafeTimedSerializer:
    if not key:
        raise NoKey("refusing to sign or read a link with an empty key")
    return URLSafeTimedSerializer(key, salt=salt)


def view_token(key: str, unit: str, day: dt.date, issued: dt.datetime, salt: str = SALT) -> str:
    """A token for (unit, day); it carries its issue time so expiry needs no clock here."""
    data = {"u": unit, "d": day.isoformat(), "i": int(issued.timestamp())}
    return _serializer(key, salt).dumps(data)


def view_link(
    db: sqlite_utils.Database, config: Config, unit: str, day: dt.date, issued: dt.datetime
) -> str:
    """The absolute link to (unit, day), signed with the deployment's key."""
    return f"{config.public_url}/view/{view_token(link_key(db, config), unit, day, issued)}"


def review_link(
    db: sqlite_utils.Database, config: Config, unit: str, monday: dt.date, issued: dt.datetime
) -> str:
    """The absolute link to a unit's weekly pack (每周会商): (unit, its Monday), signed apart
    from the day views' links."""
    token = view_token(link_key(db, config), unit, monday, issued, REVIEW_SALT)
    return f"{config.public_url}/review/{token}"


def read_view_token(
    key: str, token: str, now: dt.datetime, link_days: int, salt: str = SALT
) -> tuple[str, dt.date]:
    """The (unit, day) a token grants, checked against `now` and `link_days`."""
    serializer = _serializer(key, salt)
    try:
        data = serializer.loads(token)
    except SignatureExpired:  # pragma: no cover - no max_age is passed; expiry is ours
        raise LinkError("链接已过期，请在最新的汇总消息中重新打开") from None
    except BadSignature:
        raise LinkError("链接无效（可能被改动或不完整），请从汇总消息中重新打开") from None
    try:
        unit, day, issued = str(data["u"]), dt.date.fromisoformat(data["d"]), int(data["i"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise LinkError("链接无效，请从汇总消息中重新打开") from None
    age = now.timestamp() - issued
    if age < -CLOCK_SKEW:
        raise LinkError("链接无效（签发时间晚于当前时间），请从汇总消息中重新打开")
    if age > link_days * 86400:
        raise LinkError(f"链接已过期（有效期 {link_days} 天），请在最新的汇总消息中重新打开")
    return unit, day
