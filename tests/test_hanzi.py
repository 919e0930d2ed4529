"""Traditional characters read as simplified (handlers.hanzi), and names matched through it."""

from __future__ import annotations

import pytest

from handlers.hanzi import to_simplified
from handlers.names import NameIndex


@pytest.mark.parametrize(
    ("text", "simplified"),
    [
        ("張偉 頭痛", "张伟 头痛"),
        ("體溫36.8 無發燒 沒有咳嗽", "体温36.8 无发烧 没有咳嗽"),
        ("電話關機 聯繫不上", "电话关机 联系不上"),
        ("喉嚨痛 乾咳", "喉咙痛 干咳"),
        ("张三 36.5 正常", "张三 36.5 正常"),  # simplified text is left as it is
        ("", ""),
    ],
)
def test_to_simplified(text: str, simplified: str) -> None:
    assert to_simplified(text) == simplified


def test_the_same_length_so_offsets_hold() -> None:
    text = "陳秀英、劉建國、趙磊體溫正常" * 3
    assert len(to_simplified(text)) == len(text)


def test_a_traditional_name_typed_finds_the_roster_name() -> None:
    index = NameIndex(("张伟", "陈秀英"), ())
    text = to_simplified("陳秀英 36.5")
    found = list(index.find(text, 0, len(text)))
    assert found == [(0, 3)] and index.exact_match(text[0:3]).name == "陈秀英"


def test_a_roster_name_with_a_converted_character_still_matches() -> None:
    # 於 is also a surname: the roster keeps it, the text and the keys are read alike
    index = NameIndex(("於丽",), ())
    text = to_simplified("於丽 36.5")
    start, end = next(index.find(text, 0, len(text)))
    assert index.exact_match(text[start:end]).name == "於丽"
