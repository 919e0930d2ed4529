"""The report vocabulary (handlers.symptoms)."""

from __future__ import annotations

import pytest

from handlers import symptoms as sy


def test_every_listed_synonym_maps_to_its_canonical_symptom() -> None:
    for canonical, synonyms in sy.SYMPTOMS.items():
        for word in synonyms:
            assert sy.WORDS[word] == (sy.SYM, canonical)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("嗓子有点疼", (sy.SYM, "咽痛")),
        ("喉咙有些痛", (sy.SYM, "咽痛")),
        ("头有点痛", (sy.SYM, "头痛")),
        ("浑身疼", (sy.SYM, "肌肉酸痛")),
        ("全身酸痛", (sy.SYM, "肌肉酸痛")),
        ("没力气", (sy.SYM, "乏力")),
        ("没味觉", (sy.SYM, "嗅味觉减退")),
        ("未联系上", (sy.UNREACH, "未联系上")),
        ("没人接", (sy.UNREACH, "没人接")),
        ("不在家", (sy.ABSENT, "不在家")),
        ("没什么不舒服", (sy.NORMAL, "没什么不舒服")),
        ("无异常", (sy.NORMAL, "无异常")),
        ("不舒服", (sy.UNWELL, "不舒服")),
        ("没有", (sy.NEG, "没有")),
        ("其他", (sy.QUANT_REST, "其他")),
        ("都", (sy.QUANT_ALL, "都")),
        ("但是", (sy.POS, "但是")),
        ("今天", (sy.FILL, "今天")),
        ("就医", (sy.NOTE, "就医")),
    ],
)
def test_word_kinds(word: str, expected: tuple[str, str]) -> None:
    assert sy.WORDS[word] == expected


def test_lengths_are_longest_first() -> None:
    for ch, lengths in sy.LENGTHS.items():
        assert list(lengths) == sorted(set(lengths), reverse=True)
        assert any(len(w) == lengths[0] and w[0] == ch for w in sy.WORDS)
