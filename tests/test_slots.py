"""Slot and monitoring date of a message (handlers.slots)."""

from __future__ import annotations

import datetime

import pytest

from handlers.slots import MARKER, explicit_date, marker_slot, slot_from_time, split_by_slot

DAY = datetime.date(2026, 3, 2)


@pytest.mark.parametrize(
    ("hour", "minute", "slot", "days_back"),
    [
        (0, 0, "evening", 1),
        (4, 59, "evening", 1),
        (5, 0, "morning", 0),
        (10, 59, "morning", 0),
        (11, 0, "noon", 0),
        (16, 59, "noon", 0),
        (17, 0, "evening", 0),
        (23, 59, "evening", 0),
    ],
)
def test_slot_from_time(hour: int, minute: int, slot: str, days_back: int) -> None:
    at = datetime.datetime.combine(DAY, datetime.time(hour, minute))
    assert slot_from_time(at) == (slot, DAY - datetime.timedelta(days=days_back))


def test_explicit_date() -> None:
    assert explicit_date(datetime.datetime(2026, 3, 2, 1, 0)) == datetime.date(2026, 3, 1)
    assert explicit_date(datetime.datetime(2026, 3, 2, 14, 0)) == DAY


@pytest.mark.parametrize(
    ("line", "slot"),
    [
        ("早：张三36.5", "morning"),
        ("早上 张三", "morning"),
        ("上午,张三", "morning"),
        ("早间张三", "morning"),
        ("补报早上 张三", "morning"),
        ("今天早上张三", "morning"),
        ("中午：", "noon"),
        ("午间 ", "noon"),
        ("下午", "noon"),
        ("补报中午的：李四", "noon"),
        ("晚上好", "evening"),
        ("晚间", "evening"),
        ("傍晚 王五", "evening"),
        ("晚：", "evening"),
        ("【早】张三", "morning"),
        ("[晚上] 张三", "evening"),
    ],
)
def test_marker(line: str, slot: str) -> None:
    m = MARKER.match(line)
    assert m is not None
    assert marker_slot(m["m"]) == slot


@pytest.mark.parametrize("line", ["张三今天早上36.5", "你好", "36.5", "", "晚点再报", "中间"])
def test_no_marker(line: str) -> None:
    assert MARKER.match(line) is None


@pytest.mark.parametrize(
    "text, parts",
    [
        ("张三 36.5，李四36.6", ["张三 36.5，李四36.6"]),
        ("早：张三 36.5\n李四 36.6", ["早：张三 36.5\n李四 36.6"]),
        ("早：张三\n早：李四 36.6", ["早：张三\n早：李四 36.6"]),
        ("早：张三36.5\n中：张三36.8", ["早：张三36.5", "中：张三36.8"]),
        ("张三 36.9\n补报早上：李四 36.6", ["张三 36.9", "补报早上：李四 36.6"]),
        (
            "晚：王五 36.7\n\n早：张三 36.5\n李四 36.6",
            ["晚：王五 36.7\n", "早：张三 36.5\n李四 36.6"],
        ),
    ],
    ids=[
        "one-line",
        "one-marker",
        "same-slot-twice",
        "two-slots",
        "unmarked-then-marked",
        "two-slots-blank-line",
    ],
)
def test_split_by_slot(text: str, parts: list[str]) -> None:
    assert split_by_slot(text) == parts
