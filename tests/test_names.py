"""Name matching: exact, homophone, close, courtesy (handlers.names)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypinyin import lazy_pinyin

from handlers.names import (
    NameIndex,
    Resolution,
    fold,
    looks_like_name,
    name_index,
    surname_of,
    syllables,
)

NAMES = ("张三", "李四", "王五", "欧阳娜娜", "刘建国")


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("章三", "张三"),  # same pinyin
        ("李思", "李四"),
        ("张山", "张三"),  # zh/z sh/s
        ("牛建国", "刘建国"),  # n/l
        ("刘建锅", "刘建国"),
        ("老王", "王五"),  # courtesy
        ("小张", "张三"),
        ("王奶奶", "王五"),
        ("李叔", "李四"),
        ("欧阳阿姨", "欧阳娜娜"),
        ("小欧阳", "欧阳娜娜"),
        ("张老师", "张三"),  # 老师 and the like, as courtesy
        ("刘医生", "刘建国"),
        ("建国", "刘建国"),  # a given name of two characters, alone
        ("娜娜", "欧阳娜娜"),
    ],
)
def test_resolves(typed: str, name: str) -> None:
    assert name_index(NAMES).resolve(typed) == Resolution(name, True)


@pytest.mark.parametrize("typed", ["赵六", "老赵", "今天", "张", "王五一", "黄武", "张丹"])
def test_does_not_resolve(typed: str) -> None:
    assert name_index(NAMES).resolve(typed) is None


def test_a_given_name_shared_or_too_short_is_not_guessed() -> None:
    index = NameIndex(("张建军", "李建军", "王伟"), ())
    assert index.resolve("建军") == Resolution(None, True, ("张建军", "李建军"))
    assert index.resolve("伟") is None  # one character: far too common to stand for 王伟


def test_same_sound_is_ambiguous() -> None:
    index = name_index(("张伟", "章伟"))
    assert index.resolve("彰伟") == Resolution(None, True, ("张伟", "章伟"))


def test_courtesy_with_two_of_a_surname_is_ambiguous() -> None:
    index = name_index(("王五", "王建军", "李四"))
    assert index.resolve("老王") == Resolution(None, True, ("王五", "王建军"))


def test_others_exact_and_pinyin_but_never_courtesy_or_fuzzy() -> None:
    index = name_index(("张三",), ("赵六", "孙七"))
    assert index.exact_match("赵六") == Resolution("赵六", False)
    assert index.resolve("孙琪") == Resolution("孙七", False)
    assert index.resolve("老孙") is None
    assert index.resolve("赵流") == Resolution("赵六", False)  # zhao liu: same pinyin
    assert index.resolve("赵牛") is None


def test_own_homophone_beats_exact_other() -> None:
    index = name_index(("张三",), ("章三",))
    assert index.exact_match("章三") == Resolution("张三", True)


def test_suggestions() -> None:
    index = name_index(NAMES)
    assert index.suggest("刘建") == ("刘建国",)
    assert index.suggest("赵六") == ()


def test_village_pool_is_shared_between_members() -> None:
    a = name_index(("张三", "李四"), ("王五", "赵六"))
    b = name_index(("王五",), ("赵六", "张三", "李四"))
    assert a is not b
    assert a._pool is b._pool


def test_index_is_cached_and_cleans_names() -> None:
    assert name_index(("张三", "李四")) is name_index(("张三", "李四"))
    index = name_index(("", " 张三 ", "张三"), ("张三", "赵六"))
    assert index.names == ("张三",)
    assert index.others == ("赵六",)


@pytest.mark.parametrize(
    "typed",
    ["张三", "章三", "张山", "王五", "汪五", "赵六", "照六", "老王", "李叔", "高远", "孙七"],
)
def test_an_index_from_a_village_list_resolves_as_the_cleaned_one(typed: str) -> None:
    """The message path hands over the village's sorted names (built once per village) and
    its rows' names as they are, namesakes included."""
    own, others = ("张三", "李四", "王五"), ("赵六", "高远", "孙七", "高远", "张三")
    everyone = tuple(sorted({*own, *others}))
    built = NameIndex(own, others, everyone)
    assert built.resolve(typed) == name_index(own, others).resolve(typed)
    assert built.others == ("赵六", "高远", "孙七")


@pytest.mark.parametrize(
    ("syllable", "folded"),
    [("zhang", "zan"), ("shan", "san"), ("niu", "liu"), ("fang", "han"), ("ling", "lin")],
)
def test_fold(syllable: str, folded: str) -> None:
    assert fold(syllable) == folded


def test_surname_and_name_shape() -> None:
    assert surname_of("欧阳娜娜") == "欧阳"
    assert surname_of("张三") == "张"
    assert looks_like_name("赵六") and looks_like_name("老赵") and looks_like_name("赵大爷")
    assert not looks_like_name("今天") and not looks_like_name("赵") and not looks_like_name("都好")


@pytest.mark.parametrize(
    "text",
    ["张三", "欧阳娜娜", "阿依古丽·买买提", "张三A", "Lily张", "李4", "王 五", "〇三", "䶮", ""],
)
def test_syllables_read_by_character_as_pypinyin_reads_the_whole(text: str) -> None:
    assert syllables(text) == tuple(lazy_pinyin(text))


POOL = ("张三", "张三丰", "李四", "四妹", "欧阳娜娜", "娜娜", "王五")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*POOL, "三", "，", " ", "36.5", "正常", "张", "李", "娜"])))
def test_names_are_found_where_an_alternation_of_them_finds_them(parts: list[str]) -> None:
    text = "".join(parts)
    alternation = re.compile("|".join(map(re.escape, sorted(POOL, key=len, reverse=True))))
    expected = [(m.start(), m.end()) for m in alternation.finditer(text)]
    assert list(name_index(POOL).find(text, 0, len(text))) == expected
