"""The weekly pack (每周会商, DESIGN §11): a unit's week — subjects, each member's record (考核),
problems and the 请核实 flags — as JSON, text and the Monday send; and the daily flag note
to monitors (督查)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import sqlite_utils

from bot.config import Config
from bot.links import review_link
from handlers.dates import day_label
from schedules.digest import ABOVE_VILLAGE, UnitTree, UnknownUnit, names_text
from schedules.supervision import (
    FLAG_CN,
    Activity,
    Flag,
    all_flags,
    load_activity,
    member_records,
    records_by_member,
    within,
)
from storage.needs import problems_by_unit, week_problems
from storage.outbox import send_key
from storage.people import roles_of
from storage.units import MAX_DEPTH

Send = Callable[[dict, str, str, str], bool]
_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$")


class BadWeek(ValueError):
    "Not an ISO week like 2026-W10."


def week_start(text: str) -> dt.date:
    """The Monday of an ISO week written 2026-W10."""
    match = _WEEK.match(text.strip().upper())
    if not match:
        raise BadWeek(f"expected a week like 2026-W10, got {text!r}")
    try:
        return dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise BadWeek(f"no such week: {text!r}") from None


def week_name(start: dt.date) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _tree(root: str) -> str:
    return (
        "WITH RECURSIVE tree(code, depth) AS (SELECT :root, 0 UNION ALL"
        " SELECT u.code, t.depth + 1 FROM units u JOIN tree t ON u.parent = t.code"
        f" WHERE t.depth < {MAX_DEPTH}) "
    )


def _last_day(subject: dict) -> str:
    """The last day a subject was (or will be) monitored."""
    if subject["status"] == "active" or not subject["released_on"]:
        return subject["end_date"]
    before = dt.date.fromisoformat(subject["released_on"]) - dt.timedelta(days=1)
    return min(subject["end_date"], before.isoformat())


WeekSubjects = tuple[dict[str, list[dict]], dict[str, set[int]]]


def week_subject_rows(
    db: sqlite_utils.Database, unit: str, start: dt.date, end: dt.date
) -> WeekSubjects:
    """What `week_subjects` counts for a unit's tree, by unit: the subjects of the week (and
    the day before), and those with an abnormal report in it."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for row in db.conn.execute(
        f"""{_tree(unit)}SELECT s.id, s.start_date, s.end_date, s.status, s.released_on, s.unit
            FROM subjects s WHERE s.unit IN (SELECT code FROM tree)
            AND s.start_date <= :end AND s.end_date >= :before""",
        {
            "root": unit,
            "end": end.isoformat(),
            "before": (start - dt.timedelta(days=1)).isoformat(),
        },
    ):
        rows[row[5]].append(
            dict(zip(("id", "start_date", "end_date", "status", "released_on"), row, strict=False))
        )
    abnormal: dict[str, set[int]] = defaultdict(set)
    for sid, code in db.conn.execute(
        f"""{_tree(unit)}SELECT DISTINCT c.subject_id, s.unit FROM contacts c
            JOIN subjects s ON s.id = c.subject_id
            WHERE c.current = 1 AND c.status = 'abnormal' AND c.date BETWEEN :first AND :last
            AND s.unit IN (SELECT code FROM tree)""",
        {"root": unit, "first": start.isoformat(), "last": end.isoformat()},
    ):
        abnormal[code].add(sid)
    return rows, abnormal


def week_subjects(
    db: sqlite_utils.Database,
    unit: str,
    start: dt.date,
    end: dt.date,
    read: tuple[WeekSubjects, Iterable[str]] | None = None,
) -> dict:
    """Subjects monitored on a day of the week, begun in it, released in it (their last day
    was the day before one of its days) and with an abnormal report in it. `read`: the rows
    of a tree holding the unit's (`week_subject_rows`) and the unit's tree's units."""
    (by_unit, abnormal_by_unit), units = read or (week_subject_rows(db, unit, start, end), None)
    if units is None:
        units = list(by_unit)
    rows = [row for code in units for row in by_unit.get(code, [])]
    first, last = start.isoformat(), end.isoformat()
    before = (start - dt.timedelta(days=1)).isoformat()
    active = [r for r in rows if r["start_date"] <= last and _last_day(r) >= first]
    abnormal = len(set().union(*(abnormal_by_unit.get(code, set()) for code in units)))
    return {
        "active": len(active),
        "new": sum(first <= r["start_date"] <= last for r in rows),
        "released": sum(
            r["start_date"] <= _last_day(r) and before <= _last_day(r) < last for r in rows
        ),
        "abnormal": abnormal,
    }


def _root(tree: UnitTree, code: str) -> str | None:
    """The root above a unit; None when a cycle leaves it without one."""
    if code not in tree.units:
        return None
    top = tree.ancestors(code)[-1]
    parent = tree.units[top].parent
    return None if parent and parent in tree.units else top


def _descendants(tree: UnitTree, code: str) -> list[str]:
    """storage.units.descendants from the tree in memory: the unit first, then by depth."""
    if code not in tree.units:
        return []
    found, level, seen = [code], [code], {code}
    for _ in range(MAX_DEPTH):
        level = sorted({c for unit in level for c in tree.children.get(unit, [])} - seen)
        seen.update(level)
        found += level
    return found


def _limited(tree: UnitTree, code: str) -> set[str]:
    """The units `_tree(code)` reads: the unit and those below it, down to MAX_DEPTH."""
    found, level = {code}, [code]
    for _ in range(MAX_DEPTH):
        level = [child for unit in level for child in tree.children.get(unit, [])]
        found.update(level)
    return found


def findings(
    db: sqlite_utils.Database,
    config: Config,
    tree: UnitTree,
    codes: list[str],
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    records: bool = True,
) -> Iterator[tuple[str, list[Flag], list[dict]]]:
    """(unit, flags, members' records) of each unit's tree over [start, end], as
    `load_activity` of that unit gives them, read one root (county) at a time: a unit below
    its root takes its members' findings from the root's (`within`), so a county is read and
    judged once, not once per village, town and county (bench.province: 10 counties' packs
    12 s, quadratic). A unit whose members reach outside it, or a tree with a cycle or
    deeper than the SQL's limit, is read by itself."""
    roots: dict[str, list[str]] = defaultdict(list)
    alone = []
    for code in codes:
        top = _root(tree, code) if code in tree.units else code
        if top is None:  # a cycle: no root reaches it
            alone.append(code)
        else:
            roots[top].append(code)
    for root, below in sorted(roots.items()):
        activity = load_activity(db, config, root, start, end, now)
        flags = all_flags(activity, config.supervision)
        kept = records_by_member(activity, flags) if records else {}
        reach = _limited(tree, root)
        for code in below:
            units = _limited(tree, code)
            members = within(activity, units) if units <= reach else None
            if members is None:
                alone.append(code)
                continue
            chosen = set(members)
            yield (
                code,
                [flag for flag in flags if flag.member_id in chosen],
                [kept[pid] for pid in members if pid in kept],
            )
        del activity, flags, kept
    for code in alone:
        activity = load_activity(db, config, code, start, end, now)
        flags = all_flags(activity, config.supervision)
        yield code, flags, member_records(activity, flags) if records else []


def build_review(
    db: sqlite_utils.Database,
    config: Config,
    unit: str,
    start: dt.date,
    now: dt.datetime,
    activity: Activity | None = None,
    found: tuple[list[Flag], list[dict]] | None = None,
    problems: tuple[dict[str, list[dict]], list[str]] | None = None,
    subjects: tuple[WeekSubjects, Iterable[str]] | None = None,
) -> dict:
    """The pack of the week beginning `start` (a Monday) for a unit's tree, as of `now`;
    `found`: its flags and members' records already judged (`findings`); `problems`: the
    ledger by unit and the unit's descendants (storage.needs.week_problems)."""
    row = db.conn.execute("SELECT code, name FROM units WHERE code = ?", [unit]).fetchone()
    if row is None:
        raise UnknownUnit(unit)
    end = start + dt.timedelta(days=6)
    if found is None:
        activity = activity or load_activity(db, config, unit, start, end, now)
        flags = all_flags(activity, config.supervision)
        found = flags, member_records(activity, flags)
    flags, members = found
    return {
        "unit": row[0],
        "unit_name": row[1],
        "week": week_name(start),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "subjects": week_subjects(db, unit, start, end, subjects),
        "members": members,
        "problems": week_problems(db, unit, start, end, now, problems),
        "flags": [flag.as_json() for flag in flags],
    }


def on_time_share(member: dict) -> float | None:
    return member["on_time"] / member["expected"] if member["expected"] else None


def review_text(pack: dict, link: str) -> str:
    """The pack as a phone message: the totals, the members to look at, the flags."""
    start, end = dt.date.fromisoformat(pack["from"]), dt.date.fromisoformat(pack["to"])
    subjects, problems, members = pack["subjects"], pack["problems"], pack["members"]
    expected = sum(m["expected"] for m in members)
    on_time = sum(m["on_time"] for m in members)
    lines = [
        f"【{pack['unit_name']} 每周会商】{pack['week']}（{day_label(start)}—{day_label(end)}）",
        f"在管 {subjects['active']} 人，新增 {subjects['new']}，解除 {subjects['released']}，"
        f"出现异常 {subjects['abnormal']} 人",
    ]
    if expected:
        late = sum(m["late"] for m in members)
        missed = sum(m["missed"] for m in members)
        lines.append(
            f"联系 应报 {expected}，按时 {on_time}（{on_time / expected:.0%}），迟报 {late}，"
            f"未报 {missed}"
        )
    behind = sorted(
        (m for m in members if m["expected"] and (m["late"] or m["missed"])),
        key=lambda m: (on_time_share(m) or 0, m["member"]),
    )
    if behind:
        shown = [f"{m['member']}（迟{m['late']} 未{m['missed']}）" for m in behind]
        lines.append(f"需督促：{names_text(shown, 6)}")
    lines.append(
        f"问题 新增 {problems['opened']}，办结 {problems['closed']}，未办结 {problems['open']}"
        + (f"（超期 {problems['overdue']}）" if problems["overdue"] else "")
    )
    if pack["flags"]:
        lines.append(f"请核实 {len(pack['flags'])} 条：")
        for flag in pack["flags"][:5]:
            lines.append(f"· {flag['member']}：{FLAG_CN[flag['kind']]}")
        if len(pack["flags"]) > 5:
            lines.append(f"· …另 {len(pack['flags']) - 5} 条，见详情")
    else:
        lines.append("请核实：无")
    lines.append(f"查看详情：{link}")
    return "\n".join(lines)


def review_recipients(tree: UnitTree, people: list[dict]) -> dict[str, list[dict]]:
    """Every secretary: their village's pack; monitors (and secretaries) above villages:
    their unit's roll-up."""
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


def _people(db: sqlite_utils.Database) -> list[dict]:
    return list(db.query("SELECT * FROM people WHERE active ORDER BY id"))


def weekly_review(db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime) -> int:
    """Monday's job: the past week's pack to its recipients, once per (unit, person, week)."""
    start = monday_of(now.date()) - dt.timedelta(days=7)
    tree = UnitTree.load(db)
    recipients = review_recipients(tree, _people(db))
    judged = {
        code: (flags, records)
        for code, flags, records in findings(
            db, config, tree, sorted(recipients), start, start + dt.timedelta(days=6), now
        )
    }
    ledger = problems_by_unit(db)
    read: dict[str, WeekSubjects] = {}  # the last root's subjects of the week
    sent = 0
    for code, people in sorted(recipients.items()):
        below = _descendants(tree, code)
        found = judged.pop(code)
        subjects = None
        root = _root(tree, code)
        if root is not None and set(below) <= _limited(tree, root):
            if root not in read:
                read.clear()
                read[root] = week_subject_rows(db, root, start, start + dt.timedelta(days=6))
            subjects = (read[root], below)
        pack = build_review(
            db, config, code, start, now, found=found, problems=(ledger, below), subjects=subjects
        )
        if not pack["subjects"]["active"] and not pack["members"]:
            continue
        text = review_text(pack, review_link(db, config, code, start, now))
        for person in people:
            target = f"{code}/person:{person['id']}"
            key = send_key(kind="review", target=target, day=start, slot="week")
            sent += int(send(person, "review", text, key))
    return sent


def flags_text(flags: list[Flag], day: dt.date, villages: dict[int, str]) -> str:
    lines = [f"【督查提示·请核实】{day_label(day)}发现 {len(flags)} 条情况，仅供核实，不作结论："]
    for flag in flags:
        where = f"（{villages[flag.member_id]}）" if villages.get(flag.member_id) else ""
        lines.append(f"· {flag.member}{where} {FLAG_CN[flag.kind]}：{flag.detail}")
    return "\n".join(lines)


def daily_flags(db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime) -> int:
    """Each monitor gets the flags first raised today in the units they watch (the last 7
    days counted), one message a day, none when there is nothing new."""
    day = now.date()
    tree = UnitTree.load(db)
    people = _people(db)
    monitors = [p for p in people if "monitor" in roles_of(p) and tree.get(p["unit"])]
    if not monitors:
        return 0
    start = day - dt.timedelta(days=6)
    unit_of = {p["id"]: p["unit"] for p in people}
    watched = sorted({monitor["unit"] for monitor in monitors})
    by_root = {
        code: [f for f in flags if f.day == day]
        for code, flags, _ in findings(db, config, tree, watched, start, day, now, records=False)
    }
    sent = 0
    for monitor in monitors:
        root = monitor["unit"]
        flags = by_root[root]
        if not flags:
            continue
        villages = {}
        for flag in flags:
            village = tree.village_of(unit_of.get(flag.member_id, ""))
            if village and village != tree.village_of(root):
                villages[flag.member_id] = tree.units[village].name
        text = flags_text(flags, day, villages)
        key = send_key(kind="review", target=f"person:{monitor['id']}", day=day, slot="flags")
        sent += int(send(monitor, "review", text, key))
    return sent
