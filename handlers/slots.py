"""Which contact slot (早/中/晚) and monitoring date a message belongs to."""

from __future__ import annotations

import datetime
import re
import unicodedata

SLOTS = ("morning", "noon", "evening")
# when each slot's own time window opens (DESIGN §3): a message from then on counts for the
# slot by its time alone; the evening's runs past midnight to 04:59
WINDOW_OPENS = {
    "morning": datetime.time(5),
    "noon": datetime.time(11),
    "evening": datetime.time(17),
}

_MARKERS = {
    "早上": "morning", "早间": "morning", "上午": "morning", "早晨": "morning",
    "今早": "morning", "早": "morning",
    "中午": "noon", "午间": "noon", "下午": "noon", "中": "noon",
    "晚上": "evening", "晚间": "evening", "傍晚": "evening", "今晚": "evening", "晚": "evening",
}  # fmt: skip
_ALT = "|".join(sorted(_MARKERS, key=len, reverse=True))
# At the start of the message or of a line: [【][补报][今天]早上[的][汇报|情况|报][】],
# then : , 、 or space (full-width forms are NFKC-normalised before). A lone 早/中/晚 is
# not a marker in 晚点再报 / 中间.
MARKER = re.compile(
    rf"[ \t]*[【\[(]?[ \t]*(?:补报|补)?(?:今天|今日)?(?P<m>{_ALT})(?![点些间])"
    r"(?:的)?(?:汇报|报告|情况|报|测温|联系)?[】\])]?"
    r"(?:[ \t]*[:,、.。\-—][ \t]*|[ \t]+)?"
)


def marker_slot(word: str) -> str:
    """The slot a marker word stands for."""
    return _MARKERS[word]


def slot_from_time(at: datetime.datetime) -> tuple[str, datetime.date]:
    """Slot and monitoring date from the message time alone.

    Before 11:00 morning, 11:00–16:59 noon, 17:00 and later evening; 00:00–04:59 is the
    previous day's evening (a late report of last night).
    """
    time = at.time()
    if time < WINDOW_OPENS["morning"]:
        return "evening", at.date() - datetime.timedelta(days=1)
    if time < WINDOW_OPENS["noon"]:
        return "morning", at.date()
    if time < WINDOW_OPENS["evening"]:
        return "noon", at.date()
    return "evening", at.date()


def explicit_date(at: datetime.datetime) -> datetime.date:
    """The date for an explicit marker: today, except after midnight (still last night)."""
    if at.hour < 5:
        return at.date() - datetime.timedelta(days=1)
    return at.date()


def split_by_slot(text: str) -> list[str]:
    """A message whose lines carry markers of different slots (早：… / 中：…), or unmarked lines
    before a marked one, as one part per group: a marker speaks for its own lines, the lines
    before the first marker go by the message time. Anything else, one part: the message."""
    parts: list[list[str]] = [[]]
    slots = set()
    for line in text.splitlines():
        # markers are matched the way the parser sees them: full-width forms folded
        marker = MARKER.match(unicodedata.normalize("NFKC", line))
        if marker and marker["m"]:
            slots.add(marker_slot(marker["m"]))
            if parts[-1]:
                parts.append([])
        parts[-1].append(line)
    head = next((line for line in parts[0] if line.strip()), "")
    unmarked_head = (
        len(parts) > 1 and bool(head) and not MARKER.match(unicodedata.normalize("NFKC", head))
    )
    if len(slots) < 2 and not unmarked_head:
        return [text]
    return ["\n".join(lines) for lines in parts if any(line.strip() for line in lines)]
