"""The weekly pack (每周会商, DESIGN §11): a unit's week — subjects, each member's record (考核),
problems and the 请核实 flags — as JSON, text and the Monday send; and the daily flag note
to monitors (督查)."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import logging
import multiprocessing
import os
import re
import signal
import sqlite3
import threading
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import sqlite_utils

from bot.config import Config
from bot.links import review_link
from handlers.dates import day_label
from schedules.digest import UnitTree, UnknownUnit, digest_recipients, names_text
from schedules.supervision import (
    FLAG_CN,
    Activity,
    Flag,
    all_flags,
    load_activity,
    member_records,
    records_by_member,
    unit_totals,
    within,
)
from storage.db import BUSY_TIMEOUT_MS, database_file
from storage.needs import problems_by_unit, week_problems
from storage.outbox import send_key
from storage.people import roles_of
from storage.units import MAX_DEPTH

log = logging.getLogger("gridwatch.review")
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


def week_label(start: dt.date) -> str:
    """第10周（3月2日—3月8日）: the week as the chat says it (2026-W10 is for files)."""
    end = start + dt.timedelta(days=6)
    return f"第{start.isocalendar()[1]}周（{day_label(start)}—{day_label(end)}）"


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
    """What `week_subjects` counts for a unit's tree, by unit: the subjects of [start, end]
    (and the day before), and those with an abnormal report in it (`end`: the week's end or
    today, whichever is first)."""
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
    # the abnormal reports of the tree's subjects through the index on (subject_id, date,
    # slot): a query by the tree's units scanned the whole province's week, once per county
    unit_of = dict(
        db.conn.execute(
            f"{_tree(unit)}SELECT s.id, s.unit FROM subjects s"
            " WHERE s.unit IN (SELECT code FROM tree)",
            {"root": unit},
        )
    )
    abnormal: dict[str, set[int]] = defaultdict(set)
    ids = sorted(unit_of)
    for low in range(0, len(ids), 900):
        chunk = ids[low : low + 900]
        for (sid,) in db.conn.execute(
            f"SELECT DISTINCT subject_id FROM contacts WHERE current = 1"
            f" AND subject_id IN ({','.join('?' * len(chunk))}) AND date BETWEEN ? AND ?"
            " AND status = 'abnormal'",
            [*chunk, start.isoformat(), end.isoformat()],
        ):
            abnormal[unit_of[sid]].add(sid)
    return rows, abnormal


NO_SUBJECTS = {"active": 0, "new": 0, "released": 0, "abnormal": 0}


def week_subjects(
    db: sqlite_utils.Database,
    unit: str,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    read: tuple[WeekSubjects, Iterable[str]] | None = None,
) -> dict:
    """Subjects monitored on a day of the week, begun in it, released in it (their last day
    was the day before one of its days) and with an abnormal report in it — each counted as
    of min(now, the week's end): a week still running has released (at 00:05 the day after
    the last day) only those whose last day has passed, and the days to come count for
    nothing. `read`: the rows of a tree holding the unit's (`week_subject_rows` over the
    same days) and the unit's tree's units."""
    end = min(end, now.date())
    if end < start:  # a week yet to come
        return dict(NO_SUBJECTS)
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


class Found(NamedTuple):
    """A unit's findings over a range, as `load_activity` of the unit's tree gives them."""

    flags: list[Flag]
    members: list[dict]  # the members' records (member_records)
    totals: dict  # unit_totals


Below = list[tuple[str, frozenset[str] | None]]  # units under a root, with their trees


def _judge(
    db: sqlite_utils.Database,
    config: Config,
    root: str,
    below: Below,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    records: bool,
) -> tuple[list[tuple[str, Found]], list[str]]:
    """One root's read and judgement, shared by the units below it that `within` finds
    wholly inside their tree (None: not under the root's limit); the others are returned
    to be read by themselves."""
    found: list[tuple[str, Found]] = []
    alone: list[str] = []
    with _collector_paused():
        activity = load_activity(db, config, root, start, end, now)
        flags = all_flags(activity, config.supervision)
        kept = records_by_member(activity, flags) if records else {}
        for code, units in below:
            members = within(activity, set(units)) if units is not None else None
            if members is None:
                alone.append(code)
                continue
            chosen = set(members)
            found.append(
                (
                    code,
                    Found(
                        [flag for flag in flags if flag.member_id in chosen],
                        [kept[pid] for pid in members if pid in kept],
                        unit_totals(activity, members) if records else {},
                    ),
                )
            )
    return found, alone


def _judge_apart(
    task: tuple[str, Config, str, Below, dt.date, dt.date, dt.datetime, bool],
) -> tuple[list[tuple[str, Found]], list[str]]:
    """`_judge` in a worker process, on a read-only connection of its own."""
    path, *rest = task
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"  # a folder named d#1 stays itself
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return _judge(sqlite_utils.Database(conn), *rest)  # type: ignore[arg-type]
    finally:
        conn.close()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a county is read and judged: its ~75,000 reports
    and their indexes hold no cycles, and the collector's passes over them cost ~15 %."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def job_workers() -> int:
    """Processes that judge counties side by side in the Monday pack and the flags note:
    GRIDWATCH_JOB_WORKERS (at most the machine's cores), else up to 2."""
    cores = os.cpu_count() or 1
    value = os.environ.get("GRIDWATCH_JOB_WORKERS", "").strip()
    if value:
        try:
            return max(1, min(int(value), cores))
        except ValueError:
            log.warning("GRIDWATCH_JOB_WORKERS=%r is not a number: using %s", value, min(2, cores))
    return max(1, min(2, cores))


_POOLS: set[ProcessPoolExecutor] = set()  # the pools judging now (stop_job_workers)
_POOLS_LOCK = threading.Lock()


def _die_with_parent(parent: int) -> None:
    """A worker process ends when the process that started it does (Linux: even when it
    was killed, SIGKILL included), so a serving worker killed mid-job leaves no orphans."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's stop_job_workers still ends it
        pass
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


def stop_job_workers() -> None:
    """Cancel what the job processes have not started and end them (a serving process that
    exits: its job's pool must not hold the exit up for the rest of a province)."""
    with _POOLS_LOCK:
        pools = list(_POOLS)
    for pool in pools:
        _end(pool)


def _end(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


POOL_FROM = 4  # roots: fewer are judged in the job's own process (a pool starts in ~1 s)


def findings(
    db: sqlite_utils.Database,
    config: Config,
    tree: UnitTree,
    codes: list[str],
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    records: bool = True,
    workers: int | None = None,
) -> Iterator[tuple[str, Found]]:
    """(unit, its findings) of each unit's tree over [start, end], as `load_activity` of that
    unit gives them, read one root (county) at a time: a unit below its root takes its
    members' findings from the root's (`within`), so a county is read and judged once, not
    once per village, town and county. A unit whose members reach outside it, or a tree
    with a cycle or deeper than the SQL's limit, is read by itself. `records` False: the
    flags only. With `workers` (default `job_workers()`) above 1 and POOL_FROM roots or
    more, the roots are judged in that many worker processes side by side (each holds one
    county at a time; this process only what they found), in the same order."""
    roots: dict[str, list[str]] = defaultdict(list)
    alone = []
    for code in codes:
        top = _root(tree, code) if code in tree.units else code
        if top is None:  # a cycle: no root reaches it
            alone.append(code)
        else:
            roots[top].append(code)
    tasks: list[tuple[str, Below]] = []
    for root, below in sorted(roots.items()):
        reach = _limited(tree, root)
        units = [(code, _limited(tree, code)) for code in below]
        tasks.append((root, [(code, frozenset(u) if u <= reach else None) for code, u in units]))
    path = database_file(db.conn)
    workers = job_workers() if workers is None else workers
    done = 0
    if workers > 1 and path and len(tasks) >= POOL_FROM:
        pool = ProcessPoolExecutor(
            min(workers, len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),  # no SQLite handle forked
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        with _POOLS_LOCK:
            _POOLS.add(pool)
        finished = False
        try:
            judged = pool.map(
                _judge_apart,
                [(path, config, *task, start, end, now, records) for task in tasks],
            )
            for found, apart in judged:
                done += 1
                yield from found
                alone += apart
            finished = True
        except Exception:  # a worker could not start, died or failed: the rest in here
            log.exception("review: a worker process failed; judging the rest in this one")
        finally:
            with _POOLS_LOCK:
                _POOLS.discard(pool)
            if finished:
                pool.shutdown(wait=True)
            else:  # failed, stopped (stop_job_workers), or the caller gave up mid-way
                _end(pool)
    for root, below in tasks[done:]:
        found, apart = _judge(db, config, root, below, start, end, now, records)
        yield from found
        alone += apart
    for code in alone:
        with _collector_paused():
            activity = load_activity(db, config, code, start, end, now)
            flags = all_flags(activity, config.supervision)
            found_alone = Found(
                flags,
                member_records(activity, flags) if records else [],
                unit_totals(activity) if records else {},
            )
        yield code, found_alone


def build_review(
    db: sqlite_utils.Database,
    config: Config,
    unit: str,
    start: dt.date,
    now: dt.datetime,
    activity: Activity | None = None,
    found: Found | None = None,
    problems: tuple[dict[str, list[dict]], list[str]] | None = None,
    subjects: tuple[WeekSubjects, Iterable[str]] | None = None,
    name: str | None = None,
) -> dict:
    """The pack of the week beginning `start` (a Monday) for a unit's tree, as of `now`;
    `found`: its findings already judged (`findings`); `problems`: the ledger by unit and
    the unit's descendants (storage.needs.week_problems); `subjects`: the week's subjects
    of a tree holding it and its units (`week_subjects`); `name`: the unit's name."""
    if name is None:
        row = db.conn.execute("SELECT code, name FROM units WHERE code = ?", [unit]).fetchone()
        if row is None:
            raise UnknownUnit(unit)
        name = row[1]
    end = start + dt.timedelta(days=6)
    if found is None:
        activity = activity or load_activity(db, config, unit, start, end, now)
        flags = all_flags(activity, config.supervision)
        found = Found(flags, member_records(activity, flags), unit_totals(activity))
    return {
        "unit": unit,
        "unit_name": name,
        "week": week_name(start),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "subjects": week_subjects(db, unit, start, end, now.astimezone(config.tz), subjects),
        "members": found.members,
        "problems": week_problems(db, unit, start, end, now, problems),
        "flags": [flag.as_json() for flag in found.flags],
        # the unit's contacts once per subject-slot (a 多对一 subject counts once, as in the
        # digests), where the members' records each count their shared subjects
        "totals": found.totals,
    }


def on_time_share(member: dict) -> float | None:
    return member["on_time"] / member["expected"] if member["expected"] else None


PROBLEM_COUNTS = ("opened", "closed", "open")
NOTHING_EXPECTED = "该周没有应报的联系（没有向成员发出、已到截止时间的提示）"
NOTHING_TO_REVIEW = f"{NOTHING_EXPECTED}，也没有问题记录，无可会商的内容。"


def expected_in(pack: dict) -> int:
    """How many subject-slots the pack's week asked for (0: nothing to review)."""
    return pack["totals"]["expected"]


def review_text(pack: dict, link: str) -> str:
    """The pack as a phone message: the totals, the members to look at, the flags."""
    start = dt.date.fromisoformat(pack["from"])
    subjects, problems, members = pack["subjects"], pack["problems"], pack["members"]
    totals = pack["totals"]
    expected, on_time = totals["expected"], totals["on_time"]
    head = f"【{pack['unit_name']} 每周会商】{week_label(start)}"
    if not expected and not pack["flags"] and not any(problems[k] for k in PROBLEM_COUNTS):
        return f"{head}\n{NOTHING_TO_REVIEW}"
    lines = [
        head,
        f"在管 {subjects['active']} 人，新增 {subjects['new']}，解除 {subjects['released']}，"
        f"出现异常 {subjects['abnormal']} 人",
    ]
    if not expected:
        lines.append(f"联系 {NOTHING_EXPECTED}")
    else:
        lines.append(
            f"联系 应报 {expected}，按时 {on_time}（{on_time / expected:.0%}），"
            f"迟报 {totals['late']}，未报 {totals['missed']}（按对象·时段计，多人共管只计一次）"
        )
    behind = sorted(
        (m for m in members if m["expected"] and (m["late"] or m["missed"])),
        key=lambda m: (on_time_share(m) or 0, m["member"]),
    )
    if behind:
        shown = [f"{m['member']}（迟报{m['late']}次 未报{m['missed']}人次）" for m in behind]
        lines.append(f"需督促：{names_text(shown, 6)}")
    lines.append(
        f"问题 新增 {problems['opened']}，办结 {problems['closed']}，未办结 {problems['open']}"
        + (f"（逾期 {problems['overdue']}）" if problems["overdue"] else "")
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


def _people(db: sqlite_utils.Database) -> list[dict]:
    return list(db.query("SELECT * FROM people WHERE active ORDER BY id"))


def weekly_review(db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime) -> int:
    """Monday's job: the past week's pack to its recipients, once per (unit, person, week);
    none for a week in which nothing was expected of anyone. Each county is read and judged
    once for all the packs in it (`findings`), the ledger once for the job, each county's
    subjects of the week once."""
    start = monday_of(now.date()) - dt.timedelta(days=7)
    end = start + dt.timedelta(days=6)
    tree = UnitTree.load(db)
    recipients = digest_recipients(tree, _people(db))
    ledger = problems_by_unit(db)
    last = min(end, now.astimezone(config.tz).date())
    read: dict[str, WeekSubjects] = {}  # the last root's subjects of the week
    reach: dict[str, set[str]] = {}  # each root's units (`_limited`)
    sent = 0
    for code, found in findings(db, config, tree, sorted(recipients), start, end, now):
        if not found.totals["expected"]:
            continue  # no member was prompted that week (before go-live): nothing to review
        below = _descendants(tree, code)
        subjects = None
        root = _root(tree, code)
        if root is not None and root not in reach:
            reach[root] = _limited(tree, root)
        if root is not None and last >= start and set(below) <= reach[root]:
            if root not in read:
                read.clear()
                read[root] = week_subject_rows(db, root, start, last)
            subjects = (read[root], below)
        pack = build_review(
            db,
            config,
            code,
            start,
            now,
            found=found,
            problems=(ledger, below),
            subjects=subjects,
            name=tree.units[code].name if code in tree.units else None,
        )
        text = review_text(pack, review_link(db, config, code, start, now))
        for person in recipients[code]:
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
        code: [f for f in found.flags if f.day == day]
        for code, found in findings(db, config, tree, watched, start, day, now, records=False)
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
