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
"""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from handlers import symptoms as sy
from handlers.names import NameIndex, Resolution, looks_like_name, name_index
from handlers.slots import MARKER, SLOTS, explicit_date, marker_slot, slot_from_time
from handlers.temperature import ARABIC, CHINESE, arabic_value, chinese_value

__all__ = ["SLOTS", "Entry", "ParseResult", "Problem", "parse_batch_line", "parse_reply"]

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
BULK_W = "bulk_all"  # 都正常: bulk, unless it follows names with nothing said about them
LIST = sy.LIST

_CONTENT = frozenset({TEMP, sy.SYM, sy.UNWELL, sy.NORMAL, sy.UNREACH, sy.ABSENT, sy.NEG})
_HEADS = frozenset({NAME, AMBIG, UNKNOWN})
_SKIP = frozenset({LIST, sy.FILL, sy.POS})  # transparent between a name and its report
_QUANTS = frozenset({sy.QUANT_ALL, sy.QUANT_REST})


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
        r"|(?P<comma>[,，]+)"
        r"|(?P<hard>[。;；!！?？\r.…~]+)"
        r"|(?P<note>[A-Za-z]+|\d+(?:\.\d+)?)"
    )


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

    __slots__ = ("head", "tokens", "start", "end", "shared", "content", "joins")

    def __init__(self, head: list | None, start: int) -> None:
        self.head = head
        self.tokens: list[list] = []
        self.start = start
        self.end = start if head is None else head[2]
        self.shared: list[list] = []
        self.content = False  # holds a temperature, status, symptom or negation
        self.joins = True  # only separators / filler so far: may share the next report


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
            prefix, digits, decimal, decimal_cn, unit = m.group("tp", "ti", "td", "tdc", "tu")
            marked = bool(tokens) and tokens[-1][0] is sy.FILL and _after_prefix(tokens)
            value = arabic_value(
                prefix, digits, decimal or decimal_cn, unit, text[e : e + 1], marked
            )
            append([NOTE, s, e, m.group()] if value is False else [TEMP, s, e, value])
        elif kind == "note":
            append([NOTE, s, e, m.group()])
        elif kind != "num" and kind != "clock":
            append([_PUNCT[kind], s, e, None])
    return saw


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
        if out and out[-1][0] == sy.FILL and out[-1][3] in _FAMILY:
            out.append([sy.FILL, tok[1], tok[2], tok[3]])  # "家里人都挺好的"
            i += 1
            continue
        j = i + 1
        while j < n and tokens[j][0] in (sy.FILL, LIST, sy.QUANT_ALL, sy.QUANT_REST):
            rest = rest or tokens[j][0] == sy.QUANT_REST
            j += 1
        if j < n and tokens[j][0] == sy.NORMAL:
            start, end = tok[1], tokens[j][2]
            out.append([BULK_S if rest else BULK_W, start, end, text[start:end]])
            i = j + 1
        else:
            out.append([sy.FILL, tok[1], tok[2], tok[3]])
            i += 1
    return out


def _neighbour(tokens: list[list], i: int, step: int) -> str | None:
    """Kind of the nearest token before/after i that is not a list separator or filler."""
    j = i + step
    while 0 <= j < len(tokens):
        kind = tokens[j][0]
        if kind not in _SKIP:
            return kind
        j += step
    return None


def _resolve_runs(tokens: list[list], index: NameIndex) -> None:
    """Turn runs in name position into names / problems; the rest become notes."""
    for i, tok in enumerate(tokens):
        if tok[0] != RUN:
            continue
        before = _neighbour(tokens, i, -1)
        after = _neighbour(tokens, i, 1)
        run = tok[3]
        at_start = before is None or before in (HARD, COMMA, NAME, RUN, AMBIG, UNKNOWN)
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
                continue
            if before != NAME and after in _CONTENT and looks_like_name(run):
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


def _segments(tokens: list[list]) -> tuple[list[_Segment], str | None, str | None]:
    """Group tokens by name; returns segments, the bulk phrase (if any) and the first marker."""
    preamble = _Segment(None, 0)
    segments = [preamble]
    current = preamble
    bulk: str | None = None
    marker: str | None = None
    for tok in tokens:
        kind = tok[0]
        if kind in _HEADS:
            current = _Segment(tok, tok[1])
            segments.append(current)
            continue
        if kind == HARD and tok[3] is not None and marker is None:
            marker = tok[3]
        if kind == BULK_W and current.head is not None and not current.content:
            # "张三、李四都正常": 都 refers to the names just before, not to everyone.
            kind = sy.NORMAL
            tok = [kind, tok[1], tok[2], tok[3]]
        elif kind == BULK_W or kind == BULK_S:
            if bulk is None:
                bulk = tok[3]
            current = preamble
            continue
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
    return segments, bulk, marker


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
) -> tuple[float | None, str | None, list, list, str]:
    """(temperature, status or None, symptoms, bad temperature tokens, note) of a segment."""
    temps: list[tuple[float, int]] = []
    bad: list[list] = []
    found: list[str] = []
    notes: list[list[int]] = []  # [start, end, index of the last token]: adjacent ones merge
    normal = unreach = absent = unwell = False
    negating = False
    tokens = seg.tokens + seg.shared if seg.shared else seg.tokens
    for i, tok in enumerate(tokens):
        kind = tok[0]
        if kind == sy.NEG:
            negating = True
            continue
        if kind == sy.SYM:
            if negating:
                normal = True
            elif tok[3] not in found:
                found.append(tok[3])
            continue
        if kind == sy.UNWELL and negating:
            normal = True
            continue
        if kind == sy.POS:
            negating = False
            continue
        # A negation runs on over 、 和 ， and filler: "无发热、咳嗽等症状".
        if kind in _SKIP or kind == COMMA:
            continue
        negating = False
        if kind == TEMP:
            if tok[3] is None:
                bad.append(tok)
            else:
                temps.append((tok[3], len(found)))
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
    return temperature, status, found, bad, note


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
    text = unicodedata.normalize("NFKC", text)
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
        _resolve_runs(tokens, index)
    if saw & _SAW_QUANT:
        tokens = _bulk_pass(tokens, text)
    segments, bulk, marker = _segments(tokens)

    entries: list[Entry] = []
    where: dict[str, int] = {}
    problems: list[tuple[int, Problem, str | None]] = []
    mentioned: set[str] = set()
    for seg in segments:
        head = seg.head
        if head is None:
            continue
        kind = head[0]
        typed = text[head[1] : head[2]]
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
        temperature, status, found, bad, note = _evaluate(seg, fever_threshold, text)
        if bad:
            problems.append(
                (seg.start, Problem(_fragment(text, seg), "bad_temperature", (name,)), None)
            )
        if status is None:
            if not bad:
                problems.append((seg.start, Problem(_fragment(text, seg), "no_content", ()), name))
            continue
        entry = Entry(name, typed, temperature, status, tuple(found), note, res.assigned)
        if name in where:
            entries[where[name]] = entry
        else:
            where[name] = len(entries)
            entries.append(entry)

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
        problems=_unique(p for _, p, who in problems if who is None or who not in where),
        correction=correction,
    )


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
    try:
        when = datetime.datetime.fromisoformat(at)
    except ValueError:
        raise _BatchError(f"bad 'at' time: {at[:40]}") from None
    if tz is not None:
        when = when.replace(tzinfo=tz) if when.tzinfo is None else when.astimezone(tz)
    return parse_reply(text, names, when, fever_threshold=fever_threshold).to_json()
