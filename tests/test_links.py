"""Signed, expiring links to the secretary's view (DESIGN §7, §8): the deployment's own key,
scoped to a unit and a date, refused when expired, tampered with or issued in the future."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from click.testing import Result
from itsdangerous import URLSafeTimedSerializer

from bot.config import OLD_DEFAULT_KEY, Config
from bot.links import (
    CLOCK_SKEW,
    SALT,
    LinkError,
    NoKey,
    forget_stored_key,
    link_key,
    read_view_token,
    view_link,
    view_token,
)
from storage.db import connect, open_db
from storage.secret_key import stored_secret_key

NOW = dt.datetime(2026, 3, 2, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # the digest's time
DAY = NOW.date()
KEY = "this-deployments-own-key-0123456789"
DAYS = 7


def read(token: str, now: dt.datetime = NOW, key: str = KEY, days: int = DAYS) -> tuple:
    return read_view_token(key, token, now, days)


def test_round_trip_gives_the_unit_and_the_day() -> None:
    assert read(view_token(KEY, "HX", DAY, NOW)) == ("HX", DAY)


def test_link_is_absolute_under_the_public_url(db: sqlite_utils.Database) -> None:
    config = Config(public_url="https://gw.example.cn")
    link = view_link(db, config, "HX", DAY, NOW)
    prefix = "https://gw.example.cn/view/"
    assert link.startswith(prefix)
    assert read(link.removeprefix(prefix), key=stored_secret_key(db)) == ("HX", DAY)


def test_token_is_url_safe() -> None:
    token = view_token(KEY, "河西村", DAY, NOW)
    assert token.isascii()
    assert not set(token) & set("/?#&+= ")
    assert read(token) == ("河西村", DAY)


def flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


TAMPERED = [
    ("payload-changed", lambda t: flip(t, 1)),
    ("signature-changed", lambda t: flip(t, len(t) - 5)),
    ("truncated", lambda t: t[:-3]),
    ("extended", lambda t: t + "x"),
    ("signature-removed", lambda t: t.rsplit(".", 1)[0]),
    ("empty", lambda t: ""),
    ("garbage", lambda t: "not-a-token"),
]


@pytest.mark.parametrize("tamper", [c[1] for c in TAMPERED], ids=[c[0] for c in TAMPERED])
def test_a_tampered_token_is_refused(tamper: Callable[[str], str]) -> None:
    token = view_token(KEY, "HX", DAY, NOW)
    with pytest.raises(LinkError, match="链接无效"):
        read(tamper(token))


FORGING_KEYS = [
    ("the-old-built-in-key", OLD_DEFAULT_KEY),
    ("another-deployments-key", "another-deployments-own-key-012345"),
    ("a-key-one-character-off", KEY[:-1] + "X"),
    ("a-prefix-of-the-key", KEY[:16]),
]


@pytest.mark.parametrize("forger", [k for _, k in FORGING_KEYS], ids=[n for n, _ in FORGING_KEYS])
def test_a_link_signed_with_any_other_key_is_refused(forger: str) -> None:
    # a county-wide grant, issued just now, as an attacker would make it
    forged = view_token(forger, "COUNTY", DAY, NOW)
    with pytest.raises(LinkError, match="链接无效"):
        read(forged)


def test_no_key_signs_or_reads_anything() -> None:
    with pytest.raises(NoKey):
        view_token("", "HX", DAY, NOW)
    with pytest.raises(NoKey):
        read(view_token(KEY, "HX", DAY, NOW), key="")


def test_a_signed_token_without_the_fields_is_refused() -> None:
    token = URLSafeTimedSerializer(KEY, salt=SALT).dumps({"u": "HX"})
    with pytest.raises(LinkError, match="链接无效"):
        read(token)


@pytest.mark.parametrize(
    ("issued_after_now", "valid"),
    [
        (dt.timedelta(0), True),
        (dt.timedelta(seconds=30), True),  # another process's clock runs a little ahead
        (dt.timedelta(seconds=CLOCK_SKEW), True),
        (dt.timedelta(seconds=CLOCK_SKEW + 1), False),
        (dt.timedelta(hours=1), False),
        (dt.timedelta(days=365 * 50), False),  # "never expires"
    ],
    ids=str,
)
def test_a_link_issued_in_the_future_is_refused(
    issued_after_now: dt.timedelta, valid: bool
) -> None:
    token = view_token(KEY, "HX", DAY, NOW + issued_after_now)
    if valid:
        assert read(token) == ("HX", DAY)
    else:
        with pytest.raises(LinkError, match="签发时间晚于当前时间"):
            read(token)


@pytest.mark.parametrize(
    ("link_days", "age", "valid"),
    [
        (7, dt.timedelta(0), True),
        (7, dt.timedelta(days=6, hours=23), True),
        (7, dt.timedelta(days=7), True),
        (7, dt.timedelta(days=7, seconds=1), False),
        (7, dt.timedelta(days=30), False),
        (1, dt.timedelta(hours=23), True),
        (1, dt.timedelta(days=1, minutes=1), False),
        (30, dt.timedelta(days=29), True),
    ],
    ids=lambda v: str(v) if not isinstance(v, bool) else ("valid" if v else "expired"),
)
def test_expiry_follows_config_link_days(link_days: int, age: dt.timedelta, valid: bool) -> None:
    token = view_token(KEY, "HX", DAY, NOW)
    if valid:
        assert read(token, NOW + age, days=link_days) == ("HX", DAY)
    else:
        with pytest.raises(LinkError, match=f"已过期（有效期 {link_days} 天）"):
            read(token, NOW + age, days=link_days)


def test_expiry_counts_from_issue_not_from_the_view_date() -> None:
    # a link to an old day's view, issued today, is valid today
    token = view_token(KEY, "HX", dt.date(2026, 1, 1), NOW)
    assert read(token, NOW + dt.timedelta(days=1)) == ("HX", dt.date(2026, 1, 1))


def test_expiry_compares_instants_not_wall_clocks() -> None:
    token = view_token(KEY, "HX", DAY, NOW)
    same_instant_in_utc = (NOW + dt.timedelta(days=7)).astimezone(dt.UTC)
    assert read(token, same_instant_in_utc) == ("HX", DAY)


def test_tokens_of_other_units_and_days_are_not_confusable() -> None:
    grants = [("HX", DAY), ("HX01", DAY), ("HX", DAY + dt.timedelta(days=1)), ("CG", DAY)]
    tokens = [view_token(KEY, unit, day, NOW) for unit, day in grants]
    assert len(set(tokens)) == len(tokens)
    assert [read(t) for t in tokens] == grants


def test_one_units_payload_with_anothers_signature_is_refused() -> None:
    grid = view_token(KEY, "HX01", DAY, NOW)
    village = view_token(KEY, "HX", DAY, NOW)
    payload, _, _ = grid.partition(".")
    _, _, signature_part = village.partition(".")
    with pytest.raises(LinkError, match="链接无效"):
        read(f"{payload}.{signature_part}")


# -- the deployment's key ---------------------------------------------------------------------


def stored(path: Path) -> str:
    db = connect(path)
    try:
        return stored_secret_key(db)
    finally:
        db.close()


def test_init_generates_a_key_once_and_keeps_it(
    run_cli: Callable[..., Result], db_path: Path
) -> None:
    assert run_cli("init").exit_code == 0
    first = stored(db_path)
    assert len(first) >= 40 and first != OLD_DEFAULT_KEY
    assert run_cli("init").exit_code == 0
    assert stored(db_path) == first


def test_every_database_gets_its_own_key(make_db: Callable[[str], sqlite_utils.Database]) -> None:
    keys = {stored_secret_key(make_db(f"county-{n}.db")) for n in range(3)}
    assert len(keys) == 3 and "" not in keys


def test_a_database_from_before_the_key_gets_one_when_opened(db_path: Path) -> None:
    old = open_db(db_path)
    old.execute("DELETE FROM settings WHERE key = 'secret_key'")
    old.execute("PRAGMA user_version = 4")
    old.close()
    assert stored(db_path) == ""
    open_db(db_path).close()
    assert len(stored(db_path)) >= 40


def test_the_configured_key_wins_over_the_stored_one(db: sqlite_utils.Database) -> None:
    assert link_key(db, Config(secret_key=KEY)) == KEY
    assert link_key(db, Config()) == stored_secret_key(db) != KEY


def test_a_database_without_a_key_and_no_configured_key_signs_nothing(
    db: sqlite_utils.Database, db_path: Path
) -> None:
    db.execute("DELETE FROM settings WHERE key = 'secret_key'")
    forget_stored_key(db_path)
    with pytest.raises(NoKey, match="GRIDWATCH_SECRET_KEY"):
        view_link(db, Config(), "HX", DAY, NOW)


def test_the_stored_key_is_read_once_per_process(db: sqlite_utils.Database, db_path: Path) -> None:
    forget_stored_key(db_path)
    first = link_key(db, Config())
    db.execute("UPDATE settings SET value = 'changed-behind-its-back' WHERE key = 'secret_key'")
    assert link_key(db, Config()) == first
    forget_stored_key(db_path)
    assert link_key(db, Config()) == "changed-behind-its-back"


def digest_link(db_path: Path, **env: str) -> str:
    """`gridwatch digest --unit HX` in a process of its own; the link it prints."""
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli.main import cli; cli()", "digest", "--unit", "HX"]
        + ["--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    )
    link = result.stdout.strip().splitlines()[-1].removeprefix("查看详情：")
    assert link.startswith("http://127.0.0.1:5000/view/"), result.stdout
    return link.removeprefix("http://127.0.0.1:5000/view/")


@pytest.mark.usefixtures("loaded_db")
def test_two_processes_on_one_database_sign_links_each_other_reads(db_path: Path) -> None:
    first, second = digest_link(db_path), digest_link(db_path)
    key = stored(db_path)
    now = dt.datetime.now(dt.UTC)
    assert (
        read(first, now, key) == read(second, now, key) == ("HX", now.astimezone(NOW.tzinfo).date())
    )


@pytest.mark.usefixtures("loaded_db")
def test_the_environment_key_signs_when_set(db_path: Path) -> None:
    token = digest_link(db_path, GRIDWATCH_SECRET_KEY=KEY)
    now = dt.datetime.now(dt.UTC)
    assert read(token, now, KEY)[0] == "HX"
    with pytest.raises(LinkError, match="链接无效"):
        read(token, now, stored(db_path))
