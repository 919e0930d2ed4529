"""The table of realistic reports (tests/data/reports.jsonl), scored per phenomenon.

Each line: {"tag", "text", "names", "entries", "problems"} and optionally "at" (HH:MM, default
08:30), "slot" ("morning/explicit"; default "<slot>/time" as the clock gives) and
"known_wrong" (why the parser still gets it wrong). An entry is "name temperature status
[symptoms] [bulk]" (temperature "-" for none), a problem "reason" or "reason -> a,b" (the
candidates of an ambiguous name or the subject of a bad temperature). What counts is what
is recorded and asked: notes and the quoted fragments are left out.

    .venv/bin/python -m tests.report_accuracy      # accuracy per tag
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from pathlib import Path

from handlers.parser import ParseResult, parse_reply

TABLE = Path(__file__).with_name("data") / "reports.jsonl"
DAY = datetime.date(2026, 3, 2)


def load() -> list[dict]:
    with TABLE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def when(row: dict) -> datetime.datetime:
    hour, minute = map(int, row.get("at", "08:30").split(":"))
    return datetime.datetime.combine(DAY, datetime.time(hour, minute))


def seen(result: ParseResult) -> dict:
    """What a row compares: entries and problems in the table's notation, and the slot."""
    entries = []
    for e in result.entries:
        parts = [e.name, "-" if e.temperature is None else f"{e.temperature:g}", e.status]
        if e.symptoms:
            parts.append("、".join(e.symptoms))
        if e.bulk:
            parts.append("bulk")
        entries.append(" ".join(parts))
    problems = [
        p.reason
        + (
            " -> " + ",".join(p.candidates)
            if p.candidates and p.reason in ("ambiguous_name", "bad_temperature")
            else ""
        )
        for p in result.problems
    ]
    return {"entries": entries, "problems": problems, "slot": f"{result.slot}/{result.slot_source}"}


def expected(row: dict, result: ParseResult) -> dict:
    slot = row.get("slot") or f"{result.slot}/time"
    return {"entries": row["entries"], "problems": row["problems"], "slot": slot}


def check(row: dict) -> tuple[bool, dict, dict]:
    """(right, what the parser gave, what the table expects) for one row."""
    result = parse_reply(row["text"], row["names"], when(row))
    got, want = seen(result), expected(row, result)
    return got == want, got, want


def accuracy(rows: list[dict] | None = None) -> dict[str, tuple[int, int]]:
    """tag → (right, total)."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for row in load() if rows is None else rows:
        total[row["tag"]] += 1
        right[row["tag"]] += check(row)[0]
    return {tag: (right[tag], total[tag]) for tag in sorted(total)}


def table(scores: dict[str, tuple[int, int]]) -> str:
    lines = [f"{'tag':<22} {'right':>5} {'of':>4} {'accuracy':>9}"]
    for tag, (good, count) in scores.items():
        lines.append(f"{tag:<22} {good:>5} {count:>4} {good / count:>9.0%}")
    good = sum(g for g, _ in scores.values())
    count = sum(c for _, c in scores.values())
    lines.append(f"{'all':<22} {good:>5} {count:>4} {good / count:>9.0%}")
    return "\n".join(lines)


if __name__ == "__main__":
    rows = load()
    print(table(accuracy(rows)))
    wrong = [(row, check(row)) for row in rows]
    for row, (ok, got, want) in wrong:
        if not ok:
            why = f"  [known: {row['known_wrong']}]" if "known_wrong" in row else ""
            print(f"\n✗ {row['tag']}: {row['text']!r}{why}\n  got  {got}\n  want {want}")
