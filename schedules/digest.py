"""The digest (两汇报): one village's day as of a report time, and roll-ups above village.

Everything is loaded for a whole unit tree in a few set-based queries (`load_day`), then
summarised in memory, so a county of 500 villages costs the same handful of queries as one.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlite_utils

from bot.config import SLOT_NAMES, SLOTS, Config
from handlers.dates import day_label
from handlers.trend import WATCH_FROM, rising
from storage.people import roles_of
from storage.units import MAX_DEPTH

ABOVE_VILLAGE = ("county", "town")
UNASSIGNED = "未分配"


class UnknownUnit(Exception):
    "No unit has this code."


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    level: str
    parent: str | None


class UnitTree:
    """The whole unit table in memory (a county has a few thousand rows at most)."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self.units = {unit.code: unit for unit in units}
        self.children: dict[str, list[str]] = defaultdict(list)
        for unit in sorted(self.units.values(), key=lambda u: u.code):
            if unit.parent:
                self.children[unit.parent].append(unit.code)
        self._village: dict[str, str | None] = {}

    @classmethod
    def load(cls, db: sqlite_utils.Database) -> UnitTree:
        rows = db.conn.execute("SELECT code, name, level, parent FROM units")
        return cls(Unit(*row) for row in rows)

    def get(self, code: str) -> Unit | None:
        return self.units.get(code)

    def ancestors(self, code: str) -> list[str]:
        """The unit and every unit above it, nearest first."""
        found = []
        while code in self.units and code not in found:
            found.append(code)
            code = self.units[code].parent or ""
        return found

    def subtree(self, code: str) -> list[str]:
        """The unit and every unit below it (each once: a cycle, which import refuses, that
        got in by hand does not loop)."""
        found, stack = [code], [code]
        seen = {code}
        while stack:
            current = stack.pop()
            for child in self.children.get(current, []):
                if child not in seen:
                    seen.add(child)
                    found.append(child)
                    stack.append(child)
        return found

    def village_of(self, code: str) -> str | None:
        if code not in self._village:
            self._village[code] = next(
                (c for c in self.ancestors(code) if self.units[c].level == "village"), None
            )
        return self._village[code]

    def villages_under(self, code: str) -> list[str]:
        return sorted(c for c in self.subtree(code) if self.units[c].level == "village")


class Subject(NamedTuple):
    id: int
    name: str
    category: str
    unit: str
    active: bool
    new: bool
    released: bool


class Report(NamedTuple):
    """A contact row as read here (the columns of _REPORT_COLUMNS, in order)."""

    id: int
    subject_id: int
    slot: str
    member_id: int | None
    temperature: float | None
    status: str
    symptoms: str
    reported_at: str


@dataclass
class DayData:
    """What one day of one unit tree looks like as of a moment."""

    day: dt.date
    units: UnitTree
    subjects: list[Subject] = field(default_factory=list)
    reports: Reports = field(default_factory=lambda: Reports())
    # active members of the subjects missing a report in a due slot, in assignment order
    members: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    people: dict[int, str] = field(default_factory=dict)
    needs: list[dict] = field(default_factory=list)
    due: tuple[str, ...] = ()
    # subjects whose temperature rises under the fever line (关注, DESIGN §11): id → entry
    watch: dict[int, dict] = field(default_factory=dict)


class _Clock:
    """Compares stored ISO times with `as_of`; plain string order when the offsets agree."""

    def __init__(self, as_of: dt.datetime | None) -> None:
        self.as_of = as_of
        self.text = as_of.isoformat(timespec="seconds") if as_of else ""

    def after(self, stamp: str) -> bool:
        if self.as_of is None:
            return False
        if len(stamp) == len(self.text) and stamp[19:] == self.text[19:]:
            return stamp > self.text
        value = dt.datetime.fromisoformat(stamp)
        return (value if value.tzinfo else value.replace(tzinfo=self.as_of.tzinfo)) > self.as_of


def _scope(root: str | None) -> tuple[str, str]:
    """SQL prefix and condition restricting subjects `s` to a unit's tree (or everything)."""
    if root is None:
        return "", ""
    return (
        "WITH RECURSIVE tree(code, depth) AS (SELECT :root, 0 UNION ALL"
        " SELECT u.code, t.depth + 1 FROM units u JOIN tree t ON u.parent = t.code"
        f" WHERE t.depth < {MAX_DEPTH}) ",
        " AND s.unit IN (SELECT code FROM tree)",
    )


def _active(start: str, end: str, status: str, released_on: str | None, day: str) -> bool:
    # the same rule as storage.subjects.ACTIVE_ON, applied in memory
    return start <= day <= end and (
        status == "active" or (released_on is not None and day < released_on)
    )


_REPORT_COLUMNS = (
    "c.id, c.subject_id, c.slot, c.member_id, c.temperature, c.status, c.symptoms, c.reported_at"
)
# Above this many subjects, reading the whole day's contacts and filtering in memory is
# cheaper than an index lookup per subject.
_WHOLE_DAY = 5000


def _chunks(
    ids: Sequence[int], size: int = 900, named: bool = False
) -> Iterable[tuple[str, list[int]]]:
    """SQL placeholders (`?` or `:i0, :i1…`) and values, at most `size` at a time."""
    for start in range(0, len(ids), size):
        chunk = list(ids[start : start + size])
        marks = [f":i{n}" for n in range(len(chunk))] if named else ["?"] * len(chunk)
        yield ",".join(marks), chunk


@dataclass
class Reports:
    """The reports of a day as of a moment: every (subject, slot) reported, with its status,
    and the full row of those that are not normal."""

    status: dict[tuple[int, str], str] = field(default_factory=dict)
    flagged: dict[tuple[int, str], Report] = field(default_factory=dict)

    def add(self, report: Report) -> None:
        key = (report.subject_id, report.slot)
        self.status[key] = report.status
        if report.status == "normal":
            self.flagged.pop(key, None)
        else:
            self.flagged[key] = report


def load_reports(
    db: sqlite_utils.Database,
    day: dt.date,
    as_of: dt.datetime | None,
    subject_ids: Sequence[int],
    root: str | None = None,
) -> Reports:
    """The report of each (subject, slot) of `day` as it stood at `as_of` (None: now).

    Current rows are read first, few columns each, the time compared in SQL when its offset
    is as_of's; only when a current row came after `as_of` are the rows it replaced read
    (a digest rebuilt later in the day shows what was known at its time).
    """
    clock = _Clock(as_of)
    wanted = set(subject_ids)
    # 1 = after as_of, 0 = not, NULL = another offset: compare in Python
    later_sql = (
        "CASE WHEN length(c.reported_at) = :length AND substr(c.reported_at, 20) = :offset"
        " THEN c.reported_at > :as_of END"
    )
    columns = f"c.id, c.subject_id, c.slot, c.status, {later_sql}, c.reported_at"
    params = {
        "day": day.isoformat(),
        "length": len(clock.text),
        "offset": clock.text[19:],
        "as_of": clock.text,
    }
    if len(wanted) > _WHOLE_DAY:
        # the whole day (of `root`'s tree: a province read county by county reads each
        # county's contacts once, not the province's once per county)
        prefix, condition = _scope(root)
        scoped = (
            f" AND c.subject_id IN (SELECT s.id FROM subjects s WHERE 1{condition})" if root else ""
        )
        queries = [
            (
                f"{prefix}SELECT {columns} FROM contacts c"
                f" WHERE c.date = :day AND c.current = 1{scoped}",
                [],
            )
        ]
        params["root"] = root
    else:
        queries = [
            (
                f"SELECT {columns} FROM contacts c"
                f" WHERE c.date = :day AND c.current = 1 AND c.subject_id IN ({marks})",
                chunk,
            )
            for marks, chunk in _chunks(sorted(wanted), named=True)
        ]
    found = Reports()
    flagged: list[int] = []
    later: set[tuple[int, str]] = set()
    for sql, chunk in queries:
        chunk_params = params | {f"i{n}": sid for n, sid in enumerate(chunk)}
        for row_id, sid, slot, status, after, stamp in db.conn.execute(sql, chunk_params):
            if sid not in wanted:
                continue
            if as_of is not None and (after if after is not None else clock.after(stamp)):
                later.add((sid, slot))
                continue
            found.status[(sid, slot)] = status
            if status != "normal":
                flagged.append(row_id)
    for marks, chunk in _chunks(flagged):
        rows = db.conn.execute(
            f"SELECT {_REPORT_COLUMNS} FROM contacts c WHERE c.id IN ({marks})", chunk
        )
        for report in map(Report._make, rows):
            found.flagged[(report.subject_id, report.slot)] = report
    for marks, chunk in _chunks(sorted({sid for sid, _ in later})):
        rows = db.conn.execute(
            f"SELECT {_REPORT_COLUMNS} FROM contacts c WHERE c.date = ? AND c.current = 0"
            f" AND c.revoked = 0 AND c.subject_id IN ({marks}) ORDER BY c.id",
            [day.isoformat(), *chunk],
        )
        for report in map(Report._make, rows):
            if (report.subject_id, report.slot) in later and not clock.after(report.reported_at):
                found.add(report)
    return found


def _load_members(db: sqlite_utils.Database, data: DayData, subject_ids: Iterable[int]) -> None:
    for marks, chunk in _chunks(sorted(set(subject_ids))):
        for sid, pid, name in db.conn.execute(
            f"""SELECT a.subject_id, p.id, p.name FROM assignments a
                JOIN people p ON p.id = a.person_id
                WHERE p.active AND a.subject_id IN ({marks})
                ORDER BY a.subject_id, a.position""",
            chunk,
        ):
            data.members.setdefault(sid, []).append((pid, name))
            data.people[pid] = name


def _load_needs(
    db: sqlite_utils.Database, data: DayData, as_of: dt.datetime | None, root: str | None
) -> None:
    prefix, condition = _scope(root)
    clock = _Clock(as_of)
    for need_id, subject, unit, kind, text, created, status, closed in db.conn.execute(
        f"""{prefix}SELECT n.id, s.name, s.unit, n.kind, n.text, n.created_at, n.status,
                   n.closed_at
            FROM needs n JOIN subjects s ON s.id = n.subject_id
            WHERE (n.status = 'open' OR n.closed_at >= :day){condition} ORDER BY n.id""",
        {"day": data.day.isoformat(), "root": root},
    ):
        if clock.after(created):
            continue
        if status != "open" and (as_of is None or not closed or not clock.after(closed)):
            continue
        data.needs.append(
            {"id": need_id, "subject": subject, "kind": kind, "text": text, "at": created}
            | {"_unit": unit}
        )


def scopes(tree: UnitTree) -> list[str | None]:
    """How a job reads a day: tree by tree (the roots: the counties of a province), so it
    holds one county's subjects and reports at a time, not a province's (bench.province:
    ~500 MB for 500,000 subjects); or all at once ([None]) when there is one tree, or units
    that no root reaches (a cycle put in by hand)."""
    roots = sorted(
        code
        for code, unit in tree.units.items()
        if not unit.parent or unit.parent not in tree.units
    )
    if len(roots) < 2 or sum(len(tree.subtree(root)) for root in roots) != len(tree.units):
        return [None]
    return list(roots)


def load_day(
    db: sqlite_utils.Database,
    config: Config,
    day: dt.date,
    as_of: dt.datetime | None,
    root: str | None = None,
    units: UnitTree | None = None,
) -> DayData:
    """Subjects active on `day` or released that morning, their reports, members and needs.

    `root` limits everything to one unit's tree; `as_of` None means the current state.
    """
    prefix, condition = _scope(root)
    today, yesterday = day.isoformat(), (day - dt.timedelta(days=1)).isoformat()
    data = DayData(day=day, units=units or UnitTree.load(db))
    data.due = tuple(
        slot for slot in SLOTS if as_of is None or deadline(config, day, slot) <= as_of
    )
    rows = db.conn.execute(
        f"""{prefix}SELECT s.id, s.name, s.category, s.unit, s.start_date, s.end_date, s.status,
                   s.released_on
            FROM subjects s WHERE s.start_date <= :day AND s.end_date >= :yesterday{condition}
            ORDER BY s.id""",
        {"day": today, "yesterday": yesterday, "root": root},
    )
    for sid, name, category, unit, start, end, status, released_on in rows:
        active = _active(start, end, status, released_on, today)
        # its last day was yesterday: the period ended, or a secretary's 解除 took effect today
        released = not active and _active(start, end, status, released_on, yesterday)
        if active or released:
            data.subjects.append(
                Subject(sid, name, category, unit, active, active and start == today, released)
            )
    active_ids = [s.id for s in data.subjects if s.active]
    # a subject released today in chat was monitored until then: its reports still count
    data.reports = load_reports(db, day, as_of, [s.id for s in data.subjects], root)
    reported = data.reports.status
    missing: set[int] = set()
    for slot in data.due:
        missing.update(sid for sid in active_ids if (sid, slot) not in reported)
    _load_members(db, data, missing)
    flagged = data.reports.flagged.values()
    unknown = {r.member_id for r in flagged if r.member_id is not None} - set(data.people)
    for marks, chunk in _chunks(sorted(unknown)):
        data.people.update(
            db.conn.execute(f"SELECT id, name FROM people WHERE id IN ({marks})", chunk)
        )
    _load_needs(db, data, as_of, root)
    _load_watch(db, config, data, as_of, root)
    return data


def _load_watch(
    db: sqlite_utils.Database,
    config: Config,
    data: DayData,
    as_of: dt.datetime | None,
    root: str | None,
) -> None:
    """The active subjects whose last three readings rise, the last ≥ 37.0 and under the
    fever line. One query reads the readings of the last three days of the candidates only
    (a reading in that band today or yesterday), the time compared in SQL when its offset is
    as_of's (as load_reports does)."""
    prefix, condition = _scope(root)
    # a tree's candidates are found from its subjects (CROSS JOIN keeps them outside): from
    # the days' contacts, each tree scanned the whole province's (bench.province, 100
    # counties: deadline 5-8 -> 66 s, a digest 8 -> 55 s)
    joined = (
        "subjects s CROSS JOIN contacts c ON c.subject_id = s.id"
        if root is not None
        else "contacts c JOIN subjects s ON s.id = c.subject_id"
    )
    clock = _Clock(as_of)
    later_sql = (
        "CASE WHEN length(c.reported_at) = :length AND substr(c.reported_at, 20) = :offset"
        " THEN c.reported_at > :as_of END"
    )
    rows = db.conn.execute(
        f"""{prefix}SELECT c.subject_id, c.date, c.slot, c.temperature, c.status, c.member_id,
                   c.reported_at, {later_sql}
            FROM contacts c WHERE c.current = 1 AND c.revoked = 0
            AND c.temperature IS NOT NULL AND c.date >= :since AND c.date <= :day
            AND c.subject_id IN (
                SELECT c.subject_id FROM {joined}
                WHERE c.date IN (:day, :yesterday) AND c.current = 1
                AND c.temperature >= :low AND c.temperature < :fever{condition})""",
        {
            "day": data.day.isoformat(),
            "yesterday": (data.day - dt.timedelta(days=1)).isoformat(),
            "since": (data.day - dt.timedelta(days=2)).isoformat(),
            "low": WATCH_FROM,
            "fever": config.fever_threshold,
            "root": root,
            "length": len(clock.text),
            "offset": clock.text[19:],
            "as_of": clock.text,
        },
    )
    active = {s.id: s.name for s in data.subjects if s.active}
    readings: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        if row[0] not in active:
            continue
        if as_of is not None and (row[7] if row[7] is not None else clock.after(row[6])):
            continue  # reported after the digest's time
        readings[row[0]].append(row)
    order = {slot: n for n, slot in enumerate(SLOTS)}
    watched = []
    for sid, found in readings.items():
        if len(found) < 3:
            continue
        found.sort(key=lambda r: (r[1], order[r[2]]))
        last = found[-1]
        if last[4] == "abnormal" or not rising([r[3] for r in found], config.fever_threshold):
            continue  # already listed as abnormal, or no trend
        watched.append((sid, found[-3:]))
    member_ids = sorted({last[5] for _, rows3 in watched if (last := rows3[-1])[5] is not None})
    members: dict[int, str] = {}
    for marks, chunk in _chunks(member_ids):
        members.update(db.conn.execute(f"SELECT id, name FROM people WHERE id IN ({marks})", chunk))
    for sid, last3 in sorted(watched):
        last = last3[-1]
        data.watch[sid] = {
            "subject": active[sid],
            "temperatures": [r[3] for r in last3],
            "date": last[1],
            "slot": last[2],
            "member": members.get(last[5], "") if last[5] is not None else "",
            "at": last[6],
        }


def report_time(config: Config, day: dt.date, report: int) -> dt.datetime:
    return dt.datetime.combine(day, config.reports[report - 1], tzinfo=config.tz)


def deadline(config: Config, day: dt.date, slot: str) -> dt.datetime:
    return dt.datetime.combine(day, config.slots[slot].deadline, tzinfo=config.tz)


def resolve_report(
    config: Config, day: dt.date, report: int | None, now: dt.datetime
) -> tuple[int, dt.datetime]:
    """(report number, as_of): a scheduled report's own time, or `now` for an on-demand 汇总."""
    if report is not None:
        if report not in (1, 2):
            raise ValueError(f"report must be 1 or 2, not {report!r}")
        return report, report_time(config, day, report)
    second = report_time(config, day, 2)
    local = now.astimezone(config.tz)
    # 00:00–04:59 still belongs to the day before (its evening reports come in then)
    if (local - dt.timedelta(hours=5)).date() > day:  # a past day: its second, final report
        return 2, second
    return (1 if now < second else 2), local


def _entry(report: Report, name: str, people: dict[int, str], full: bool) -> dict:
    entry: dict = {"subject": name, "slot": report.slot}
    if full:
        entry["temperature"] = report.temperature
        entry["symptoms"] = [s for s in report.symptoms.split("、") if s]
    entry["member"] = people.get(report.member_id, "") if report.member_id else ""
    entry["at"] = report.reported_at
    return entry


def _empty(unit: Unit, config: Config, day: dt.date, report: int, as_of: dt.datetime) -> dict:
    return {
        "unit": unit.code,
        "unit_name": unit.name,
        "date": day.isoformat(),
        "report": report,
        "as_of": as_of.isoformat(timespec="seconds"),
        "active": 0,
        "by_category": dict.fromkeys(config.categories, 0),
        "new_today": [],
        "released_today": [],
        "slots": {slot: {"expected": 0, "reported": 0, "missing": []} for slot in SLOTS},
        "abnormal": [],
        "unreachable": [],
        "absent": [],
        "needs": [],
        "members_missing": [],
        "watch": [],
    }


def summarize(
    data: DayData,
    config: Config,
    unit: Unit,
    subjects: Sequence[Subject],
    needs: Sequence[dict],
    report: int,
    as_of: dt.datetime,
) -> dict:
    """The digest object (DESIGN §7) of these subjects, without `villages`."""
    digest = _empty(unit, config, data.day, report, as_of)
    active = [s for s in subjects if s.active]
    digest["active"] = len(active)
    by_category = digest["by_category"]
    for subject in active:
        by_category[subject.category] = by_category.get(subject.category, 0) + 1
    digest["new_today"] = [s.name for s in active if s.new]
    digest["released_today"] = [s.name for s in subjects if s.released]
    missed: dict[int, list[dict]] = {}
    status, flagged = data.reports.status, data.reports.flagged
    released = [s for s in subjects if s.released]
    for slot in SLOTS:
        reported, missing = 0, []
        due = slot in data.due
        # released today (解除 in chat): counted in the slots it was reported in before that
        counted = [*active, *(s for s in released if (s.id, slot) in status)]
        for subject in counted:
            found = status.get((subject.id, slot))
            if found is None:
                if due:
                    missing.append(subject.name)
                    for pid, _ in data.members.get(subject.id) or [(0, UNASSIGNED)]:
                        missed.setdefault(pid, []).append({"subject": subject.name, "slot": slot})
                continue
            reported += 1
            if found != "normal":
                row = flagged[(subject.id, slot)]
                digest[found].append(_entry(row, subject.name, data.people, found == "abnormal"))
        digest["slots"][slot] = {"expected": len(counted), "reported": reported, "missing": missing}
    digest["needs"] = [{k: v for k, v in need.items() if k != "_unit"} for need in needs]
    digest["watch"] = [data.watch[s.id] for s in active if s.id in data.watch]
    digest["members_missing"] = [
        {"member": data.people.get(pid, UNASSIGNED), "missing": items}
        for pid, items in sorted(missed.items(), key=lambda item: (item[0] == 0, item[0]))
    ]
    return digest


def combine(
    unit: Unit, parts: Sequence[dict], config: Config, day: dt.date, report: int, as_of: dt.datetime
) -> dict:
    """A roll-up: the villages' digests added up, lists joined in village order."""
    digest = _empty(unit, config, day, report, as_of)
    for part in parts:
        digest["active"] += part["active"]
        for category, count in part["by_category"].items():
            digest["by_category"][category] = digest["by_category"].get(category, 0) + count
        for key in (
            "new_today",
            "released_today",
            "abnormal",
            "unreachable",
            "absent",
            "needs",
            "watch",
        ):
            digest[key].extend(part[key])
        for slot, counts in part["slots"].items():
            total = digest["slots"][slot]
            total["expected"] += counts["expected"]
            total["reported"] += counts["reported"]
            total["missing"].extend(counts["missing"])
        digest["members_missing"].extend(part["members_missing"])
    digest["villages"] = list(parts)
    return digest


def digests_for(
    data: DayData, config: Config, codes: Iterable[str], report: int, as_of: dt.datetime
) -> dict[str, dict]:
    """Digests of several units from one DayData; units above village are roll-ups of their
    villages (subjects belong to a village or a grid)."""
    tree = data.units
    by_unit: dict[str, list[Subject]] = defaultdict(list)
    for subject in data.subjects:
        by_unit[subject.unit].append(subject)
    needs_by_unit: dict[str, list[dict]] = defaultdict(list)
    for need in data.needs:
        needs_by_unit[need["_unit"]].append(need)
    below: dict[str, dict] = {}

    def one(code: str) -> dict:
        if code not in below:
            codes = tree.subtree(code)
            subjects = sorted((s for c in codes for s in by_unit.get(c, ())), key=lambda s: s.id)
            needs = sorted(
                (n for c in codes for n in needs_by_unit.get(c, ())), key=lambda n: n["id"]
            )
            below[code] = summarize(data, config, tree.units[code], subjects, needs, report, as_of)
        return below[code]

    result = {}
    for code in codes:
        unit = tree.get(code)
        if unit is None:
            raise UnknownUnit(code)
        if unit.level in ABOVE_VILLAGE:
            parts = [one(v) for v in tree.villages_under(code)]
            result[code] = combine(unit, parts, config, data.day, report, as_of)
        else:
            result[code] = one(code)
    return result


def build_digest(
    db: sqlite_utils.Database,
    config: Config,
    unit_code: str,
    day: dt.date,
    report: int | None,
    now: dt.datetime,
) -> dict:
    """The digest JSON of DESIGN §7 for a unit (a roll-up with `villages` above village)."""
    units = UnitTree.load(db)
    if units.get(unit_code) is None:
        raise UnknownUnit(unit_code)
    report, as_of = resolve_report(config, day, report, now)
    data = load_day(db, config, day, as_of, root=unit_code, units=units)
    return digests_for(data, config, [unit_code], report, as_of)[unit_code]


def names_text(names: Sequence[str], limit: int = 10) -> str:
    """张三、李四…等12人: short enough for one phone line."""
    if len(names) <= limit:
        return "、".join(names)
    return "、".join(names[:limit]) + f"…等{len(names)}人"


def _heading(digest: dict, kind: str) -> str:
    as_of = dt.datetime.fromisoformat(digest["as_of"])
    day = dt.date.fromisoformat(digest["date"])
    return f"【{digest['unit_name']} {kind}·第{digest['report']}次】{day_label(day)} {as_of:%H:%M}"


def _slot_line(slot: str, counts: dict) -> str:
    expected, reported, missing = counts["expected"], counts["reported"], counts["missing"]
    head = f"{SLOT_NAMES[slot]}：应报 {expected}，已报 {reported}"
    if missing:
        return f"{head}，未报 {len(missing)}：{names_text(missing)}"
    if reported >= expected:
        return f"{SLOT_NAMES[slot]}：应报 {expected}，已报齐"
    return f"{head}（未到截止）"


def _flag_line(label: str, entries: Sequence[dict]) -> str:
    if not entries:
        return f"{label}：无"
    shown = [f"{e['subject']}（{SLOT_NAMES[e['slot']]}）" for e in entries]
    return f"{label} {len(entries)} 人次：{names_text(shown, 6)}"


def _abnormal_lines(entries: Sequence[dict], limit: int = 5) -> list[str]:
    if not entries:
        return ["异常：无"]
    lines = [f"异常 {len(entries)} 人次："]
    # the worst first (highest temperature, most symptoms), then the newest: what is cut
    # behind "另 N 人次" is never the case that needs the secretary most
    newest_first = sorted(entries, key=lambda e: e["at"] or "", reverse=True)
    worst_first = sorted(
        newest_first, key=lambda e: (-(e["temperature"] or 0), -len(e["symptoms"]))
    )
    for entry in worst_first[:limit]:
        temperature = f" {entry['temperature']:.1f}℃" if entry["temperature"] is not None else ""
        symptoms = f" {'、'.join(entry['symptoms'])}" if entry["symptoms"] else ""
        member = f"，{entry['member']}" if entry["member"] else ""
        lines.append(
            f"· {entry['subject']}{temperature}{symptoms}（{SLOT_NAMES[entry['slot']]}{member}）"
        )
    if len(entries) > limit:
        lines.append(f"· …另 {len(entries) - limit} 人次，见详情")
    return lines


def digest_text(digest: dict, link: str) -> str:
    """The digest as a short phone message (a roll-up gets one line per village)."""
    if "villages" in digest:
        return rollup_text(digest, link)
    categories = "、".join(f"{name} {count}" for name, count in digest["by_category"].items())
    lines = [_heading(digest, "汇报"), f"在管 {digest['active']} 人：{categories}"]
    if digest["new_today"]:
        lines.append(f"今日新增 {len(digest['new_today'])} 人：{names_text(digest['new_today'])}")
    if digest["released_today"]:
        released = digest["released_today"]
        lines.append(f"今日解除 {len(released)} 人：{names_text(released)}")
    if digest["active"]:
        lines.extend(_slot_line(slot, counts) for slot, counts in digest["slots"].items())
    lines.extend(_abnormal_lines(digest["abnormal"]))
    lines.append(_flag_line("联系不上", digest["unreachable"]))
    lines.append(_flag_line("外出", digest["absent"]))
    if digest.get("watch"):
        lines.append(watch_line(digest["watch"]))
    needs = digest["needs"]
    if needs:
        shown = [f"#{n['id']} {n['subject']}（{n['kind']}）{n['text']}".rstrip() for n in needs]
        lines.append(f"待办需求 {len(needs)} 件：{names_text(shown, 4)}")
    if digest["members_missing"]:
        parts = [f"{m['member']}{len(m['missing'])}" for m in digest["members_missing"]]
        lines.append(f"未报网格员（人次）：{names_text(parts, 6)}")
    lines.append(f"查看详情：{link}")
    return "\n".join(lines)


def watch_line(entries: Sequence[dict]) -> str:
    """关注 (体温连续上升): 张三 36.8→37.0→37.2（晚）."""
    shown = [
        f"{e['subject']} {'→'.join(f'{t:.1f}' for t in e['temperatures'])}"
        f"（{SLOT_NAMES[e['slot']]}）"
        for e in entries
    ]
    return f"关注 {len(entries)} 人（体温连续上升，未到发热线）：{names_text(shown, 4)}"


def _totals(digest: dict) -> str:
    slots = digest["slots"]
    return " ".join(
        f"{SLOT_NAMES[slot]}{slots[slot]['reported']}/{slots[slot]['expected']}" for slot in SLOTS
    )


def _counts(digest: dict) -> dict[str, int]:
    return {
        "未报": sum(len(c["missing"]) for c in digest["slots"].values()),
        "异常": len(digest["abnormal"]),
        "联系不上": len(digest["unreachable"]),
        "外出": len(digest["absent"]),
        "需求": len(digest["needs"]),
        "关注": len(digest.get("watch", [])),
    }


def rollup_text(digest: dict, link: str) -> str:
    """A roll-up above village: totals, then one line per village."""
    counts = _counts(digest)
    lines = [
        _heading(digest, "汇总"),
        f"{len(digest['villages'])} 个村(社)，在管 {digest['active']} 人"
        f"（今日新增 {len(digest['new_today'])}，解除 {len(digest['released_today'])}）",
        f"已报/应报：{_totals(digest)}",
        "，".join(f"{label} {count}" for label, count in counts.items()),
        "各村：",
    ]
    for village in digest["villages"]:
        extra = " ".join(f"{k}{v}" for k, v in _counts(village).items() if v)
        line = f"{village['unit_name']}：在管{village['active']}"
        if village["active"]:
            line += f" {_totals(village)}"
        lines.append(f"{line} {extra}".rstrip())
    lines.append(f"查看详情：{link}")
    return "\n".join(lines)


def digest_recipients(tree: UnitTree, people: Iterable[dict]) -> dict[str, list[dict]]:
    """Village → its secretaries (at it or its grids); above → secretaries and monitors there:
    who gets a unit's digest, and its weekly pack."""
    found: dict[str, list[dict]] = defaultdict(list)
    for person in people:
        unit = tree.get(person["unit"])
        if unit is None:
            continue
        roles = roles_of(person)
        if unit.level in ABOVE_VILLAGE:
            if roles & {"secretary", "monitor"}:
                found[unit.code].append(person)
        elif "secretary" in roles:
            village = tree.village_of(unit.code)
            if village:
                found[village].append(person)
    return found
