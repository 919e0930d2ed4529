"""关注 (DESIGN §11): a temperature rising under the fever line, read from a subject's readings."""

from __future__ import annotations

from collections.abc import Sequence

WATCH_FROM = 37.0  # the last of the rising readings is at least this, and under the fever line
RISING = 3  # readings up in a row


def rising(temperatures: Sequence[float], fever_threshold: float) -> bool:
    """Whether the last three readings (oldest first) go up each time, the last one
    ≥ 37.0 and below the fever threshold."""
    last = list(temperatures[-RISING:])
    if len(last) < RISING:
        return False
    climbing = all(a < b for a, b in zip(last, last[1:], strict=False))
    return climbing and WATCH_FROM <= last[-1] < fever_threshold
