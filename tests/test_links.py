"""Signed, expiring links to the secretary's view (DESIGN §8)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from itsdangerous import URLSafeTimedSerializer

from bot.config import Config
from bot.links import SALT, LinkError, read_view_token, view_link, view_token

NOW = dt.datetime(2026, 3, 2, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # the digest's time
DAY = NOW.date()


def test_round_trip_gives_the_unit_and_the_day(config: Config) -> None:
    token = view_token(config, "HX", DAY, NOW)
    assert read_view_token(config, token, NOW) == ("HX", DAY)


def test_link_is_absolute_under_the_public_url() -> None:
    config = Config(public_url="https://gw.example.cn")
    link = view_link(config, "HX", DAY, NOW)
    prefix = "https://gw.example.cn/view/"
    assert link.startswith(prefix)
    assert read_view_token(config, link.removeprefix(prefix), NOW) == ("HX", DAY)


def test_token_is_url_safe(config: Config) -> None:
    token = view_token(config, "河西村", DAY, NOW)
    assert token.isascii()
    assert not set(token) & set("/?#&+= ")
    assert read_view_token(config, token, NOW) == ("河西村", DAY)


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
def test_a_tampered_token_is_refused(config: Config, tamper) -> None:
    token = view_token(config, "HX", DAY, NOW)
    with pytest.raises(LinkError, match="链接无效"):
        read_view_token(config, tamper(token), NOW)


def test_another_secret_key_does_not_verify(config: Config) -> None:
    token = view_token(dataclasses.replace(config, secret_key="other"), "HX", DAY, NOW)
    with pytest.raises(LinkError, match="链接无效"):
        read_view_token(config, token, NOW)


def test_a_signed_token_without_the_fields_is_refused(config: Config) -> None:
    token = URLSafeTimedSerializer(config.secret_key, salt=SALT).dumps({"u": "HX"})
    with pytest.raises(LinkError, match="链接无效"):
        read_view_token(config, token, NOW)


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
    config = Config(link_days=link_days)
    token = view_token(config, "HX", DAY, NOW)
    if valid:
        assert read_view_token(config, token, NOW + age) == ("HX", DAY)
    else:
        with pytest.raises(LinkError, match=f"已过期（有效期 {link_days} 天）"):
            read_view_token(config, token, NOW + age)


def test_expiry_counts_from_issue_not_from_the_view_date(config: Config) -> None:
    # a link to an old day's view, issued today, is valid today
    token = view_token(config, "HX", dt.date(2026, 1, 1), NOW)
    assert read_view_token(config, token, NOW + dt.timedelta(days=1)) == (
        "HX",
        dt.date(2026, 1, 1),
    )


def test_expiry_compares_instants_not_wall_clocks(config: Config) -> None:
    token = view_token(config, "HX", DAY, NOW)
    same_instant_in_utc = (NOW + dt.timedelta(days=7)).astimezone(dt.UTC)
    assert read_view_token(config, token, same_instant_in_utc) == ("HX", DAY)


def test_tokens_of_other_units_and_days_are_not_confusable(config: Config) -> None:
    grants = [("HX", DAY), ("HX01", DAY), ("HX", DAY + dt.timedelta(days=1)), ("CG", DAY)]
    tokens = [view_token(config, unit, day, NOW) for unit, day in grants]
    assert len(set(tokens)) == len(tokens)
    assert [read_view_token(config, t, NOW) for t in tokens] == grants


def test_one_units_payload_with_anothers_signature_is_refused(config: Config) -> None:
    grid = view_token(config, "HX01", DAY, NOW)
    village = view_token(config, "HX", DAY, NOW)
    payload, _, _ = grid.partition(".")
    _, _, signature_part = village.partition(".")
    with pytest.raises(LinkError, match="链接无效"):
        read_view_token(config, f"{payload}.{signature_part}", NOW)
