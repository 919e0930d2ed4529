"""Long text is split at 2048 UTF-8 bytes, on line boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.split import LIMIT, split_text


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("", 10, [""]),
        ("短", 10, ["短"]),
        ("ab\ncd\nef", 5, ["ab\ncd", "ef"]),
        ("ab\ncd\nef", 8, ["ab\ncd\nef"]),
        ("张三\n李四", 6, ["张三", "李四"]),  # 6 bytes each: the newline does not fit
        ("abcdefgh", 3, ["abc", "def", "gh"]),  # one line too long: cut between characters
        ("张三李四", 7, ["张三", "李四"]),  # never inside a 3-byte character
        ("a\n\nb", 2, ["a\n", "b"]),
    ],
)
def test_split_table(text: str, limit: int, expected: list[str]) -> None:
    assert split_text(text, limit) == expected


def test_a_digest_of_many_lines_splits_on_lines() -> None:
    lines = [f"{i:03d} 河西村 张三 36.5℃ 正常，无发热咳嗽等症状" for i in range(120)]
    chunks = split_text("\n".join(lines))
    assert len(chunks) > 1
    assert all(size(chunk) <= LIMIT for chunk in chunks)
    assert [line for chunk in chunks for line in chunk.split("\n")] == lines


@given(st.text(alphabet=st.sampled_from("ab张\n😀 "), max_size=300), st.integers(4, 40))
def test_nothing_lost_and_nothing_too_long(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(size(chunk) <= limit for chunk in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")
    if all(size(line) <= limit for line in text.split("\n")):
        assert "\n".join(chunks) == text
