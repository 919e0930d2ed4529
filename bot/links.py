"""Signed, expiring links: the secretary's view of one unit on one date, and the member's
page of one member on one date (DESIGN §8). Either may name the outbox message that carried
it, so the page can show that message whole.

Links are signed with the deployment's own key (DESIGN §7): GRIDWATCH_SECRET_KEY or
`secret_key` in the config file, else the key generated once and kept with the database.
No built-in key exists: without a key nothing is signed or read.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading

import sqlite_utils
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.config import Config
from storage.secret_key import stored_secret_key

SALT = "gridwatch-secretary-view"
MEMBER_SALT = "gridwatch-member-page"  # a view token never opens a member's page, nor back
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


@functools.lru_cache(maxsize=16)
def _serializer(key: str, salt: str = SALT) -> URLSafeTimedSerializer:
    """The serializer of (key, salt), made once (a province's prompt signs 100,000 links)."""
    if not key:
        raise NoKey("refusing to sign or read a link with an empty key")
    return URLSafeTimedSerializer(key, salt=salt)


def view_token(
    key: str,
    unit: str,
    day: dt.date,
    issued: dt.datetime,
    message: int | None = None,
    salt: str = SALT,
) -> str:
    """A token for (unit, day); it carries its issue time so expiry needs no clock here, and
    the outbox id of the message that carried it, when one did. `salt` keeps kinds of page
    apart (a week's pack link opens no day's view)."""
    data: dict[str, object] = {"u": unit, "d": day.isoformat(), "i": int(issued.timestamp())}
    if message:
        data["m"] = message
    return _serializer(key, salt).dumps(data)


def view_link(
    db: sqlite_utils.Database,
    config: Config,
    unit: str,
    day: dt.date,
    issued: dt.datetime,
    message: int | None = None,
) -> str:
    """The absolute link to (unit, day), signed with the deployment's key."""
    token = view_token(link_key(db, config), unit, day, issued, message)
    return f"{config.public_url}/view/{token}"


def _read(
    key: str, salt: str, token: str, now: dt.datetime, link_days: int, scope: str, where: str
) -> tuple[object, dt.date, int | None]:
    """(scope value, day, message id) of a token, checked against `now` and `link_days`;
    `where` names the message to open the link from again, for the person to read."""
    try:
        data = _serializer(key, salt).loads(token)
    except SignatureExpired:  # pragma: no cover - no max_age is passed; expiry is ours
        raise LinkError(f"链接已过期，请在最新的{where}中重新打开") from None
    except BadSignature:
        raise LinkError(f"链接无效（可能被改动或不完整），请从{where}中重新打开") from None
    try:
        scoped, day, issued = data[scope], dt.date.fromisoformat(data["d"]), int(data["i"])
        message = int(data["m"]) if data.get("m") is not None else None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        raise LinkError(f"链接无效，请从{where}中重新打开") from None
    age = now.timestamp() - issued
    if age < -CLOCK_SKEW:
        raise LinkError(f"链接无效（签发时间晚于当前时间），请从{where}中重新打开")
    if age > link_days * 86400:
        raise LinkError(f"链接已过期（有效期 {link_days} 天），请在最新的{where}中重新打开")
    return scoped, day, message


def read_view(
    key: str, token: str, now: dt.datetime, link_days: int, salt: str = SALT
) -> tuple[str, dt.date, int | None]:
    """The (unit, day) a view token grants, and the id of the message that carried it."""
    unit, day, message = _read(key, salt, token, now, link_days, "u", "汇总消息")
    return str(unit), day, message


def review_link(
    db: sqlite_utils.Database, config: Config, unit: str, monday: dt.date, issued: dt.datetime
) -> str:
    """The absolute link to a unit's weekly pack (每周会商): (unit, its Monday), signed apart
    from the day views' links."""
    token = view_token(link_key(db, config), unit, monday, issued, salt=REVIEW_SALT)
    return f"{config.public_url}/review/{token}"


def read_view_token(
    key: str, token: str, now: dt.datetime, link_days: int, salt: str = SALT
) -> tuple[str, dt.date]:
    """The (unit, day) a token grants, checked against `now` and `link_days`."""
    unit, day, _message = read_view(key, token, now, link_days, salt)
    return unit, day


def member_token(
    key: str, person_id: int, day: dt.date, issued: dt.datetime, message: int | None = None
) -> str:
    """A token for one member's page on one day, naming the message that carried it."""
    data: dict[str, object] = {"p": person_id, "d": day.isoformat(), "i": int(issued.timestamp())}
    if message:
        data["m"] = message
    return _serializer(key, MEMBER_SALT).dumps(data)


def member_link(
    db: sqlite_utils.Database,
    config: Config,
    person_id: int,
    day: dt.date,
    issued: dt.datetime,
    message: int | None = None,
) -> str:
    """The absolute link to a member's page of `day`, signed with the deployment's key."""
    token = member_token(link_key(db, config), person_id, day, issued, message)
    return f"{config.public_url}/me/{token}"


def read_member_token(
    key: str, token: str, now: dt.datetime, link_days: int
) -> tuple[int, dt.date, int | None]:
    """(person id, day, message id) a member token grants, checked against `now`."""
    person, day, message = _read(key, MEMBER_SALT, token, now, link_days, "p", "提醒消息")
    if isinstance(person, bool) or not isinstance(person, int):
        raise LinkError("链接无效，请从提醒消息中重新打开")
    return person, day, message
