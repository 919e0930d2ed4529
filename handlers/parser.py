"""Parse a member's report (DESIGN §3): which subjects, their temperature, status, symptoms.

The text is NFKC-normalised (full-width digits and punctuation), split into lines (a slot
marker may open any line) and lexed into tokens: names found verbatim first, then a regex
for numbers and punctuation, and inside runs of Chinese characters a longest-match lookup
of the vocabulary of `handlers.symptoms` (plus dictated temperatures). The Chinese
characters left over form "runs". A run that sits where a name would (at a clause start,
or after a name or a report, and before a temperature / status / symptom) is matched by
`handlers.names` (homophone, close, courtesy); when nothing fits and it looks like a name
it becomes an `unknown_name` problem, otherwise it is kept as a note. Each name opens a
segment that collects what follows, up to the next name; bare names joined by 、 和 ，
share the next name's status ("张三、李四正常").

Before lexing, traditional characters become simplified (`handlers.hanzi`), a quoted
message and the brackets of 嗅（味）觉 go, and a form's answers become statements
(是否外出：否 → 无外出); 收到 / 好的 / 👌 alone are no report. Where the parser is unsure it
asks back or leaves the subject missing, never the reverse: a reading it cannot read for
sure (37 8, 36.555) is a `bad_temperature`, a negated list runs over whatever it holds up
to 等 (无发热、寒战、结膜充血等症状), and 都好 after names that each had a report speaks of
those names only (其他都正常 and 除张三外都正常 speak of the rest).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from handlers import symptoms as sy
from handlers.hanzi import to_simplified
from handlers.names import NameIndex, Resolution, looks_like_name, name_index
from handlers.slots import MARKER, SLOTS, explicit_date, marker_slot, slot_from_time
from handlers.temperature import ARABIC, CHINESE, arabic_value, chinese_value

__all__ = [
    "SLOTS",
    "Entry",
    "ParseResult",
    "Problem",
    "is_acknowledgement",
    "parse_batch_line",
    "parse_reply",
]

STATUSES = ("normal", "abnormal", "unreachable", "absent")
REASONS = ("unknown_name", "ambiguous_name", "bad_temperature", "no_content")
MAX_CHARS = 20_000  # longer texts are cut: keeps the worst case bounded

# Token kinds beyond those of handlers.symptoms.
NAME = "name"
AMBIG = "ambiguous"
UNKNOWN = "unknown"
TEMP = "temp"
COMMA = "comma"  # ， — ends a clause but may still join bare names
HARD = "hard"  # 。；！？ newline
RUN = "run"  # unknown Chinese characters
NOTE = sy.NOTE  # leftovers: latin words, numbers that are not temperatures, 就医
BULK_S = "bulk_rest"  # 其他都正常: always a bulk report
BULK_W = "bulk_all"  # 都正常: bulk when alone or before the names; after them, theirs only
EXCL = "excluded"  # a name in 除张三外都正常: mentioned, not reported, not in the bulk
LEAD = "lead"  # a status opening a line before names: 未联系上：张伟、王芳
OTHERS = "others"  # 其他人 without 正常: what follows speaks of no one named
LIST = sy.LIST

_CONTENT = frozenset({TEMP, sy.SYM, sy.UNWELL, sy.NORMAL, sy.UNREACH, sy.ABSENT, sy.NEG, sy.OVER})
_HEADS = frozenset({NAME, AMBIG, UNKNOWN})
_SKIP = frozenset({LIST, sy.FILL, sy.POS, sy.END})  # transparent between a name and its report
_QUANTS = frozenset({sy.QUANT_ALL, sy.QUANT_REST})
_LEADS = frozenset({sy.UNREACH, sy.ABSENT, sy.NORMAL, sy.UNWELL})
# A negated list runs over these, whatever it holds: 无发热、寒战、结膜充血等症状.
_NEGATED = frozenset({sy.SYM, sy.UNWELL, NOTE, RUN, sy.ABSENT})
_EXCEPT = frozenset({"除", "除了"})
_EXCEPT_END = frozenset({"外", "以外", "之外"})
_NEG_SYMPTOM = frozenset(sy.NEG_SYMPTOM_WORDS)
_NO_SENSE = frozenset({"没嗅觉", "没有嗅觉", "没味觉", "没有味觉", "无嗅觉", "无味觉"})
_LISTING = frozenset("、和及与或")  # (a comma may end the clause: 没有味觉，也没有嗅觉)
_FOUR_DIGITS = re.compile(r"[34]\d{3}")
_SPLIT_GAP = re.compile(r"(?:[^\w\n]|_){0,4}")  # marks and spaces, not a word nor a line
_DECIMAL_MARK = re.compile(r"[.。点度,、]\d|[二三四五六七八九]")
# 嗅（味）觉减退: a bracketed character inside a word (NFKC made the brackets ASCII).
_BRACKETED = re.compile(r"(?<=[\u4e00-\u9fff])\(([\u4e00-\u9fff]{1,2})\)(?=[\u4e00-\u9fff])")
# Not a report (DESIGN §3): 收到, 好的, 嗯嗯, 👌, 谢谢, and the like, alone.
_ACK_WORDS = re.compile(
    r"(?:收到|收到了|已收到|好的|好滴|好嘞|好哒|好|嗯+|哦+|噢|行|可以|明白|明白了|知道了|了解|"
    r"谢谢|多谢|感谢|谢谢书记|谢谢领导|辛苦了|辛苦|您辛苦了|大家辛苦了|ok|okay|好的收到|收到谢谢|"
    r"书记|领导|主任|老师|各位|大家|早上好|上午好|中午好|下午好|晚上好|早安|晚安|你好|您好|大家好|"
    r"各位好)+",
    re.IGNORECASE,
)
# A reply that quotes an earlier message (WeChat: 「陈志刚：…」 and a dashed line first):
# the quote is someone else's words, never this report.
_QUOTE = re.compile(r"^\s*「[^」]*」\s*(?:\n\s*(?:-\s*){3,}\s*(?:\n|$))?")
# A form filled in (体温：36.5 是否外出：否 有无发热：无): the answer decides.
_FORM_NO = re.compile(
    r"(?:是否|有无|有没有)([\u4e00-\u9fff]{1,8}?)\s*[:：]?\s*(?:否|无|没有|不是|没|未|不)"
    r"(?![\u4e00-\u9fff])"
)
_FORM_YES = re.compile(
    r"(?:是否|有无|有没有)([\u4e00-\u9fff]{1,8}?)\s*[:：]?\s*(?:是|有)(?![\u4e00-\u9fff])"
)
# WeChat's emoji as text, and the emoji, that say "OK" (a 😷 or 🤒 says something else)
_WECHAT_EMOJI = re.compile(r"\[(?:OK|ok|强|抱拳|握手|玫瑰|胜利|拳头|爱心|鼓掌|好的|收到|嘿哈)\]")
_ACK_SYMBOLS = frozenset("👌👍🙏🤝✌🆗✅✔💪🌹👏💐🫡☺")
_ACK_MAX = 40
# Every character an acknowledgement may hold: anything else (a digit, a name) rules it out.
_ACK_CHARS = re.compile(
    r"[\W_收到了已好的滴嘞哒嗯哦噢行可以明白知道解谢多感辛苦您大家书记领导主任老师各位"
    r"okayOKAY强抱拳握手玫瑰胜利头爱心鼓掌嘿哈早上午中下晚安你]+"
)


def _lexer(before_name: bool) -> re.Pattern:
    # Numbering ("1.张三", "2、李四", a digit right before a word) is skipped; just before a
    # name the gap ends there, so "$" stands for the name ("36.5 2.李四").
    ahead = r"(?=\s*[\u4e00-\u9fff]|\s*$)" if before_name else r"(?=\s*[\u4e00-\u9fff])"
    return re.compile(
        r"(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
        r"|(?P<clock>(?<![\d.])(?:[01]?\d|2[0-3])(?:[:点][0-5]\d分?|点\d分|点(?:半|钟|多|整)?)"
        r"(?![\d.]))"
        rf"|(?P<num>(?<![\d.])(?:\d{{1,2}}[.、)）]|\d){ahead})"
        rf"|(?=[0-9Tt])(?P<temp>{ARABIC})"
        r"|(?P<badnum>(?<![\d.])\d+(?:[.。,、]+\d+)+)"
        r"|(?P<comma>[,，]+)"
        r"|(?P<hard>[。;；!！?？\r.…~]+)"
        r"|(?P<note>[A-Za-z]+|\d+(?:\.\d+)?)"
    )


_VAGUE = re.compile(r"\s*(?:多|几|来|出头)")  # after a whole degree: some tenths, unsaid
_LEX = _lexer(False)
_LEX_BEFORE_NAME = _lexer(True)
_PUNCT = {"comma": COMMA, "hard": HARD}
_CN_FIRST = frozenset("二三四")
_TEMP_PREFIXES = frozenset({"体温", "温度"})
_FAMILY = frozenset(sy.FAMILY_WORDS)
_CORRECTION = re.compile(r"\s*更正(?:一下)?\s*[:,、.。]?\s*")
# Control and zero-width characters, and ① ⑴ ⒈ ❶ (list bullets that NFKC would make digits).
_ODD = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff"
    r"\u2460-\u24ff\u2776-\u2793]"
)
_WORDS = sy.WORDS
_LENGTHS = sy.LENGTHS


@dataclass(frozen=True, slots=True)
class Entry:
    """One subject's report in a message."""

    name: str
    typed: str
    temperature: float | None
    status: str
    symptoms: tuple[str, ...]
    note: str
    assigned: bool = True
    bulk: bool = False
    # a reading and nothing else (更正 张三 36.4): a correction keeps the other symptoms
    bare_temperature: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """A fragment the bot has to ask back about."""

    text: str
    reason: str
    candidates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Everything understood in one message."""

    slot: str
    slot_source: str
    date: datetime.date
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]
    correction: bool
    # 都好 after names that each had their own report: it meant those names, so anyone else
    # is still missing (the reply says how to report the rest at once)
    bulk_named: bool = False
    # a reading or a status with no name, from a member with several subjects: whose?
    unnamed: bool = False

    def to_json(self) -> dict:
        """The DESIGN §3 shape (as `gridwatch parse --json` prints it)."""
        return {
            "slot": self.slot,
            "slot_source": self.slot_source,
            "entries": [
                {
                    "name": e.name,
                    "typed": e.typed,
                    "temperature": e.temperature,
                    "status": e.status,
                    "symptoms": list(e.symptoms),
                    "note": e.note,
                }
                for e in self.entries
            ],
            "problems": [
                {"text": p.text, "reason": p.reason, "candidates": list(p.candidates)}
                for p in self.problems
            ],
        }


class _Segment:
    """A name (or unknown name) and the tokens after it, up to the next name."""

    __slots__ = ("head", "tokens", "start", "end", "shared", "content", "joins", "lead")

    def __init__(self, head: list | None, start: int) -> None:
        self.head = head
        self.tokens: list[list] = []
        self.start = start
        self.end = start if head is None else head[2]
        self.shared: list[list] = []
        self.content = False  # holds a temperature, status, symptom or negation
        self.joins = True  # only separators / filler so far: may share the next report
        self.lead: list | None = None  # the status that opened its line (未联系上：张伟)


_SAW_RUN = 1
_SAW_QUANT = 2


def _lex(text: str, index: NameIndex) -> tuple[list[list], int]:
    """Tokens [kind, start, end, value] of the whole text, lines and markers handled,
    and a mask of what later passes need to look at (_SAW_RUN, _SAW_QUANT)."""
    tokens: list[list] = []
    saw = 0
    append = tokens.append
    find_names = index.find
    pos = 0
    size = len(text)
    while pos <= size:
        nl = text.find("\n", pos)
        line_end = size if nl < 0 else nl
        m = MARKER.match(text, pos, line_end)
        start = m.end() if m else pos
        if m:
            append([HARD, m.start(), m.end(), marker_slot(m["m"])])
        gaps: list[tuple[int, int, tuple[int, int] | None]] = []
        for found in find_names(text, start, line_end):
            gaps.append((start, found[0], found))
            start = found[1]
        gaps.append((start, line_end, None))
        for a, b, found in gaps:
            if a < b:
                saw |= _lex_gap(text, a, b, tokens, found is not None)
            if found is not None:
                name_start, name_end = found
                append([NAME, name_start, name_end, index.exact_match(text[name_start:name_end])])
        if nl < 0:
            break
        append([HARD, nl, nl + 1, None])
        pos = nl + 1
    return tokens, saw


def _lex_gap(text: str, a: int, b: int, tokens: list[list], before_name: bool) -> int:
    append = tokens.append
    saw = 0
    lexer = _LEX_BEFORE_NAME if before_name else _LEX
    # Spaces, 、 and symbols match nothing: finditer skips them (they join, like 和).
    for m in lexer.finditer(text, a, b):
        kind = m.lastgroup
        s, e = m.span()
        if kind == "cjk":
            saw |= _lex_chinese(text, s, e, append)
        elif kind == "temp":
            prefix, digits, decimal, comma, decimal_cn, unit = m.group(
                "tp", "ti", "td", "tk", "tdc", "tu"
            )
            marked = bool(tokens) and tokens[-1][0] is sy.FILL and _after_prefix(tokens)
            value = arabic_value(
                prefix, digits, decimal or comma or decimal_cn, unit, text[e : e + 1], marked
            )
            if len(digits) == 1 and not prefix and _split_decimal(text, tokens, s, s + 1):
                value = None  # 37 8℃
            elif value and not (decimal or comma or decimal_cn) and _VAGUE.match(text, e):
                value = None  # 36度多, 37度几: not a reading (37度多 may be a fever): asked back
            append([NOTE, s, e, m.group()] if value is False else [TEMP, s, e, value])
        elif kind == "badnum":  # 36.555, 3.6.5: a reading that cannot be read for sure
            append([TEMP, s, e, None])
        elif kind == "note":
            value = m.group()
            # 3650: a reading with a digit too many, asked back (a phone number is longer)
            append([TEMP, s, e, None] if _FOUR_DIGITS.fullmatch(value) else [NOTE, s, e, value])
        elif kind == "num":
            if _split_decimal(text, tokens, s, e):
                append([TEMP, s, e, None])  # 37 8咳嗽: the decimal typed apart, asked back
        elif kind != "clock":
            append([_PUNCT[kind], s, e, None])
    return saw


def _split_decimal(text: str, tokens: list[list], s: int, e: int) -> bool:
    """Whether the digit at s:e may be the decimal of a whole-degree reading just before it,
    set apart by a space or a stray mark (37 8, 37. 8, 36,,5, 35·8, 38-2), rather than a
    list number (36.5 2.李四)."""
    if e - s != 1 or not tokens:
        return False
    j = len(tokens) - 1
    while j > 0 and (tokens[j][0] is HARD or tokens[j][0] is COMMA) and j > len(tokens) - 4:
        j -= 1  # the marks between (their span is checked below)
    temp = tokens[j]
    return (
        temp[0] is TEMP
        and _SPLIT_GAP.fullmatch(text, temp[2], s) is not None
        and _DECIMAL_MARK.search(text, temp[1], temp[2]) is None
    )


def _after_prefix(tokens: list[list]) -> bool:
    """True when the number being lexed follows 体温/温度 (so "体温 28" is a bad reading)."""
    j = len(tokens) - 1
    while j >= 0 and tokens[j][3] in ("是", "为"):
        j -= 1
    return j >= 0 and tokens[j][0] == sy.FILL and tokens[j][3] in _TEMP_PREFIXES


def _lex_chinese(text: str, a: int, b: int, append: Callable[[list], None]) -> int:
    """Longest-match dictionary lookup over a run of Chinese characters."""
    words = _WORDS
    lengths = _LENGTHS
    saw = 0
    run_start = -1
    i = a
    while i < b:
        ch = text[i]
        hit = None
        if ch in _CN_FIRST:
            m = CHINESE.match(text, i, b)
            if m:
                hit = [TEMP, i, m.end(), chinese_value(m)]
        if hit is None:
            for n in lengths.get(ch, ()):
                if i + n <= b:
                    found = words.get(text[i : i + n])
                    if found is not None:
                        hit = [found[0], i, i + n, found[1]]
                        if text[i : i + n] in _NO_SENSE and text[i + n : i + n + 1] in _LISTING:
                            # 没有嗅觉、味觉减退: a negated list, not "has no sense of smell"
                            cut = 2 if text[i + 1] == "有" else 1
                            hit = [sy.NEG, i, i + cut, text[i : i + cut]]
                        break
        if hit is None:
            if run_start < 0:
                run_start = i
            i += 1
            continue
        if run_start >= 0:
            append([RUN, run_start, i, text[run_start:i]])
            run_start = -1
            saw |= _SAW_RUN
        kind = hit[0]
        if kind is not LIST:  # 和 / 及 join like a space: nothing to keep
            append(hit)
            if kind in _QUANTS:
                saw |= _SAW_QUANT
        i = hit[2]
    if run_start >= 0:
        append([RUN, run_start, b, text[run_start:b]])
        saw |= _SAW_RUN
    return saw


def _bulk_pass(tokens: list[list], text: str) -> list[list]:
    """Fold 其他/都/全部 … 正常 into one bulk token; a quantifier without it is filler."""
    out: list[list] = []
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        if tok[0] not in _QUANTS:
            out.append(tok)
            i += 1
            continue
        rest = tok[0] == sy.QUANT_REST
        if out and (
            out[-1][0] == sy.FILL
            and out[-1][3] in _FAMILY
            or out[-1][0] in (sy.SYM, sy.UNWELL)
            and not rest
        ):
            # "家里人都挺好的" is about the family; "咳嗽发烧都好了", about the symptoms
            out.append([sy.FILL, tok[1], tok[2], tok[3]])
            i += 1
            continue
        j = i + 1
        while j < n and tokens[j][0] in (sy.FILL, LIST, sy.QUANT_ALL, sy.QUANT_REST):
            rest = rest or tokens[j][0] == sy.QUANT_REST
            j += 1
        if j < n and (tokens[j][0] == sy.NORMAL or tokens[j][0] == sy.OVER):
            start, end = tok[1], tokens[j][2]
            out.append([BULK_S if rest else BULK_W, start, end, text[start:end]])
            i = j + 1
        elif tok[0] == sy.QUANT_REST:
            # 其他人没联系上: about the others, not about the name before; no one is named
            out.append([OTHERS, tok[1], tok[2], tok[3]])
            i += 1
        else:
            out.append([sy.FILL, tok[1], tok[2], tok[3]])
            i += 1
    return out


def _except_pass(tokens: list[list]) -> None:
    """除张三外都正常 / 除了张三，其他都正常: the names in between are excluded (mentioned,
    not reported, left out of the bulk); 外 becomes "the others"."""
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok[0] is not sy.FILL or tok[3] not in _EXCEPT:
            continue
        names = []
        j = i + 1
        while j < n:
            kind = tokens[j][0]
            if kind in _HEADS:
                names.append(j)
            elif not (kind is LIST or kind is COMMA or kind is sy.FILL):
                break
            elif kind is sy.FILL and tokens[j][3] in _EXCEPT_END:
                break
            j += 1
        if not names or j == n:
            continue
        end = tokens[j]
        if end[0] is sy.FILL:
            end[0] = sy.QUANT_REST
        elif end[0] not in _QUANTS:
            continue
        for k in names:
            tokens[k] = [EXCL, tokens[k][1], tokens[k][2], tokens[k]]


def _opens_names(tokens: list[list], i: int) -> bool:
    """Whether token i is a status at the start of a line, before names (未联系上：张伟)."""
    j = i - 1
    while j >= 0 and tokens[j][0] in _SKIP:
        j -= 1
    if j >= 0 and tokens[j][0] is not HARD:
        return False
    j = i + 1
    while j < len(tokens) and (tokens[j][0] in _SKIP or tokens[j][0] is COMMA):
        j += 1
    return j < len(tokens) and tokens[j][0] in (NAME, AMBIG, UNKNOWN, RUN)


def _listed(text: str, tokens: list[list], i: int) -> bool:
    """Whether run i follows the token before it with 、 or nothing between (a list item)."""
    gap = text[tokens[i - 1][2] : tokens[i][1]] if i else ""
    return not gap or "、" in gap or "和" in gap


def _neighbour(tokens: list[list], i: int, step: int) -> str | None:
    """Kind of the nearest token before/after i that is not a list separator or filler."""
    j = i + step
    while 0 <= j < len(tokens):
        kind = tokens[j][0]
        if kind not in _SKIP:
            return kind
        j += step
    return None


def _closed_by_deng(tokens: list[list], comma: int) -> bool:
    """Whether what follows a comma inside a negated list is more of the list, closed by 等
    (等症状) before the sentence ends and before anything that is not a symptom word."""
    for tok in tokens[comma + 1 :]:
        kind = tok[0]
        if kind is sy.END:
            return True
        if kind is HARD or not (kind in _NEGATED or kind in _SKIP or kind is COMMA):
            return False
    return False


def _resolve_runs(tokens: list[list], index: NameIndex, text: str) -> None:
    """Turn runs in name position into names / problems; the rest become notes.

    Inside a negated list (无发热、寒战、结膜充血等症状) a run after 、 is one more item of
    the list, and elsewhere there only a known name ends the list: never an unknown name."""
    negating = False
    for i, tok in enumerate(tokens):
        kind = tok[0]
        if kind != RUN:
            if kind is sy.NEG:
                negating = True
            elif kind is sy.END or kind is sy.POS:
                negating = False
            elif kind not in _NEGATED and kind not in _SKIP and kind is not COMMA:
                negating = False
            continue
        if negating and _listed(text, tokens, i):
            tok[0] = NOTE
            continue
        before = _neighbour(tokens, i, -1)
        after = _neighbour(tokens, i, 1)
        run = tok[3]
        at_start = before is None or before in (HARD, COMMA, NAME, RUN, AMBIG, UNKNOWN)
        if not at_start and before in _LEADS and after in (None, HARD, COMMA, NAME, RUN):
            j = i - 1
            while tokens[j][0] in _SKIP:
                j -= 1
            at_start = _opens_names(tokens, j)
        if len(run) >= 2 and (
            (at_start or before in _CONTENT)
            and after in _CONTENT
            or (at_start and after in (None, HARD, COMMA, NAME, RUN))
        ):
            found = _resolve_run(run, index)
            if found is not None:
                offset, length, res = found
                if offset or length != len(run):
                    _split_run(tokens, i, offset, length)
                    tok = tokens[i + (1 if offset else 0)]
                if res.name is not None:
                    tok[0], tok[3] = NAME, res
                else:
                    tok[0], tok[3] = AMBIG, res.candidates
                negating = False
                continue
            if before != NAME and after in _CONTENT and looks_like_name(run) and not negating:
                tok[0], tok[3] = UNKNOWN, index.suggest(run)
                continue
        tok[0] = NOTE


def _resolve_run(run: str, index: NameIndex) -> tuple[int, int, Resolution] | None:
    """(offset, length, resolution) of a name in the run: the whole run, or in a long run
    (unknown words around a name) its end or its start."""
    n = len(run)
    if n <= 4:
        # A short run is a name or not: 黄莉莉 is not 黄丽 plus a stray 莉.
        res = index.resolve(run)
        return None if res is None else (0, n, res)
    # "还有王奶奶" style leftovers: a name at the end of a longer run, else at its start.
    for length in (4, 3, 2):
        if length < n:
            res = index.resolve(run[n - length :])
            if res is not None:
                return n - length, length, res
    for length in (4, 3, 2):
        if length < n:
            res = index.resolve(run[:length])
            if res is not None:
                return 0, length, res
    return None


def _split_run(tokens: list[list], i: int, offset: int, length: int) -> None:
    """Split run token i so the [offset, offset+length) part is its own token."""
    kind, s, e, run = tokens[i]
    parts = []
    if offset:
        parts.append([NOTE, s, s + offset, run[:offset]])
    parts.append([RUN, s + offset, s + offset + length, run[offset : offset + length]])
    if offset + length < len(run):
        parts.append([NOTE, s + offset + length, e, run[offset + length :]])
    tokens[i : i + 1] = parts


class _Grouped:
    """What `_segments` found besides the segments."""

    __slots__ = ("bulk", "marker", "excluded", "bulk_named")

    def __init__(self) -> None:
        self.bulk: str | None = None  # the bulk phrase, when it covers the unnamed
        self.marker: str | None = None  # the first slot marker
        self.excluded: list[list] = []  # the names of 除张三外
        self.bulk_named = False  # a 都好 after reports: it spoke of those names only


def _segments(tokens: list[list]) -> tuple[list[_Segment], _Grouped]:
    """Group tokens by name."""
    preamble = _Segment(None, 0)
    segments = [preamble]
    current = preamble
    found = _Grouped()
    lead: list | None = None
    named_bulk: list | None = None
    named_upto = 0
    line_start = True
    for i, tok in enumerate(tokens):
        kind = tok[0]
        if kind in _HEADS:
            current = _Segment(tok, tok[1])
            current.lead = lead
            segments.append(current)
            line_start = False
            continue
        if kind == HARD:
            lead = None
            if tok[3] is not None and found.marker is None:
                found.marker = tok[3]
        elif kind == EXCL:
            found.excluded.append(tok[3])
            continue
        elif line_start and kind in _LEADS and _opens_names(tokens, i):
            # 未联系上：张伟、王芳 — the status speaks for the names after it on its line
            lead = tok
            current = preamble
            line_start = False
            continue
        elif kind == BULK_W and len(segments) > 1:
            if current.head is not None and not current.content:
                # "张三、李四都正常": 都 refers to the names just before, not to everyone.
                kind = sy.NORMAL
                tok = [kind, tok[1], tok[2], tok[3]]
            else:
                # "张伟36.5 王芳36.7 都好": those names, never the ones left unsaid
                named_bulk = [sy.NORMAL, tok[1], tok[2], tok[3]]
                named_upto = len(segments)
                found.bulk_named = True
                continue
        elif kind == BULK_W or kind == BULK_S:
            if found.bulk is None:
                found.bulk = tok[3]
            current = preamble
            continue
        elif kind == OTHERS:
            current = preamble
            continue
        line_start = kind == HARD or (line_start and kind in _SKIP)
        # (_Segment.add, inlined: this loop is hot)
        current.tokens.append(tok)
        if kind in _CONTENT:
            current.content = True
        if kind not in _SKIP and kind is not COMMA:
            current.joins = False
            if kind is not HARD:
                current.end = tok[2]  # the fragment quoted in problems: filler left out
    if len(segments) > 2:
        _share(segments)
    if len(segments) > 1:
        # a name with nothing of its own takes its line's leading status, else the 都好 after it
        for k, seg in enumerate(segments):
            if seg.head is None or seg.content or seg.shared:
                continue
            if seg.lead is not None:
                seg.shared = [seg.lead]
            elif named_bulk is not None and k < named_upto:
                seg.shared = [named_bulk]
    return segments, found


def _share(segments: list[_Segment]) -> None:
    """Bare names joined by 、/和/， take the status of the next name ("张三、李四正常")."""
    for k in range(len(segments) - 1, 1, -1):
        seg = segments[k]
        if not seg.content or seg.head is None:
            continue
        prev = segments[k - 1]
        if prev.head is None or prev.content or not prev.joins:
            continue
        shared = [t for t in seg.tokens if t[0] in _CONTENT and t[0] != TEMP]
        if not shared:
            continue
        j = k - 1
        while j > 0:
            prev = segments[j]
            if prev.head is None or prev.content or not prev.joins:
                break
            prev.shared = shared
            j -= 1


def _evaluate(
    seg: _Segment, threshold: float, text: str
) -> tuple[float | None, str | None, list, list, str, bool]:
    """(temperature, status or None, symptoms, bad temperature tokens, note, whether a reading
    was all it said) of a segment."""
    temps: list[tuple[float, int]] = []
    bad: list[list] = []
    found: list[str] = []
    notes: list[list[int]] = []  # [start, end, index of the last token]: adjacent ones merge
    normal = unreach = absent = unwell = False
    negating = False
    clause: list[str] = []  # the symptoms of the latest clause that had some: 好了 ends them
    fresh = True  # a clause ended: the next symptom starts a new one
    after_temp = False  # the last thing said was a reading: a stray digit next is asked back
    tokens = seg.tokens + seg.shared if seg.shared else seg.tokens
    for i, tok in enumerate(tokens):
        kind = tok[0]
        if kind == sy.NEG:
            negating = True
            normal = normal or tok[3] in _NEG_SYMPTOM  # 没有味觉减退
            continue
        if kind == sy.SYM:
            if negating:
                normal = True
                continue
            if fresh:
                clause, fresh = [], False
            clause.append(tok[3])
            if tok[3] not in found:
                found.append(tok[3])
            continue
        if negating and kind in _NEGATED:
            # a negated list runs on over whatever it holds: 无寒战、结膜充血; 未外出
            normal = normal or kind is not NOTE
            continue
        if kind == sy.POS or kind == sy.END:
            negating = False
            continue
        # A negation runs on over 、 和 and filler ("无发热、咳嗽等症状"), and over ， only
        # into a list that 等 closes ("无发热，咳嗽，乏力等症状"): "无发热，咳嗽" says a cough.
        if kind == COMMA and negating and not _closed_by_deng(tokens, i):
            negating = False
        if kind in _SKIP or kind == COMMA:
            fresh = fresh or kind == COMMA
            continue
        negating = False
        if kind == HARD:
            fresh = True
            continue
        if kind == TEMP:
            after_temp = True
            if tok[3] is None:
                bad.append(tok)
            else:
                temps.append((tok[3], len(found)))
            continue
        if after_temp and kind == NOTE and tok[3].isdigit():
            bad.append(tok)  # 37 8, 37. 8: a decimal typed apart is never dropped
            continue
        after_temp = False
        if kind == sy.OVER:
            # 咳嗽好了: over, not abnormal; alone, 好了 is a normal report
            for symptom in clause:
                if symptom in found:
                    found.remove(symptom)
            clause = []
            normal = True
        elif kind == sy.NORMAL:
            normal = True
        elif kind == sy.UNREACH:
            unreach = True
        elif kind == sy.ABSENT:
            absent = True
        elif kind == NOTE or kind == sy.UNWELL:
            unwell = unwell or kind == sy.UNWELL
            if notes and notes[-1][2] == i - 1:
                notes[-1][1:] = [tok[2], i]
            else:
                notes.append([tok[1], tok[2], i])
    temperature = None
    if bad:
        # a reading that cannot be read for sure counts for nothing, not even as "normal":
        # it is asked back, and only what else was said stands (a symptom, 未联系上)
        temps = []
    bare = bool(temps) and not (found or normal or unreach or absent or unwell or notes)
    if temps:
        # Several readings: keep the highest, a fever must never be hidden.
        temperature, position = max(temps)
        if temperature >= threshold and "发热" not in found:
            found.insert(position, "发热")
    if found or unwell:
        status: str | None = "abnormal"
    elif absent:
        status = "absent"
    elif unreach:
        status = "unreachable"
    elif temps or normal:
        status = "normal"
    else:
        status = None
    note = " ".join(text[a:b] for a, b, _ in notes) if notes else ""
    return temperature, status, found, bad, note, bare


def _fragment(text: str, seg: _Segment) -> str:
    return " ".join(text[seg.start : seg.end].split())


def parse_reply(
    text: str,
    names: Sequence[str],
    at: datetime.datetime,
    *,
    others: Sequence[str] = (),
    fever_threshold: float = 37.3,
    index: NameIndex | None = None,
) -> ParseResult:
    """Parse one message from a member whose active subjects are `names` (`index`, when the
    caller built it, is their NameIndex and `names` and `others` are not read)."""
    if index is None:
        try:
            index = name_index(tuple(names), tuple(others))
        except TypeError:  # unhashable junk among the names
            index = name_index(
                tuple(n for n in names if isinstance(n, str)),
                tuple(n for n in others if isinstance(n, str)),
            )
    if not isinstance(text, str):
        text = ""
    text = text[:MAX_CHARS]
    if _ODD.search(text):
        text = _ODD.sub(" ", text)
    if not unicodedata.is_normalized("NFKC", text):  # (the check is 25 times cheaper)
        text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text)
    if "」" in text:
        text = _QUOTE.sub("", text)
    if "(" in text:
        text = _BRACKETED.sub(r"\1", text)
    if "是否" in text or "有无" in text or "有没有" in text:
        text = _form_answers(text)
    if len(text) <= _ACK_MAX and is_acknowledgement(text):
        slot, date = slot_from_time(at)
        return ParseResult(slot, "time", date, (), (), False)
    correction = False
    m = _CORRECTION.match(text)
    if m:
        correction = True
        text = text[m.end() :]
    tokens, saw = _lex(text, index)
    if not correction and tokens and tokens[0][0] == HARD and tokens[0][3] is not None:
        # "早上更正 张三 36.4"
        m = _CORRECTION.match(text, tokens[0][2])
        if m:
            correction = True
            tokens[0][2] = m.end()
            tokens = [t for t in tokens if t is tokens[0] or t[1] >= m.end()]
    if saw & _SAW_RUN:
        _resolve_runs(tokens, index, text)
    if "除" in text:
        _except_pass(tokens)
        saw |= _SAW_QUANT
    if saw & _SAW_QUANT:
        tokens = _bulk_pass(tokens, text)
    segments, grouped = _segments(tokens)
    bulk, marker = grouped.bulk, grouped.marker
    unnamed = len(segments) == 1 and bulk is None and segments[0].content
    if unnamed and len(index.names) == 1:
        # a member with one subject may leave the name out: 36.5, 一切正常, 未联系上
        segments[0].head = [NAME, 0, 0, Resolution(index.names[0], True)]
        unnamed = False

    entries: list[Entry] = []
    where: dict[str, int] = {}
    problems: list[tuple[int, Problem, str | None]] = []
    mentioned: set[str] = set()
    for seg in segments:
        head = seg.head
        if head is None:
            continue
        kind = head[0]
        typed = text[head[1] : head[2]] if head[1] < head[2] else head[3].name
        if kind == UNKNOWN:
            problems.append(
                (seg.start, Problem(_fragment(text, seg), "unknown_name", head[3]), None)
            )
            mentioned.update(head[3])
            continue
        if kind == AMBIG:
            problems.append(
                (seg.start, Problem(_fragment(text, seg), "ambiguous_name", head[3]), None)
            )
            mentioned.update(head[3])
            continue
        res: Resolution = head[3]
        name = res.name
        assert name is not None
        mentioned.add(name)
        temperature, status, found, bad, note, bare = _evaluate(seg, fever_threshold, text)
        if bad:
            problems.append(
                (seg.start, Problem(_fragment(text, seg), "bad_temperature", (name,)), None)
            )
            if status == "normal":
                continue
        if status is None:
            if not bad:
                problems.append((seg.start, Problem(_fragment(text, seg), "no_content", ()), name))
            continue
        entry = Entry(
            name, typed, temperature, status, tuple(found), note, res.assigned, False, bare
        )
        if name in where:
            entries[where[name]] = entry
        else:
            where[name] = len(entries)
            entries.append(entry)

    for head in grouped.excluded:
        # 除张伟外都正常 says nothing of 张伟: asked back unless the message reports him
        if head[0] == NAME:
            name = head[3].name
            mentioned.add(name)
            problem = Problem(text[head[1] : head[2]], "no_content", ())
            problems.append((head[1], problem, name))
        else:
            mentioned.update(head[3])
    if bulk is not None:
        for name in index.names:
            if name not in mentioned:
                entries.append(Entry(name, bulk, None, "normal", (), "", True, True))

    if marker is not None:
        slot, source, date = marker, "explicit", explicit_date(at)
    else:
        slot, date = slot_from_time(at)
        source = "time"
    return ParseResult(
        slot=slot,
        slot_source=source,
        date=date,
        entries=tuple(entries),
        problems=_unique(
            p for _, p, who in sorted(problems, key=_first) if who is None or who not in where
        ),
        correction=correction,
        bulk_named=grouped.bulk_named,
        unnamed=unnamed,
    )


def _form_answers(text: str) -> str:
    """A form's question and answer as a statement: 是否外出：否 → 无外出, 有无发热：有 → 发热."""
    text = _FORM_NO.sub(r"无\1", text)
    return _FORM_YES.sub(r"\1", text)


def _first(item: tuple) -> int:
    return item[0]


def is_acknowledgement(text: str) -> bool:
    """收到 / 好的 / 嗯嗯 / 👌 / 谢谢 / [抱拳] alone: not a report, not a question (DESIGN §3)."""
    if len(text) > _ACK_MAX or _ACK_CHARS.fullmatch(text) is None:
        return False  # (most reports fail here, in a fraction of a microsecond)
    text = unicodedata.normalize("NFKC", text)
    had_symbol = False
    if "[" in text:
        text, codes = _WECHAT_EMOJI.subn("", text)  # WeChat's emoji as text: [抱拳] [OK]
        had_symbol = codes > 0
    words, word = [], []  # runs of letters, each an acknowledgement ("晚上 好" is a report)
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LN":
            word.append(ch)
            continue
        if word:
            words.append("".join(word))
            word = []
        if ch in _ACK_SYMBOLS:
            had_symbol = True
        elif category == "So":
            return False
    if word:
        words.append("".join(word))
    if not words:
        return had_symbol
    return all(_ACK_WORDS.fullmatch(w) is not None for w in words)


def _unique(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Problems without repeats (the same fragment and reason said twice is asked once)."""
    return tuple(dict.fromkeys(problems))


def parse_batch_line(
    line: str, *, fever_threshold: float = 37.3, tz: datetime.tzinfo | None = None
) -> dict:
    """One line of `gridwatch parse --batch`: JSON {"text","names","at"} → parse JSON.

    `at` is read as `gridwatch parse --at` reads it: a naive time is local to `tz`, an aware
    one is converted to it. Any bad line gives {"error": reason, "line": the line cut to 200
    chars}; never raises.
    """
    raw = line if isinstance(line, str) else repr(line)
    try:
        return _batch(raw, fever_threshold, tz)
    except _BatchError as e:
        return {"error": str(e), "line": raw.rstrip("\r\n")[:200]}
    except Exception as e:  # the batch must go on, whatever a line holds
        return {"error": f"internal error: {type(e).__name__}", "line": raw.rstrip("\r\n")[:200]}


class _BatchError(ValueError):
    pass


def _batch(raw: str, fever_threshold: float, tz: datetime.tzinfo | None) -> dict:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise _BatchError("not JSON") from None
    if not isinstance(obj, dict):
        raise _BatchError("not a JSON object")
    text = obj.get("text")
    if not isinstance(text, str):
        raise _BatchError("missing or non-string 'text'")
    names = obj.get("names", [])
    if isinstance(names, str):
        names = [n for n in re.split(r"[,，、\s]+", names) if n]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _BatchError("'names' must be a list of strings or a comma-joined string")
    at = obj.get("at")
    if not isinstance(at, str):
        raise _BatchError("missing or non-string 'at'")
    when = _when(at, tz)
    if when is None:
        raise _BatchError(f"bad 'at' time: {at[:40]}")
    return parse_reply(text, names, when, fever_threshold=fever_threshold).to_json()


@functools.lru_cache(maxsize=4096)  # a batch's lines share a few times
def _when(at: str, tz: datetime.tzinfo | None) -> datetime.datetime | None:
    try:
        when = datetime.datetime.fromisoformat(at)
    except ValueError:
        return None
    if tz is not None:
        when = when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz)
    return when
