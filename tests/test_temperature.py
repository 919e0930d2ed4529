"""Temperatures as typed and dictated (handlers.temperature)."""

from __future__ import annotations

import pytest

from handlers.temperature import arabic_value, cn_integer, parse_temperature


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("36.5", 36.5),
        ("36.5度", 36.5),
        ("36.5°C", 36.5),
        ("T36.5", 36.5),
        ("t 36.8", 36.8),
        ("T:37.1", 37.1),
        ("36度5", 36.5),
        ("36点5", 36.5),
        ("36。5", 36.5),
        ("365", 36.5),
        ("三十六度五", 36.5),
        ("三十六点五度", 36.5),
        ("三六点五", 36.5),
        ("三十七度", 37.0),
        ("四十二度五", 42.5),
        ("体温37", 37.0),
        ("36.55", 36.55),
        ("37,8", 37.8),  # a decimal comma (NFKC makes ， one)
        ("36、5", 36.5),
        ("37..8", 37.8),
        ("36.555", None),  # a digit too many: no reading, the parser asks back
        ("3.6.5", None),
        ("1,3", None),
        ("34", 34.0),
        ("42.5", 42.5),
        ("下午3点 体温36.6", 36.6),
        ("8:30 36.4", 36.4),
        ("打了2次 36.7", 36.7),
        ("78岁", None),
        ("11点36分", None),
        ("12", None),
        ("13800000001", None),
        ("42.6", None),
        ("33.9", None),
        ("", None),
    ],
)
def test_parse_temperature(text: str, value: float | None) -> None:
    assert parse_temperature(text) == value


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((None, "63", "5", None, ""), None),  # a reading, out of range: bad
        ((None, "45", None, "度", ""), None),
        ((None, "28", None, None, "", True), None),  # after 体温: bad
        ((None, "28", None, None, ""), False),  # a bare number: not a temperature
        ((None, "3", None, None, ""), False),
        (("T", "3", None, None, ""), False),
        ((None, "37", None, None, "岁"), False),
        ((None, "375", None, None, ""), 37.5),
        ((None, "500", None, None, ""), False),
        ((None, "500", None, "度", ""), None),
        ((None, "3", "65", None, ""), None),
    ],
)
def test_arabic_value(args: tuple, expected: float | None | bool) -> None:
    assert arabic_value(*args) is expected or arabic_value(*args) == expected


@pytest.mark.parametrize(
    ("text", "value"), [("三十六", 36), ("三六", 36), ("四十", 40), ("二十", 20), ("四十二", 42)]
)
def test_cn_integer(text: str, value: int) -> None:
    assert cn_integer(text) == value
