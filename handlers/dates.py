"""How a date reads: 3月2日 in everything a person reads (chat, pages), ISO (2026-03-02) in
files and JSON."""

from __future__ import annotations

import datetime as dt


def day_label(day: dt.date | str) -> str:
    """3月2日, from a date or an ISO date (or the date part of an ISO time)."""
    if isinstance(day, str):
        day = dt.date.fromisoformat(day[:10])
    return f"{day.month}月{day.day}日"


def time_label(at: dt.datetime | str) -> str:
    """3月2日 08:30, from a datetime or an ISO time."""
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return f"{day_label(at.date())} {at:%H:%M}"
