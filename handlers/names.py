"""Matching what a member typed to a subject's name: exact, homophone, close, courtesy.

Order (first hit wins): the member's own subjects by exact text, then by the same toneless
pinyin (IME homophones: 章三 → 张三); subjects of the village not assigned to the member
(`others`, 多对一 cover) by exact text, then by pinyin; the member's subjects by a close
pinyin match; then courtesy forms (老王, 小李, 王奶奶, 李叔, 张老师) when exactly one of the
member's subjects has that surname; finally a given name alone (建军 for 张建军, two
characters or more). Traditional characters are read as simplified (handlers.hanzi).
Two equally good candidates → ambiguous.

"Close" is measured on pinyin folded for the usual accent and IME confusions
(zh/z ch/c sh/s, n/l, f/h, ang/an eng/en ing/in): same number of characters and a
rapidfuzz ratio >= 85 on the folded strings. So 张山 (zhangshan → zangsan) is 张三,
李时 is 李四, 牛六 is 刘六, 陈秀云 is 陈秀英 (89), but 黄武 is not 王五 (73)
and 张丹 is not 张三 (83).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from handlers.hanzi import to_simplified

# A name is read character by character (a surname has its own reading), so pypinyin's
# phrase dictionary, ~40 MB in every serving process, buys nothing here.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")
os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "true")
from pypinyin import lazy_pinyin  # noqa: E402

FUZZY_MIN = 85.0
SUGGEST_MIN = 60.0

COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "慕容", "司徒", "令狐", "夏侯", "长孙",
    "宇文", "尉迟", "公孙", "端木", "独孤", "南宫", "西门", "呼延", "轩辕", "澹台", "万俟",
)  # fmt: skip
_COMPOUND_SET = frozenset(COMPOUND_SURNAMES)  # all of two characters
# Common surnames, minus characters that mostly start ordinary words (都 和 来 时 明 平 …):
# an unknown run is reported as an unknown name only when it starts with one of these.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
    "叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史"
    "陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷"
    "詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳"
    "管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏"
    "席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝"
    "官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜阚权强帅屠豆"
    "朴盖练廉禹井祖漆巴丰支卿狄计索宣晋初云容敬扈晁芮阙浦戈伏鹿薄邸雍辜羊母裘亓修邰赫杭况"
    "宿鲜印逯隆茹诸战慕危银亢嵇湛宾戎勾茅揭尉冶斯束檀衣展阴昝智幸奉植衡富尧闭"
)
_PREFIXES = "老小阿"
_SUFFIXES = (
    "大爷", "大妈", "大娘", "大叔", "大婶", "大哥", "大姐", "大伯", "奶奶", "爷爷", "阿姨",
    "叔叔", "婶婶", "婶子", "伯伯", "婆婆", "姥姥", "姥爷", "老汉", "老太", "老太太", "师傅",
    "嫂子", "叔", "婶", "伯", "姨", "哥", "姐", "嫂", "妹", "弟", "爷", "奶",
    "老师", "医生", "大夫", "同学", "老板", "书记", "主任", "村长", "组长", "队长",
)  # fmt: skip
_SURNAME_RE = "|".join(COMPOUND_SURNAMES) + "|."
COURTESY = re.compile(
    rf"(?:[{_PREFIXES}](?P<pre>{_SURNAME_RE})|(?P<post>{_SURNAME_RE})(?:{'|'.join(_SUFFIXES)}))"
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a typed name resolved to: one subject, or several equally good ones."""

    name: str | None  # the roster name, None when ambiguous
    assigned: bool
    candidates: tuple[str, ...] = ()


@lru_cache(maxsize=8192)  # what members type: the same few runs again and again
def syllables(text: str) -> tuple[str, ...]:
    """Toneless pinyin, one syllable per Chinese character."""
    return _read(text)


def _read(text: str) -> tuple[str, ...]:
    """`syllables` without its cache (a village's names are read once per process).

    Read character by character through a cache (pypinyin costs ~50 µs a call, and a
    county's 50,000 names share a few thousand characters); text with anything but Chinese
    characters goes to pypinyin whole, which keeps a run of other characters as one item.
    """
    readings = [_char_syllable(c) for c in text]
    if None in readings:
        return tuple(lazy_pinyin(text))
    return tuple(readings)  # type: ignore[arg-type]


@lru_cache(maxsize=16384)
def _char_syllable(char: str) -> str | None:
    """The reading of one Chinese character (None for anything else)."""
    reading = lazy_pinyin(char)
    return reading[0] if len(reading) == 1 and reading[0] != char else None


@lru_cache(maxsize=4096)  # a few hundred syllables exist
def fold(syllable: str) -> str:
    """Fold a syllable for common accent / IME confusions."""
    s = syllable
    if s[:2] in ("zh", "ch", "sh"):
        s = s[0] + s[2:]
    elif s[:1] == "n" and len(s) > 1:
        s = "l" + s[1:]
    elif s[:1] == "f":
        s = "h" + s[1:]
    if s[-3:] in ("ang", "eng", "ing"):
        s = s[:-1]
    return s


@lru_cache(maxsize=8192)  # the names a member reports on, message after message
def _folded(text: str) -> str:
    return "".join([fold(s) for s in syllables(text)])


def surname_of(name: str) -> str:
    """The surname: a compound one (欧阳) or the first character."""
    return name[:2] if name[:2] in _COMPOUND_SET else name[:1]


def looks_like_name(run: str) -> bool:
    """A 2–4 character run that starts like a Chinese name or a courtesy form."""
    if not 2 <= len(run) <= 4:
        return False
    if run[0] in SURNAMES or run[:2] in COMPOUND_SURNAMES:
        return True
    return COURTESY.fullmatch(run) is not None


def _clean(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in names if isinstance(n, str) and n.strip()))


class _Pool:
    """What does not depend on who is asking: every active name of a village.

    Shared by all the members of the village (their `names + others` are the same set),
    so it is built once per village and serving process: in a fraction of a millisecond
    (an alternation regex of a village's names took ~5 ms to compile).
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        # Keys are NFKC-normalised like the text; values are roster names.
        self.exact = {to_simplified(unicodedata.normalize("NFKC", n)): n for n in names}
        self.lengths = sorted({len(key) for key in self.exact}, reverse=True)
        self.firsts = frozenset(key[0] for key in self.exact)
        self.names = names
        self._by_pinyin: dict[tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def by_pinyin(self) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Names by their toneless pinyin, read when first asked: a message that names its
        subjects as written never needs it, and in a province's morning most villages'
        pools are built for one such message (their pinyin was half of its CPU)."""
        if self._by_pinyin is None:  # two threads may both read it: the same result
            by_pinyin: dict[tuple[str, ...], list[str]] = {}
            for n in dict.fromkeys(self.names):
                by_pinyin.setdefault(_read(n), []).append(n)
            # a village's pools live as long as the process (~100 keys, most one name)
            self._by_pinyin = {key: tuple(found) for key, found in by_pinyin.items()}
        return self._by_pinyin

    def find(self, text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Where names appear verbatim in text[start:end]: leftmost first, the longest name
        at each place, never overlapping (as an alternation of them, longest first)."""
        exact, firsts, lengths = self.exact, self.firsts, self.lengths
        pos = start
        while pos < end:
            if text[pos] in firsts:
                for length in lengths:
                    if pos + length <= end and text[pos : pos + length] in exact:
                        yield pos, pos + length
                        pos += length
                        break
                else:
                    pos += 1
            else:
                pos += 1


@lru_cache(maxsize=1024)
def _pool(names: tuple[str, ...]) -> _Pool:
    return _Pool(names)


class NameIndex:
    """Lookup structures for one (names, others) pair; build once, use for many messages."""

    def __init__(
        self,
        names: tuple[str, ...],
        others: tuple[str, ...],
        everyone: tuple[str, ...] | None = None,
    ) -> None:
        """`everyone`, when the caller has it, is every name of `names` and `others`, clean,
        unique and sorted (a village's, built once): then `others` is trusted as clean, and
        an index costs a few microseconds instead of cleaning a village's names each time."""
        self.names = _clean(names)
        own = frozenset(self.names)
        self._own = own
        if everyone is None:
            self._others: tuple[str, ...] | None = tuple(n for n in _clean(others) if n not in own)
            everyone = tuple(sorted(own.union(self._others)))
        else:
            self._others, self._given_others = None, others
        self._pool = _pool(everyone)
        self.find = self._pool.find
        self._folded = [(n, len(syllables(n)), _folded(n)) for n in self.names]
        self._surnames: dict[str, list[str]] = {}
        self._given: dict[str, list[str]] = {}  # 建军 for 张建军 (two characters or more)
        for n in self.names:
            surname = surname_of(n)
            self._surnames.setdefault(surname, []).append(n)
            if len(n) - len(surname) >= 2:
                self._given.setdefault(n[len(surname) :], []).append(n)
        self._cache: dict[str, Resolution | None] = {}
        self._exact_cache: dict[str, Resolution] = {}

    @property
    def others(self) -> tuple[str, ...]:
        """The names of `others` that are not the member's own, once each, in the order given."""
        if self._others is None:
            self._others = tuple(dict.fromkeys(n for n in self._given_others if n not in self._own))
        return self._others

    def exact_match(self, typed: str) -> Resolution:
        """A name found verbatim in the text (`find` only finds exact keys)."""
        found = self._exact_cache.get(typed)
        if found is None:
            found = self._exact_cache[typed] = self._exact_match(typed)
        return found

    def _exact_match(self, typed: str) -> Resolution:
        name = self._pool.exact[typed]
        if name in self._own:
            return Resolution(name, True)
        return self._by_pinyin(syllables(typed)) or Resolution(name, False)

    def _by_pinyin(self, key: tuple[str, ...]) -> Resolution | None:
        """Same toneless pinyin: the member's own subjects first, then the others."""
        found = self._pool.by_pinyin.get(key)
        if not found:
            return None
        own = [n for n in self.names if n in found]
        if own:
            return _one_or_many(own, True)
        return _one_or_many([n for n in self.others if n in found], False)

    def resolve(self, typed: str) -> Resolution | None:
        """Resolve a run of text that sits where a name would; None when nothing fits."""
        try:
            return self._cache[typed]
        except KeyError:
            pass
        result = self._resolve(typed)
        if len(self._cache) < 4096:
            self._cache[typed] = result
        return result

    def _resolve(self, typed: str) -> Resolution | None:
        if typed in self._pool.exact:
            return self.exact_match(typed)
        key = syllables(typed)
        found = self._by_pinyin(key)
        if found is not None:
            return found
        folded = "".join(fold(s) for s in key)
        best: list[str] = []
        best_score = 0.0
        for name, count, name_folded in self._folded:
            if count != len(key):
                continue
            score = fuzz.ratio(folded, name_folded)
            if score < FUZZY_MIN:
                continue
            if score > best_score:
                best, best_score = [name], score
            elif score == best_score:
                best.append(name)
        if best:
            return _one_or_many(best, True)
        m = COURTESY.fullmatch(typed)
        if m:
            found = self._surnames.get(m["pre"] or m["post"])
            if found:
                return _one_or_many(found, True)
        given = self._given.get(typed)
        if given:
            return _one_or_many(given, True)
        return None

    def suggest(self, typed: str) -> tuple[str, ...]:
        """Up to three of the member's subjects that sound somewhat like `typed`."""
        folded = _folded(typed)
        scored = [
            (fuzz.ratio(folded, name_folded), name)
            for name, count, name_folded in self._folded
            if abs(count - len(typed)) <= 1
        ]
        scored = [s for s in scored if s[0] >= SUGGEST_MIN]
        scored.sort(key=lambda s: -s[0])
        return tuple(name for _, name in scored[:3])


def _one_or_many(found: list[str], assigned: bool) -> Resolution:
    if len(found) == 1:
        return Resolution(found[0], assigned)
    return Resolution(None, assigned, tuple(found))


# an index holds the village's names (~100 strings): 1,024 of them is ~10 MB; rebuilding one
# from its cached village pool costs ~0.1 ms
@lru_cache(maxsize=1024)
def name_index(names: tuple[str, ...], others: tuple[str, ...] = ()) -> NameIndex:
    """The cached NameIndex for a member's subjects (the hot path builds it once)."""
    return NameIndex(names, others)
