"""The Monday pack and the flags note judge each county once (schedules.review.findings): a
unit below the county takes its members' findings from the county's read. What they send
must be what each unit's own read gives (build_review without `found`, load_activity of the
unit), on the scripted week of tests/test_review.py and on a generated county with a real
week (bench.county.make_county(week=True)) where members reach across villages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot.config import Config, Supervision
from bot.links import review_link
from schedules.digest import UnitTree, digest_recipients
from schedules.review import (
    _people,
    build_review,
    daily_flags,
    findings,
    monday_of,
    review_text,
    weekly_review,
)
from schedules.supervision import (
    Activity,
    Report,
    all_flags,
    load_activity,
    member_records,
    unit_totals,
)
from storage.outbox import send_key

TZ = ZoneInfo("Asia/Shanghai")
BENCH_DAY = dt.date(2026, 3, 2)  # a Monday: the week before is 2/23 … 3/1
LINK = re.compile(r"/review/\S+")


def captured(job, db: sqlite_utils.Database, config: Config, now: dt.datetime) -> dict:  # type: ignore[no-untyped-def]
    """What a job sends, by send key (links without their signature: signed at each call)."""
    sent: dict[str, str] = {}

    def send(person: dict, kind: str, text: str, key: str) -> bool:
        assert key not in sent
        sent[key] = LINK.sub("/review/…", text)
        return True

    job(db, config, send, now)
    return sent


def unit_by_unit_packs(db: sqlite_utils.Database, config: Config, now: dt.datetime) -> dict:
    """The Monday job as it was: every pack from its own unit's read."""
    start = monday_of(now.date()) - dt.timedelta(days=7)
    sent = {}
    for code, people in digest_recipients(UnitTree.load(db), _people(db)).items():
        pack = build_review(db, config, code, start, now)
        if not pack["totals"]["expected"]:
            continue
        text = LINK.sub("/review/…", review_text(pack, review_link(db, config, code, start, now)))
        for person in people:
            key = send_key(
                kind="review", target=f"{code}/person:{person['id']}", day=start, slot="week"
            )
            sent[key] = text
    return sent


def unit_by_unit_flags(
    db: sqlite_utils.Database,
    config: Config,
    codes: list[str],
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
) -> dict:
    found = {}
    for code in codes:
        activity = load_activity(db, config, code, start, end, now)
        flags = all_flags(activity, config.supervision)
        found[code] = (flags, member_records(activity, flags), unit_totals(activity))
    return found


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two counties of 6 villages with a real week before BENCH_DAY; a few members reach
    across villages (a subject of another village, reports on others' subjects), so some
    units are read by themselves; and one member copies one text all week."""
    from bench.county import make_county
    from storage.db import open_db

    path = tmp_path_factory.mktemp("generated") / "gridwatch.db"
    db = open_db(path)
    make_county(
        db,
        day=BENCH_DAY,
        tz=TZ,
        villages=12,
        subjects=600,
        contacts=10**9,
        members_per_village=6,
        villages_per_town=3,
        counties=2,
        today_reported=False,
        week=True,
    )
    with db.conn:
        # a member of the first village holds a subject of the second one too
        member = db.execute("SELECT id FROM people WHERE roles = 'member' ORDER BY id").fetchone()[
            0
        ]
        far = db.execute(
            "SELECT id FROM subjects WHERE unit LIKE 'C000T00V01%' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO assignments (subject_id, person_id, position) VALUES (?, ?, 5)",
            [far, member],
        )
        # someone of another town reports for a subject not theirs (a cover report)
        other = db.execute(
            "SELECT id FROM people WHERE roles = 'member' AND unit LIKE 'C000T01%' ORDER BY id"
        ).fetchone()[0]
        db.execute(
            "UPDATE contacts SET member_id = ? WHERE id IN (SELECT c.id FROM contacts c"
            " JOIN subjects s ON s.id = c.subject_id WHERE s.unit LIKE 'C000T00V02%'"
            " AND c.slot = 'noon' ORDER BY c.id LIMIT 3)",
            [other],
        )
        # a copier: one text for every slot of the week
        copier = db.execute(  # the one with the most readings in a message of the first day
            "SELECT i.person_id FROM inbox i JOIN people p ON p.id = i.person_id"
            " JOIN contacts c ON c.inbox_id = i.id WHERE p.unit LIKE 'C001%'"
            " AND c.date = ? GROUP BY i.id ORDER BY count(c.temperature) DESC, i.id LIMIT 1",
            [(BENCH_DAY - dt.timedelta(days=7)).isoformat()],
        ).fetchone()[0]
        db.execute(
            "UPDATE inbox SET text = '张三 36.5，李四 36.6，王五 36.4' WHERE person_id = ?",
            [copier],
        )
    db.close()
    return path


def _copy_of(path: Path, copy: Path) -> sqlite_utils.Database:
    """A test's own copy of a module's database (the tests change it)."""
    shutil.copy(path, copy)
    return sqlite_utils.Database(copy)


@pytest.fixture
def generated_db(generated: Path, tmp_path: Path) -> sqlite_utils.Database:
    return _copy_of(generated, tmp_path / "generated.db")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted week of tests/test_review.py."""
    from storage.db import open_db
    from storage.roster import import_roster
    from tests.conftest import DEMO_ROSTER, NOW
    from tests.test_review import play_week

    path = tmp_path_factory.mktemp("scripted") / "gridwatch.db"
    db = open_db(path)
    import_roster(db, DEMO_ROSTER, now=NOW, categories=Config().categories, period=14)
    play_week(db)
    db.close()
    return path


@pytest.fixture
def scripted_db(scripted: Path, tmp_path: Path) -> sqlite_utils.Database:
    return _copy_of(scripted, tmp_path / "scripted.db")


def test_the_generated_week_is_prompted_and_reported(generated_db: sqlite_utils.Database) -> None:
    db = generated_db
    days = [
        row[0]
        for row in db.execute("SELECT DISTINCT date FROM sends WHERE kind = 'prompt' ORDER BY date")
    ]
    assert days == [(BENCH_DAY - dt.timedelta(days=n)).isoformat() for n in range(7, 0, -1)]
    reported = db.execute(
        "SELECT count(*), count(inbox_id) FROM contacts WHERE date >= ?",
        [(BENCH_DAY - dt.timedelta(days=7)).isoformat()],
    ).fetchone()
    assert reported[0] > 600 * 3 * 4 and reported[0] == reported[1]  # each through a message


@pytest.mark.parametrize("source", ["generated", "scripted"])
def test_the_monday_job_sends_what_each_units_own_read_gives(
    source: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue(f"{source}_db")
    monday = BENCH_DAY if source == "generated" else dt.date(2026, 3, 9)
    now = dt.datetime.combine(monday, dt.time(9), tzinfo=TZ)
    config = Config()
    sent = captured(weekly_review, db, config, now)
    assert sent and sent == unit_by_unit_packs(db, config, now)
    assert any("请核实 " in text for text in sent.values())


@pytest.mark.parametrize("source", ["generated", "scripted"])
def test_the_county_read_gives_each_units_flags_records_and_totals(
    source: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue(f"{source}_db")
    end = BENCH_DAY - dt.timedelta(days=1) if source == "generated" else dt.date(2026, 3, 8)
    config = Config()
    start, now = end - dt.timedelta(days=6), dt.datetime.combine(end, dt.time(20, 45), tzinfo=TZ)
    tree = UnitTree.load(db)
    codes = sorted(tree.units)
    judged = {
        code: tuple(found) for code, found in findings(db, config, tree, codes, start, end, now)
    }
    assert judged == unit_by_unit_flags(db, config, codes, start, end, now)
    assert any(flags for flags, _, _ in judged.values())


def test_the_flags_note_is_what_each_monitors_unit_gives(
    generated_db: sqlite_utils.Database,
) -> None:
    db, config = generated_db, Config()
    notes = 0
    for back in range(7, 0, -1):
        now = dt.datetime.combine(BENCH_DAY - dt.timedelta(days=back), dt.time(23), tzinfo=TZ)
        sent = captured(daily_flags, db, config, now)
        expected = {}
        for monitor, unit in db.execute("SELECT id, unit FROM people WHERE roles = 'monitor'"):
            activity = load_activity(
                db, config, unit, now.date() - dt.timedelta(days=6), now.date(), now
            )
            if any(f.day == now.date() for f in all_flags(activity, config.supervision)):
                key = send_key(
                    kind="review", target=f"person:{monitor}", day=now.date(), slot="flags"
                )
                expected[key] = unit
        assert set(sent) == set(expected)
        notes += len(sent)
    assert notes  # the copier's, on the day their text reached its third slot


def test_a_late_report_after_the_week_changes_the_pack(generated_db: sqlite_utils.Database) -> None:
    """Counts are as of now: a report for Sunday evening sent Monday 08:30 is late, not
    missed, in the 09:00 pack (and missed in one made at 08:00)."""
    db, config = generated_db, Config()
    start = BENCH_DAY - dt.timedelta(days=7)
    sunday = (BENCH_DAY - dt.timedelta(days=1)).isoformat()
    village = "C000T00V00"
    missing = db.execute(
        """SELECT s.id, a.person_id FROM subjects s JOIN assignments a ON a.subject_id = s.id
           AND a.position = 0 WHERE s.unit LIKE ? AND s.start_date <= ? AND s.end_date >= ?
           AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.subject_id = s.id AND c.date = ?
                           AND c.slot = 'evening' AND c.current = 1)
           ORDER BY s.id LIMIT 1""",
        [f"{village}%", sunday, sunday, sunday],
    ).fetchone()
    if missing is None:  # every subject reported: take one report back
        row = db.execute(
            "SELECT c.id, c.subject_id, c.member_id FROM contacts c JOIN subjects s ON s.id ="
            " c.subject_id WHERE s.unit LIKE ? AND c.date = ? AND c.slot = 'evening'"
            " ORDER BY c.id LIMIT 1",
            [f"{village}%", sunday],
        ).fetchone()
        with db.conn:
            db.execute("DELETE FROM contacts WHERE id = ?", [row[0]])
        missing = row[1:]
    before = build_review(
        db, config, village, start, dt.datetime.combine(BENCH_DAY, dt.time(9), tzinfo=TZ)
    )
    with db.conn:
        db.execute(
            "INSERT INTO contacts (subject_id, date, slot, member_id, temperature, status,"
            " reported_at) VALUES (?, ?, 'evening', ?, 36.5, 'normal', ?)",
            [missing[0], sunday, missing[1], f"{BENCH_DAY}T08:30:00+08:00"],
        )
    at_eight = build_review(
        db, config, village, start, dt.datetime.combine(BENCH_DAY, dt.time(8), tzinfo=TZ)
    )
    at_nine = captured(
        weekly_review, db, config, dt.datetime.combine(BENCH_DAY, dt.time(9), tzinfo=TZ)
    )
    assert at_eight["totals"] == before["totals"]
    after = build_review(
        db, config, village, start, dt.datetime.combine(BENCH_DAY, dt.time(9), tzinfo=TZ)
    )
    assert after["totals"]["late"] == before["totals"]["late"] + 1
    assert after["totals"]["missed"] == before["totals"]["missed"] - 1
    [text] = {t for k, t in at_nine.items() if k.startswith(f"review|{village}/")}
    assert f"迟报 {after['totals']['late']}，未报 {after['totals']['missed']}" in text


def test_cover_heavy_counts_a_slots_reports_in_the_order_they_came() -> None:
    """Six covered slots against five of the member's own: past the line on Monday. On
    Tuesday's morning the member's own report comes first (6 of 12: not past it), then the
    cover (7 of 13: past it again): the line was crossed anew on Tuesday. The other way
    round it was never left, and the flag keeps Monday."""
    monday = dt.date(2026, 3, 2)
    for own_first, day in ((True, monday + dt.timedelta(days=1)), (False, monday)):
        activity = Activity(
            start=monday, end=monday + dt.timedelta(days=1), now=dt.datetime(2026, 3, 4, tzinfo=TZ)
        )
        config = Config()
        for d in activity.days():
            for slot, times in config.slots.items():
                activity.deadlines[(d, slot)] = dt.datetime.combine(d, times.deadline, tzinfo=TZ)
        activity.prompt_times = {slot: times.prompt for slot, times in config.slots.items()}
        activity.members = {1: "梁红", 2: "韩冰"}
        subjects = list(range(10, 21))
        activity.subjects = {sid: f"对象{sid}" for sid in subjects}
        activity.duty = {
            1: {d: subjects for d in activity.days()},
            2: {d: [] for d in activity.days()},
        }
        ids = iter(range(100, 1000))
        when = dt.datetime(2026, 3, 2, 8, 30, tzinfo=TZ)
        for n, sid in enumerate(subjects[:11]):  # Monday morning: 5 own, 6 covered
            who = 1 if n < 5 else 2
            activity.reports.append(
                Report(next(ids), sid, monday, "morning", who, 36.5, when, None, True)
            )
        tuesday = monday + dt.timedelta(days=1)
        order = (
            [(1, subjects[0]), (2, subjects[1])]
            if own_first
            else [(2, subjects[1]), (1, subjects[0])]
        )
        for who, sid in order:
            activity.reports.append(
                Report(
                    next(ids),
                    sid,
                    tuesday,
                    "morning",
                    who,
                    36.5,
                    when + dt.timedelta(days=1),
                    None,
                    True,
                )
            )
        settings = dataclasses.replace(Supervision(), cover_min_slots=6, cover_share=0.5)
        [flag] = [f for f in all_flags(activity, settings) if f.kind == "cover_heavy"]
        assert flag.day == day


def test_counties_judged_in_worker_processes_give_the_same(
    generated_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two spawned workers (each county on a connection of its own) find what this process
    finds, in the same order; a pool that breaks leaves the rest to this process."""
    import schedules.review as review

    config, tree = Config(), UnitTree.load(generated_db)
    end = BENCH_DAY - dt.timedelta(days=1)
    start, now = end - dt.timedelta(days=6), dt.datetime.combine(BENCH_DAY, dt.time(9), tzinfo=TZ)
    codes = sorted(tree.units)
    here = list(findings(generated_db, config, tree, codes, start, end, now, workers=1))
    monkeypatch.setattr(review, "POOL_FROM", 1)
    apart = list(findings(generated_db, config, tree, codes, start, end, now, workers=2))
    assert apart == here

    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Broken:
            return self

        def __exit__(self, *args: object) -> None:
            pass

        def map(self, *args: object) -> list:
            from concurrent.futures.process import BrokenProcessPool

            raise BrokenProcessPool("a worker died")

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            ended.append(cancel_futures)

    ended: list[bool] = []

    monkeypatch.setattr(review, "ProcessPoolExecutor", Broken)
    assert list(findings(generated_db, config, tree, codes, start, end, now, workers=2)) == here
    assert ended == [True]  # what it had not started is cancelled


def test_a_serving_process_that_stops_ends_its_jobs_worker_processes(
    generated_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker told to stop mid-pack: the pool's processes end and what they had not
    started is cancelled (they held the exit up for the rest of a province, then were
    orphaned when the worker was killed); each knows to end with its parent."""
    import schedules.review as review

    monkeypatch.setattr(review, "POOL_FROM", 1)
    config, tree = Config(), UnitTree.load(generated_db)
    end = BENCH_DAY - dt.timedelta(days=1)
    start, now = end - dt.timedelta(days=6), dt.datetime.combine(BENCH_DAY, dt.time(9), tzinfo=TZ)
    judging = findings(generated_db, config, tree, sorted(tree.units), start, end, now, workers=2)
    next(judging)  # the pool is up and has judged a county
    [pool] = list(review._POOLS)
    processes = list(pool._processes.values())  # type: ignore[attr-defined]
    assert processes and all(p.is_alive() for p in processes)
    pids = [p.pid for p in processes]
    review.stop_job_workers()
    # by pid: the pool's own thread may reap them first, and is_alive then cannot tell
    deadline = time.monotonic() + 10
    while not all(map(_ended, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_ended, pids))
    judging.close()
    assert not review._POOLS


def _ended(pid: int | None) -> bool:
    """The process is gone, or a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return "\nState:\tZ" in status.read()
    except (FileNotFoundError, ProcessLookupError):  # reaped before, or while, it was read
        return True
