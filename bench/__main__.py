"""`make bench`: every budget of DESIGN §9, measured here, printed as one table.

Each part is a module with `run() -> list[dict]` giving rows {name, budget, measured, unit,
pass}; the table goes to stdout and the rows to bench/results.json.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

PARTS = (
    "bench.parser",
    "bench.callback",
    "bench.routine",
    "bench.load",
    "bench.roster",
    "bench.province",
)
RESULTS = Path(__file__).with_name("results.json")


def format_table(rows: list[dict]) -> str:
    header = ("budget", "measured", "pass", "what")
    lines = [f"{header[0]:<24} {header[1]:>16}  {header[2]:<4}  {header[3]}"]
    for row in rows:
        measured = f"{row['measured']:,.2f} {row['unit']}"
        verdict = "—" if row["pass"] is None else "PASS" if row["pass"] else "FAIL"
        lines.append(f"{row['budget']:<24} {measured:>16}  {verdict:<4}  {row['name']}")
    return "\n".join(lines)


def merged(earlier: list[dict], rows: list[dict]) -> list[dict]:
    """The earlier results with `rows` in place of theirs (by name), new ones at the end."""
    fresh = {row["name"]: row for row in rows}
    kept = [fresh.pop(row["name"], row) for row in earlier]
    return kept + list(fresh.values())


def main(parts: list[str]) -> int:
    """Every part, or only those named (`python -m bench bench.roster`): a partial run
    updates its own rows of results.json and keeps the others."""
    rows: list[dict] = []
    for name in parts or PARTS:
        print(f"… {name}", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(name).run())
    saved = rows
    if parts and RESULTS.exists():
        saved = merged(json.loads(RESULTS.read_text(encoding="utf-8")), rows)
    RESULTS.write_text(json.dumps(saved, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(format_table(rows))
    budgets = [row for row in rows if row["pass"] is not None]  # not the references
    print(f"\n{sum(r['pass'] for r in budgets)} of {len(budgets)} budgets met; rows in {RESULTS}")
    return 0 if all(r["pass"] for r in budgets) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
