"""Body temperatures as members type or dictate them: 36.5, 36度5, 三十六度五, T36.5, 365."""

from __future__ import annotations

import re

MIN_TEMP = 34.0
MAX_TEMP = 42.5

_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CN = "零〇一二三四五六七八九"

# Arabic digits, as a regex source embedded in the parser's lexer (group names start with
# "t"): optional T prefix, 1–3 digit integer part, decimal by . 。 点 度 (a doubled dot,
# 37..8, is a slip), or after two digits by a comma or 、 and one digit (37,8: the decimal
# comma of European keyboards and of some voice input), optional unit. A number followed by
# a dot and more digits (36.555, 3.6.5) is no temperature here: the lexer asks it back.
# The 体温/温度 prefix is Chinese text: the lexer sees it as a word and passes `marked`.
ARABIC = (
    r"(?:(?P<tp>(?<![A-Za-z])[Tt])\s*[:=]?\s*)?"
    r"(?<![\d.])(?<!\d:)(?P<ti>\d{1,3})"
    r"(?:(?:[.。]{1,3}(?P<td>\d{1,2})|(?<=\d\d)[,、](?P<tk>\d)"
    r"|\s*[点度]\s*(?P<tdc>\d)(?![\d分]))(?!\d))?(?!\d)(?![.。]+\d)"
    r"(?:\s*(?P<tu>度|°C|°c|°|C(?![A-Za-z])|c(?![A-Za-z])))?"
)
# Chinese numerals as dictated: 三十六度五, 三十六点五, 三六点五, 三十七度.
CHINESE = re.compile(
    rf"(?P<ci>[二三四]十[{_CN}]?|[三四][{_CN}])(?:[点度](?P<cd>[{_CN}])度?|(?P<cu>度))"
)
_ARABIC = re.compile(ARABIC)

# A bare number followed by one of these counts things, it is not a temperature.
_COUNTERS = frozenset("岁次个遍分号日月年元块斤米人天时楼栋室单户点:")


def cn_integer(text: str) -> int:
    """三十六 → 36, 三六 → 36, 二十 → 20, 四十二 → 42."""
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _CN_DIGITS.get(tens, 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    value = 0
    for ch in text:
        value = value * 10 + _CN_DIGITS[ch]
    return value


def chinese_value(m: re.Match) -> float | None:
    """Value of a CHINESE match; None when out of range (a bad temperature)."""
    whole = cn_integer(m["ci"])
    decimal = m["cd"]
    value = float(f"{whole}.{_CN_DIGITS[decimal]}") if decimal else float(whole)
    return value if MIN_TEMP <= value <= MAX_TEMP else None


def arabic_value(
    prefix: str | None,
    digits: str,
    decimal: str | None,
    unit: str | None,
    next_char: str,
    marked: bool = False,
) -> float | None | bool:
    """Turn the groups of an ARABIC match into a value.

    Returns a float for a valid temperature, None for an attempt out of range (a bad
    temperature) and False when the number is not a temperature at all (a bare count, a
    time, an age). `marked`: the number follows 体温/温度.
    """
    marked = marked or decimal is not None or unit is not None or prefix is not None
    if decimal is None and unit is None and next_char in _COUNTERS:
        if not (next_char in ":点" and int(digits) > 24):  # 39:0 is no time of day
            return False
    if decimal is None and len(digits) == 3:
        # 365 is 36.5 typed without the dot.
        value = int(digits) / 10
        if MIN_TEMP <= value <= MAX_TEMP:
            return value
        # 426, 339: a reading out of range all the same, asked back
        return None if marked or 30 <= value < 46 else False
    value = float(f"{digits}.{decimal}") if decimal else float(digits)
    if MIN_TEMP <= value <= MAX_TEMP:
        return value
    if marked and (decimal is not None or len(digits) >= 2):
        return None
    return False


def parse_temperature(text: str) -> float | None:
    """The first valid temperature in `text`, else None (a helper for tests and tools)."""
    found: list[tuple[int, float]] = []
    for m in CHINESE.finditer(text):
        value = chinese_value(m)
        if value is not None:
            found.append((m.start(), value))
    for m in _ARABIC.finditer(text):
        end = m.end()
        decimal = m["td"] or m["tk"] or m["tdc"]
        value = arabic_value(m["tp"], m["ti"], decimal, m["tu"], text[end : end + 1])
        if isinstance(value, float):
            found.append((m.start(), value))
    return min(found)[1] if found else None
