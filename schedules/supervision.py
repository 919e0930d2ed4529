"""督查: what the stored reports say about how the work was done (DESIGN §11).

`load_activity` reads a unit tree's members, their subjects, their reports (with the raw
text of the messages that carried them) and their prompts over a date range, as of `now`;
everything else here is a pure function of that `Activity` and the `[supervision]`
thresholds. A flag asks someone to check (请核实); it never says that anyone cheated, and
it always carries the evidence that raised it.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlite_utils

from bot.config import SLOTS, Config, Supervision
from handlers.dates import day_label
from handlers.slots import WINDOW_OPENS
from storage.people import roles_of
from storage.units import MAX_DEPTH

SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
FLAG_KINDS = ("copy_paste", "flat_readings", "burst", "before_prompt", "cover_heavy")
FLAG_CN = {
    "copy_paste": "上报文字多次完全相同",
    "flat_readings": "所有对象体温连续相同",
    "burst": "提示发出后数秒内报完全部对象",
    "before_prompt": "提示发出前已上报",
    "cover_heavy": "多数对象由他人代报",
}

SlotKey = tuple[dt.date, str]  # (date, slot)


class Report(NamedTuple):
    """One report row (current or replaced, never revoked) of a subject in the range (a
    tuple: a county's week is ~75,000 of them, made 3 times faster than a dataclass's)."""

    id: int
    subject_id: int
    day: dt.date
    slot: str
    member_id: int | None
    temperature: float | None
    at: dt.datetime
    inbox_id: int | None
    current: bool


@dataclass
class Activity:
    """A unit tree's members and what they did from `start` to `end`, as of `now`."""

    start: dt.date
    end: dt.date
    now: dt.datetime
    deadlines: dict[SlotKey, dt.datetime] = field(default_factory=dict)
    prompt_times: dict[str, dt.time] = field(default_factory=dict)
    members: dict[int, str] = field(default_factory=dict)  # id → name, roster order
    subjects: dict[int, str] = field(default_factory=dict)  # id → name
    # member → the subjects assigned to them on each day: {member: {date: [subject ids]}}
    duty: dict[int, dict[dt.date, list[int]]] = field(default_factory=dict)
    shared: set[int] = field(default_factory=set)  # subjects with two or more members
    reports: list[Report] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)  # inbox id → text
    prompts: dict[tuple[int, dt.date, str], dt.datetime] = field(default_factory=dict)
    # what `within` needs to tell a unit below the root the same things (load_activity
    # fills them): each subject's unit, each person read (unit, roles), each person's
    # subjects, and the person whose message carried each replaced report
    subject_units: dict[int, str] = field(default_factory=dict, repr=False)
    people: dict[int, dict] = field(default_factory=dict, repr=False)
    assigned: dict[int, list[int]] = field(default_factory=dict, repr=False)
    senders: dict[int, int] = field(default_factory=dict, repr=False)
    # members by unit, subjects by unit, members by subject, roster order: built by
    # `within` on first use
    _places: tuple[dict, dict, dict, dict] | None = field(default=None, repr=False)
    _footprints: dict[int, tuple] = field(default_factory=dict, repr=False)
    # the slots' prompt times and windows by (date, slot), made once each
    _slot_prompts: dict[SlotKey, dt.datetime] = field(default_factory=dict, repr=False)
    _windows: dict[SlotKey, dt.datetime] = field(default_factory=dict, repr=False)

    # reports by member, current reports by subject and by subject-slot, built on first use
    # (see `_index`)
    _by_member: dict[int | None, list[Report]] = field(default_factory=dict, repr=False)
    _by_subject: dict[int, list[Report]] = field(default_factory=dict, repr=False)
    _current: dict[tuple[int, SlotKey], Report] = field(default_factory=dict, repr=False)
    _by_key: dict[SlotKey, dict[int, Report]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)
    # each member's asked subject-slots (`_asked`), and the sizes it was made for
    _asked: dict = field(default_factory=dict, repr=False)
    _asked_for: tuple[int, int, int] | None = field(default=None, repr=False)

    def _index(self) -> None:
        if self._indexed == len(self.reports):
            return
        by_member: dict[int | None, list[Report]] = defaultdict(list)
        by_subject: dict[int, list[Report]] = defaultdict(list)
        by_key: dict[SlotKey, dict[int, Report]] = defaultdict(dict)
        for report in self.reports:
            by_member[report.member_id].append(report)
            if report.current:
                by_subject[report.subject_id].append(report)
                by_key[(report.day, report.slot)][report.subject_id] = report
        self._by_member, self._by_subject, self._by_key = by_member, by_subject, by_key
        self._current = {}
        self._indexed = len(self.reports)

    def reports_by(self, member_id: int) -> list[Report]:
        """The member's own reports (current or replaced)."""
        self._index()
        return self._by_member.get(member_id, [])

    def current_of(self, subject_id: int) -> list[Report]:
        """The subject's current reports in the range."""
        self._index()
        return self._by_subject.get(subject_id, [])

    def current(self) -> dict[tuple[int, SlotKey], Report]:
        """The current report of each (subject, (date, slot)) in the range (the last one
        listed, should there be two)."""
        self._index()
        if not self._current and self._by_key:
            self._current = {
                (sid, key): report
                for key, reports in self._by_key.items()
                for sid, report in reports.items()
            }
        return self._current

    def current_by_slot(self) -> dict[SlotKey, dict[int, Report]]:
        """`current` by (date, slot), then subject."""
        self._index()
        return self._by_key

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def due(self) -> list[SlotKey]:
        """The (date, slot)s of the range whose deadline has passed as of `now`."""
        return [
            (day, slot)
            for day in self.days()
            for slot in SLOTS
            if self.deadlines[(day, slot)] <= self.now
        ]

    def window_opens(self, key: SlotKey) -> dt.datetime:
        """When the slot's own time window opens (DESIGN §3: 05:00, 11:00, 17:00)."""
        found = self._windows.get(key)
        if found is None:
            day, slot = key
            found = dt.datetime.combine(day, WINDOW_OPENS[slot], tzinfo=self.now.tzinfo)
            self._windows[key] = found
        return found

    def prompt_at(self, member_id: int, key: SlotKey) -> dt.datetime:
        """When the member's prompt for the slot went (the outbox), else the slot's time."""
        day, slot = key
        found = self.prompts.get((member_id, day, slot))
        if found is not None:
            return found
        found = self._slot_prompts.get(key)
        if found is None:
            found = dt.datetime.combine(day, self.prompt_times[slot], tzinfo=self.now.tzinfo)
            self._slot_prompts[key] = found
        return found


@dataclass(frozen=True)
class Flag:
    kind: str
    member_id: int
    member: str
    day: dt.date
    detail: str

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "member": self.member,
            "date": self.day.isoformat(),
            "detail": self.detail,
        }


def _tree_sql(root: str) -> str:
    return (
        "WITH RECURSIVE tree(code, depth) AS (SELECT :root, 0 UNION ALL"
        " SELECT u.code, t.depth + 1 FROM units u JOIN tree t ON u.parent = t.code"
        f" WHERE t.depth < {MAX_DEPTH}) "
    )


def _moment(stamp: str, tz: dt.tzinfo | None) -> dt.datetime:
    value = dt.datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=tz)


def _active(subject: dict, day: str) -> bool:
    # storage.subjects.ACTIVE_ON, in memory
    return subject["start_date"] <= day <= subject["end_date"] and (
        subject["status"] == "active"
        or (subject["released_on"] is not None and day < subject["released_on"])
    )


def load_activity(
    db: sqlite_utils.Database,
    config: Config,
    root: str,
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
) -> Activity:
    """Everything the flags and the members' record need for the unit tree under `root`."""
    tz = config.tz
    found = Activity(start=start, end=end, now=now)
    found.prompt_times = {slot: config.slots[slot].prompt for slot in SLOTS}
    days = found.days()
    for day in days:
        for slot in SLOTS:
            found.deadlines[(day, slot)] = dt.datetime.combine(
                day, config.slots[slot].deadline, tzinfo=tz
            )
    params = {"root": root, "start": start.isoformat(), "end": end.isoformat()}
    subjects = {
        row[0]: dict(
            zip(
                ("id", "name", "start_date", "end_date", "status", "released_on", "unit"),
                row,
                strict=True,
            )
        )
        for row in db.conn.execute(
            f"""{_tree_sql(root)}SELECT s.id, s.name, s.start_date, s.end_date, s.status,
                   s.released_on, s.unit FROM subjects s
                WHERE s.unit IN (SELECT code FROM tree)
                AND s.start_date <= :end AND s.end_date >= :start""",
            params,
        )
    }
    found.subjects = {sid: s["name"] for sid, s in subjects.items()}
    found.subject_units = {sid: s["unit"] for sid, s in subjects.items()}
    people = {
        row[0]: {"id": row[0], "name": row[1], "roles": row[2], "unit": row[3]}
        for row in db.conn.execute(
            f"""{_tree_sql(root)}SELECT p.id, p.name, p.roles, p.unit FROM people p
                WHERE p.active AND (p.unit IN (SELECT code FROM tree) OR p.id IN (
                    SELECT a.person_id FROM assignments a JOIN subjects s ON s.id = a.subject_id
                    WHERE s.unit IN (SELECT code FROM tree)))
                ORDER BY p.id""",
            params,
        )
    }
    assigned: dict[int, list[int]] = defaultdict(list)
    counts: Counter[int] = Counter()
    for chunk in _chunks(list(subjects)):
        marks = ",".join("?" * len(chunk))
        for sid, pid in db.conn.execute(
            f"SELECT subject_id, person_id FROM assignments WHERE subject_id IN ({marks})"
            " ORDER BY subject_id, position",
            chunk,
        ):
            counts[sid] += 1
            if pid in people:
                assigned[pid].append(sid)
    found.shared = {sid for sid, count in counts.items() if count > 1}
    found.people, found.assigned = people, dict(assigned)
    stamps = [day.isoformat() for day in days]
    on_days = {  # each subject's days of the range, as storage.subjects.ACTIVE_ON has them
        sid: {day for day, stamp in zip(days, stamps, strict=True) if _active(subject, stamp)}
        for sid, subject in subjects.items()
    }
    for pid, person in people.items():
        if "member" not in roles_of(person) and pid not in assigned:
            continue
        found.members[pid] = person["name"]
        mine = assigned.get(pid, [])
        found.duty[pid] = {day: [sid for sid in mine if day in on_days[sid]] for day in days}
    # current reports through the partial index on (subject_id, date, slot); the reports they
    # replaced (for the first time a subject was reported) through the members' messages
    rows: list[tuple] = []  # the two reads are apart (current = 1, current = 0)
    columns = ", ".join(
        f"c.{name}"
        for name in "id subject_id date slot member_id temperature reported_at inbox_id".split()
    )
    for chunk in _chunks(sorted(subjects)):
        marks = ",".join("?" * len(chunk))
        for row in db.conn.execute(
            f"SELECT {columns}, 1 FROM contacts c WHERE c.current = 1"
            f" AND c.subject_id IN ({marks}) AND c.date BETWEEN ? AND ?",
            [*chunk, start.isoformat(), end.isoformat()],
        ):
            rows.append(row)
    for chunk in _chunks(sorted(found.members)):
        marks = ",".join("?" * len(chunk))
        for row in db.conn.execute(
            # CROSS JOIN: the members' messages first (with 900 of them SQLite would rather
            # scan the province's week of contacts by date: 0.6 s against 0.02 s a county)
            f"SELECT {columns}, 0, i.person_id FROM inbox i CROSS JOIN contacts c"
            f" ON c.inbox_id = i.id WHERE i.person_id IN ({marks})"
            " AND c.current = 0 AND c.revoked = 0 AND c.date BETWEEN ? AND ?",
            [*chunk, start.isoformat(), end.isoformat()],
        ):
            if row[1] in subjects:
                rows.append(row[:9])
                found.senders[row[0]] = row[9]
    # one report's time and day parsed once per distinct text: a message's reports share
    # their time, a range has a few days
    moments: dict[str, dt.datetime] = {}
    dates = dict(zip(stamps, days, strict=True))
    reports = found.reports
    new = tuple.__new__  # Report(...) without its Python-level __new__: ~75,000 a county
    rows.sort()  # by id
    for rid, sid, date, slot, member_id, temperature, stamp, inbox_id, current in rows:
        at = moments.get(stamp)
        if at is None:
            at = moments[stamp] = _moment(stamp, tz)
        if at > now:
            continue
        day = dates.get(date)
        if day is None:
            day = dates[date] = dt.date.fromisoformat(date)
        reports.append(
            new(Report, (rid, sid, day, slot, member_id, temperature, at, inbox_id, current == 1))
        )
    del rows
    inbox_ids = sorted({r.inbox_id for r in reports if r.inbox_id is not None})
    for chunk in _chunks(inbox_ids):
        marks = ",".join("?" * len(chunk))
        found.texts.update(
            db.conn.execute(f"SELECT id, text FROM inbox WHERE id IN ({marks})", chunk)
        )
    # prompts, keyed prompt|person:ID|DATE|SLOT (storage.outbox.send_key), through the
    # outbox's index on person_id (the outbox has no index on its time); a prompt is queued
    # on its day or later (a catch-up), so older rows are passed over in SQL
    since = (start - dt.timedelta(days=2)).isoformat()
    members = found.members
    for chunk in _chunks(sorted(members)):
        marks = ",".join("?" * len(chunk))
        for key, at, sent_at in db.conn.execute(
            f"SELECT send_key, at, sent_at FROM outbox WHERE person_id IN ({marks})"
            " AND kind = 'prompt' AND send_key IS NOT NULL AND at >= ?",
            [*chunk, since],
        ):
            parts = key.split("|")
            if len(parts) != 4 or not parts[1].startswith("person:"):
                continue
            pid = int(parts[1][7:])
            day = dates.get(parts[2])
            if day is None:
                day = dates[parts[2]] = dt.date.fromisoformat(parts[2])
            if pid not in members or not start <= day <= end:
                continue
            # delivered later than planned (a catch-up): the member saw it then
            moment = moments.get(at)
            if moment is None:
                moment = moments[at] = _moment(at, tz)
            if sent_at:
                moment = max(moment, _moment(sent_at, tz))
            if moment <= now:
                found.prompts[(pid, day, parts[3])] = moment
    return found


def within(activity: Activity, units: set[str]) -> list[int] | None:
    """The members that `load_activity` of a tree below the root (its units `units`, all
    under the root's limit) would hold, in roster order, when each of them is wholly inside
    it: all their subjects, their own reports (a replaced one by a message of a member
    there) and whoever else of the root's members reported their subjects. Then each one's
    flags, record and share of the unit's totals there are the root's: they read nothing
    else. None when any is not (the caller reads the tree itself)."""
    if activity._places is None:
        members_in: dict[str, list[int]] = defaultdict(list)
        subjects_in: dict[str, list[int]] = defaultdict(list)
        assignees: dict[int, list[int]] = defaultdict(list)
        for pid in activity.members:
            members_in[activity.people[pid]["unit"]].append(pid)
            for sid in activity.assigned.get(pid, []):
                assignees[sid].append(pid)
        for sid, unit in activity.subject_units.items():
            subjects_in[unit].append(sid)
        order = {pid: n for n, pid in enumerate(activity.members)}
        activity._places = members_in, subjects_in, assignees, order
    members_in, subjects_in, assignees, order = activity._places
    subjects = {sid for unit in units for sid in subjects_in.get(unit, ())}
    candidates = {pid for unit in units for pid in members_in.get(unit, ())}
    candidates.update(pid for sid in subjects for pid in assignees.get(sid, ()))
    members = []
    for pid in sorted(candidates, key=order.__getitem__):
        person = activity.people[pid]
        mine = activity.assigned.get(pid, [])
        inside = any(sid in subjects for sid in mine)
        if not (person["unit"] in units or inside):
            continue  # not read there
        if "member" not in roles_of(person) and not inside:
            continue
        if not all(sid in subjects for sid in mine):
            return None
        members.append(pid)
    chosen = set(members)
    footprints = activity._footprints
    for pid in members:
        found = footprints.get(pid)
        if found is None:
            found = footprints[pid] = _footprint(activity, pid)
        reported, senders, others = found
        if not (reported <= subjects and senders <= chosen and others <= chosen):
            return None
    return members


def _footprint(activity: Activity, member_id: int) -> tuple[set[int], set, set[int]]:
    """What `within` asks of a member, once per member: the subjects of their own reports,
    the senders of their replaced reports (None: unknown), and the others of the root's
    members who reported their subjects."""
    own = activity.reports_by(member_id)
    reported = {report.subject_id for report in own}
    senders = {activity.senders.get(report.id) for report in own if not report.current}
    others = {
        report.member_id
        for sid in activity.assigned.get(member_id, [])
        for report in activity.current_of(sid)
        if report.member_id is not None and report.member_id in activity.members
    }
    return reported, senders, others


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# --- the flags: pure functions of an Activity and the thresholds ----------------------------

_SLOT_MARK = re.compile(r"^(?:补报)?(?:早上|早间|上午|早|中午|午间|下午|中|晚上|晚间|傍晚|晚)")
_NOISE = re.compile(r"[\s,，。.、:：;；!！?？~～\-—()（）\[\]【】]+")


def normalized(text: str) -> str:
    """Report text as compared for copy_paste: width, spaces, punctuation and a leading slot
    marker do not count (a copy edited to say 晚 instead of 早 is still the copy)."""
    text = unicodedata.normalize("NFKC", text).strip()
    text = _SLOT_MARK.sub("", text)
    return _NOISE.sub("", text)


def _order(key: SlotKey) -> tuple[dt.date, int]:
    return key[0], SLOTS.index(key[1])


def _when(keys: Iterable[SlotKey], limit: int = 6) -> str:
    ordered = sorted(set(keys), key=_order)
    shown = "、".join(f"{day_label(day)}{SLOT_CN[slot]}" for day, slot in ordered[:limit])
    return shown + (f"等{len(ordered)}次" if len(ordered) > limit else "")


def _own(activity: Activity, member_id: int) -> list[Report]:
    return activity.reports_by(member_id)


def copy_paste(activity: Activity, settings: Supervision) -> list[Flag]:
    """The same report text, with `copy_paste_readings` temperatures or more in it, sent for
    `copy_paste_slots` slots or more. Two honest readings match by chance now and then, so a
    text is counted only when readings × (slots − 1) reaches `copy_paste_repeats`: a text of
    two readings must recur on 6 slots, one of three or four on 4, one of five on 3."""
    flags = []
    texts = activity.texts
    for member_id, name in activity.members.items():
        # each message of the member's: the slots it reported, and its readings
        messages: dict[int, list] = {}
        for report in _own(activity, member_id):
            inbox_id = report.inbox_id
            if inbox_id not in texts:
                continue
            found = messages.get(inbox_id)
            if found is None:
                found = messages[inbox_id] = [set(), 0]
            found[0].add((report.day, report.slot))
            if report.temperature is not None:
                found[1] += 1
        by_text: dict[str, set[SlotKey]] = defaultdict(set)
        original: dict[str, tuple[str, int]] = {}
        for inbox_id, (keys, readings) in sorted(messages.items()):
            if readings < settings.copy_paste_readings:
                continue
            text = normalized(texts[inbox_id])
            by_text[text] |= keys
            original.setdefault(text, (texts[inbox_id].strip(), readings))
        repeated = []
        for text, keys in by_text.items():
            count = original[text][1]
            if (
                len(keys) >= settings.copy_paste_slots
                and count * (len(keys) - 1) >= settings.copy_paste_repeats
            ):
                repeated.append((sorted(keys, key=_order), original[text][0]))
        if not repeated:
            continue
        repeated.sort(key=lambda found: (-len(found[0]), _order(found[0][0])))
        reached = min(keys[settings.copy_paste_slots - 1][0] for keys, _ in repeated)
        keys, shown = repeated[0]
        shown = shown.replace("\n", " ")
        shown = shown if len(shown) <= 30 else shown[:30] + "…"
        detail = f"“{shown}”在{_when(keys, 4)}一字不差（体温也完全相同）"
        if len(repeated) > 1:
            more = sum(len(keys) for keys, _ in repeated[1:])
            detail += f"，另有{len(repeated) - 1}段文字共{more}次同样重复"
        flags.append(Flag("copy_paste", member_id, name, reached, detail + "，请核实"))
    return flags


def flat_readings(activity: Activity, settings: Supervision) -> list[Flag]:
    """Every subject of the member at one temperature, `flat_slots` slots running; the run
    must hold `flat_repeats` readings beyond the first of each slot (two subjects need a
    longer run than five: two equal readings happen by chance far more often)."""
    flags = []
    for member_id, name in activity.members.items():
        by_slot: dict[SlotKey, dict[int, float]] = {}
        for report in _own(activity, member_id):
            if report.current and report.temperature is not None:
                key = (report.day, report.slot)
                found = by_slot.get(key)
                if found is None:
                    found = by_slot[key] = {}
                found[report.subject_id] = report.temperature
        run: list[SlotKey] = []
        repeats = 0
        best: tuple[list[SlotKey], int, float] | None = None
        reached: dt.date | None = None
        for key in sorted(by_slot, key=_order):
            values = set(by_slot[key].values())
            if len(by_slot[key]) >= 2 and len(values) == 1:
                run.append(key)
                repeats += len(by_slot[key]) - 1
                if len(run) >= settings.flat_slots and repeats >= settings.flat_repeats:
                    reached = reached or key[0]
                    if best is None or len(run) > len(best[0]):
                        best = (list(run), repeats, next(iter(values)))
            else:
                run, repeats = [], 0
        if best is not None and reached is not None:
            keys, _, value = best
            names = "、".join(activity.subjects[sid] for sid in sorted(by_slot[keys[-1]]))
            flags.append(
                Flag(
                    "flat_readings",
                    member_id,
                    name,
                    reached,
                    f"{names}在{_when(keys[:1])}至{_when(keys[-1:])}连续{len(keys)}次"
                    f"体温都是{value:.1f}℃，请核实",
                )
            )
    return flags


def burst(activity: Activity, settings: Supervision) -> list[Flag]:
    """The member's whole list reported within `burst_seconds` of the prompt, on
    `burst_days` days or more."""
    flags = []
    due = activity.due()
    prompts = activity.prompts
    for member_id, name in activity.members.items():
        # the first report of each (subject, date, slot) by the member
        first: dict[tuple[int, dt.date, str], dt.datetime] = {}
        for report in _own(activity, member_id):
            key = (report.subject_id, report.day, report.slot)
            before = first.get(key)
            if before is None or report.at < before:
                first[key] = report.at
        if not first:
            continue
        fast: list[tuple[SlotKey, float]] = []
        mine = activity.duty[member_id]
        for day, slot in due:
            listed = mine.get(day)
            if not listed:
                continue
            prompt = prompts.get((member_id, day, slot))
            if prompt is None:
                continue
            times = [first.get((sid, day, slot)) for sid in listed]
            if None in times:
                continue
            earliest = (min(times) - prompt).total_seconds()  # type: ignore[type-var]
            seconds = (max(times) - prompt).total_seconds()  # type: ignore[type-var]
            if earliest >= 0 and seconds <= settings.burst_seconds:
                fast.append(((day, slot), seconds))
        days = sorted({key[0] for key, _ in fast})
        if len(days) >= settings.burst_days:
            worst = max(seconds for _, seconds in fast)
            flags.append(
                Flag(
                    "burst",
                    member_id,
                    name,
                    days[settings.burst_days - 1],
                    f"{len(days)}天共{len(fast)}次在提示发出后{worst:.0f}秒内报完全部对象"
                    f"（{_when(key for key, _ in fast)}），请核实是否逐一联系",
                )
            )
    return flags


def before_prompt(activity: Activity, settings: Supervision) -> list[Flag]:
    """Reports for a slot sent `before_prompt_minutes` or more before its prompt and before
    the slot's own time window opens, on `before_prompt_slots` slots or more. A report inside
    the window (an evening report at 17:20, ahead of an 18:00 prompt) is the parser's slot by
    its time: the member is on time, not ahead of the prompt."""
    flags = []
    margin = dt.timedelta(minutes=settings.before_prompt_minutes)
    for member_id, name in activity.members.items():
        early: dict[SlotKey, dt.timedelta] = {}
        for report in _own(activity, member_id):
            key = (report.day, report.slot)
            if report.at >= activity.window_opens(key):
                continue  # in the slot's window: never ahead of it
            ahead = activity.prompt_at(member_id, key) - report.at
            if ahead >= margin:
                early[key] = max(early.get(key, ahead), ahead)
        if len(early) >= settings.before_prompt_slots:
            keys = sorted(early, key=_order)
            most = max(early.values())
            flags.append(
                Flag(
                    "before_prompt",
                    member_id,
                    name,
                    keys[settings.before_prompt_slots - 1][0],
                    f"{_when(keys)}的报告在该时段提示之前就已发出"
                    f"（最早提前{int(most.total_seconds() // 60)}分钟），请核实",
                )
            )
    return flags


def cover_heavy(activity: Activity, settings: Supervision) -> list[Flag]:
    """Most of the member's own (unshared) subject-slots reported by someone else. The
    reports are counted in the order of their slots, and in a slot in the order they came
    (by id), so the day the share was crossed does not depend on how a set is laid out."""
    flags = []
    due = set(activity.due())
    shared = activity.shared
    activity._index()
    by_subject = activity._by_subject
    rank = {slot: n for n, slot in enumerate(SLOTS)}
    for member_id, name in activity.members.items():
        days_of: dict[int, set[dt.date]] = defaultdict(set)  # unshared subject → duty days
        for day, listed in activity.duty[member_id].items():
            for sid in listed:
                if sid not in shared:
                    days_of[sid].add(day)
        mine_reports = [
            report
            for sid, days in days_of.items()
            for report in by_subject.get(sid, ())
            if report.day in days and (report.day, report.slot) in due
        ]
        if not mine_reports:
            continue
        by_self = covered = 0
        others: Counter[int] = Counter()
        reached: dt.date | None = None  # the first day the counts so far crossed the line
        mine_reports.sort(key=lambda r: (r.day, rank[r.slot], r.id))
        for report in mine_reports:
            if report.member_id == member_id:
                by_self += 1
            elif report.member_id is not None:
                others[report.member_id] += 1
                covered += 1
            if (
                covered >= settings.cover_min_slots
                and covered / (by_self + covered) > settings.cover_share
            ):
                reached = reached or report.day
            else:
                reached = None
        covered = sum(others.values())
        total = by_self + covered
        if reached is not None:
            who = "、".join(
                f"{activity.members.get(pid, '他人')}{count}次"
                for pid, count in others.most_common()
            )
            flags.append(
                Flag(
                    "cover_heavy",
                    member_id,
                    name,
                    reached,
                    f"所负责对象已报{total}次中{covered}次由他人上报（{who}），请核实",
                )
            )
    return flags


CHECKS = (copy_paste, flat_readings, burst, before_prompt, cover_heavy)


def all_flags(activity: Activity, settings: Supervision) -> list[Flag]:
    """Every flag of the range, in roster order of the members, then by kind."""
    order = {member_id: n for n, member_id in enumerate(activity.members)}
    found = [flag for check in CHECKS for flag in check(activity, settings)]
    return sorted(found, key=lambda f: (order[f.member_id], FLAG_KINDS.index(f.kind), f.day))


# --- the members' record (考核) --------------------------------------------------------------


class _Asked(NamedTuple):
    """A member's subject-slots asked of them (due by `now`, prompted) and how each went."""

    expected: int
    on_time: int
    late: int
    minutes: list[float]  # from the prompt to each of the member's own reports
    alone: tuple[int, int, int]  # expected, on time, late: subjects only this member holds
    shared: dict[tuple[int, SlotKey], int]  # the others: subject-slot → 0 missed, 1, 2 late


def _asked(activity: Activity) -> dict[int, _Asked]:
    """`_Asked` of each member, made once per Activity (and again if its reports or prompts
    change): the members' records and the unit totals, of the root and of every unit below
    it (`within`), count from it."""
    stamp = (len(activity.reports), len(activity.prompts), len(activity.members))
    if activity._asked_for == stamp:
        return activity._asked
    current = activity.current_by_slot()
    deadlines, prompts, duty = activity.deadlines, activity.prompts, activity.duty
    holders: Counter[int] = Counter()
    for member_id in activity.members:
        holders.update({sid for listed in duty[member_id].values() for sid in listed})
    multi = {sid for sid, count in holders.items() if count > 1}
    due = [(key, deadlines[key], current.get(key, {})) for key in activity.due()]
    found = {}
    for member_id in activity.members:
        mine = duty[member_id]
        expected = on_time = late = 0
        alone = [0, 0, 0]
        shared: dict[tuple[int, SlotKey], int] = {}
        minutes: list[float] = []
        for key, deadline, reported in due:
            day, slot = key
            if (member_id, day, slot) not in prompts:
                continue
            listed = mine.get(day)
            if not listed:
                continue
            prompt = None
            for sid in listed:
                expected += 1
                report = reported.get(sid)
                if report is None:
                    outcome = 0
                elif report.at <= deadline:
                    outcome = 1
                    on_time += 1
                else:
                    outcome = 2
                    late += 1
                if sid in multi:
                    shared[(sid, key)] = outcome
                else:
                    alone[0] += 1
                    if outcome:
                        alone[outcome] += 1
                if report is not None and report.member_id == member_id:
                    if prompt is None:
                        prompt = activity.prompt_at(member_id, key)
                    minutes.append((report.at - prompt).total_seconds() / 60)
        found[member_id] = _Asked(expected, on_time, late, minutes, tuple(alone), shared)
    activity._asked, activity._asked_for = found, stamp
    return found


def member_records(activity: Activity, flags: Iterable[Flag]) -> list[dict]:
    """Per member: expected subject-slots (due by `now`, and only those the member was
    prompted for: a slot before go-live, or one whose prompt the schedule skipped, was never
    asked of anyone), on time, late, missed (a report by anyone counts, as the deadline alert
    counts it), median minutes from the prompt to the member's own reports, and the kinds of
    flags raised."""
    return list(records_by_member(activity, flags).values())


def records_by_member(activity: Activity, flags: Iterable[Flag]) -> dict[int, dict]:
    """`member_records` by member id, in roster order."""
    kinds: dict[int, list[str]] = defaultdict(list)
    for flag in flags:
        if flag.kind not in kinds[flag.member_id]:
            kinds[flag.member_id].append(flag.kind)
    asked = _asked(activity)
    records = {}
    for member_id, name in activity.members.items():
        mine = asked[member_id]
        if not mine.expected and member_id not in kinds:
            continue
        records[member_id] = {
            "member": name,
            "expected": mine.expected,
            "on_time": mine.on_time,
            "late": mine.late,
            "missed": mine.expected - mine.on_time - mine.late,
            "median_minutes": round(statistics.median(mine.minutes)) if mine.minutes else None,
            "flags": sorted(kinds[member_id], key=FLAG_KINDS.index),
        }
    return records


def unit_totals(activity: Activity, members: Iterable[int] | None = None) -> dict:
    """The unit's contact totals, one per subject-slot however many members share the
    subject (a 多对一 subject is one contact to make, as the digests and the ledger count it):
    expected (due by `now` and asked of at least one member by a prompt), on time, late,
    missed. `members`: those of a unit below the activity's root (`within`), else all."""
    asked = _asked(activity)
    expected = on_time = late = 0
    shared: dict[tuple[int, SlotKey], int] = {}
    for member_id in activity.members if members is None else members:
        mine = asked[member_id]
        expected += mine.alone[0]
        on_time += mine.alone[1]
        late += mine.alone[2]
        shared.update(mine.shared)
    outcomes = Counter(shared.values())
    expected += len(shared)
    on_time += outcomes[1]
    late += outcomes[2]
    return {
        "expected": expected,
        "on_time": on_time,
        "late": late,
        "missed": expected - on_time - late,
    }
