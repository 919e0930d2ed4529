"""Splitting long text for WeChat: at most 2048 UTF-8 bytes a message, cut on line boundaries."""

from __future__ import annotations

LIMIT = 2048


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_line(line: str, limit: int) -> list[str]:
    """A single over-long line, cut between characters (never inside one)."""
    pieces, current, size = [], [], 0
    for char in line:
        width = _size(char)
        if size + width > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


def split_text(text: str, limit: int = LIMIT) -> list[str]:
    """The text as a list of messages of at most `limit` bytes, each ending on a whole line."""
    if _size(text) <= limit:
        return [text]
    chunks: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        for piece in _cut_line(line, limit) if _size(line) > limit else [line]:
            if current is None:
                current = piece
            elif _size(current) + 1 + _size(piece) > limit:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n{piece}"
    if current is not None:
        chunks.append(current)
    return chunks
