"""Dates read one way: 3月2日 in chat and on pages, ISO in files and JSON (handlers/dates.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from handlers.dates import day_label, time_label
from tests.conftest import TZ

AT = dt.datetime(2026, 3, 2, 10, 40, tzinfo=TZ)
MEMBER, SECRETARY = "lianghong", "chenzhigang"
# 2026-03-02, 03-02, 3/2: any date that is not 3月2日
OTHER_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|(?<![\d:])\d{1,2}-\d{1,2}(?![\d:])|\d{1,2}/\d{1,2}")


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (dt.date(2026, 3, 2), "3月2日"),
        (dt.date(2026, 12, 31), "12月31日"),
        ("2026-03-02", "3月2日"),
        ("2026-10-09T08:30:00+08:00", "10月9日"),
    ],
)
def test_day_label(value: dt.date | str, label: str) -> None:
    assert day_label(value) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (dt.datetime(2026, 3, 2, 8, 5, tzinfo=TZ), "3月2日 08:05"),
        ("2026-03-02T19:30:00+08:00", "3月2日 19:30"),
        ("2026-11-20T00:00", "11月20日 00:00"),
    ],
)
def test_time_label(value: dt.datetime | str, label: str) -> None:
    assert time_label(value) == label


CHAT = [
    # sender, text, a date as it must read in the reply
    (MEMBER, "名单", "（至3月9日）"),  # 张三: 2月24日 + 14 days
    (SECRETARY, "查 张三", "监测期 2月24日 至 3月9日"),
    (SECRETARY, "查 王五", "3月2日早 异常 37.8℃"),
    (SECRETARY, "需求", "（3月2日 08:00登记；村级 梁红包干，3月3日 08:00前）"),
    (SECRETARY, "异常", "3月2日异常情况"),
    (SECRETARY, "未报", "3月2日未报"),
    (SECRETARY, "延长 王五 7天", "至3月18日"),
    (SECRETARY, "解除 李四", "（3月2日起不再提醒联系）"),
]


@pytest.mark.parametrize(("sender", "text", "date"), CHAT, ids=[c[1] for c in CHAT])
def test_chat_replies_write_dates_as_month_and_day(say, sender: str, text: str, date: str) -> None:
    early = AT.replace(hour=8, minute=0)
    say(MEMBER, "王五 37.8 咳嗽", at=early)
    say(MEMBER, "需求 张三 买菜", at=early)
    reply = say(sender, text)
    assert date in reply
    assert not OTHER_DATE.search(reply), reply
