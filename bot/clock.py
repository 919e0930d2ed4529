"""Reading times: the only place that looks at the clock is `now()`, called at the edges."""

from __future__ import annotations

import datetime as dt


def now(tz: dt.tzinfo) -> dt.datetime:
    """The current local time, for the CLI, the scheduler and requests only."""
    return dt.datetime.now(tz).replace(microsecond=0)


def parse_time(text: str, tz: dt.tzinfo) -> dt.datetime:
    """An ISO time; a naive one is local to `tz`, an aware one is converted to it."""
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value.astimezone(tz)


def parse_day(text: str) -> dt.date:
    return dt.date.fromisoformat(text.strip())


def from_timestamp(seconds: int | float, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz)
