"""The scheduled jobs of the daily routine (DESIGN §2) as plain functions.

Each job takes `(db, config, send, now)`, where `now` is the job's scheduled time (its date
decides the content), and `send(person, kind, text, key)` queues one outbox message under an
idempotency key (kind, target, date, slot), and says False when that key was sent before,
so running a job twice sends nothing new. Jobs only read (except `release`): the runner
writes what they send in short transactions, as they go. Each returns how many messages it
sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import groupby

import sqlite_utils

from bot.config import Config
from bot.links import view_link
from schedules.digest import (
    UNASSIGNED,
    DayData,
    Subject,
    UnitTree,
    day_label,
    digest_recipients,
    digest_text,
    digests_for,
    load_day,
    report_time,
    scopes,
)
from schedules.digest import deadline as deadline_time
from storage.audit import record_change
from storage.outbox import send_key
from storage.people import roles_of
from storage.subjects import ACTIVE_ON

# queues one message under its key (with its card, bot/channels/cards.py, as `card=`);
# False when the key was sent before
Send = Callable[..., bool]
SLOT_TITLES = {"morning": "早间", "noon": "午间", "evening": "晚间"}
REPORT_TITLES = {1: "上午", 2: "晚间"}
ACTOR = "schedule"
MEMBER_CHUNK = 5000  # members a fan-out reads at a time


def person_target(person: dict) -> str:
    return f"person:{person['id']}"


def _send_once(
    send: Send,
    person: dict,
    kind: str,
    text: str,
    *,
    target: str,
    day: dt.date,
    slot: str,
    card: dict | None = None,
) -> int:
    key = send_key(kind=kind, target=target, day=day, slot=slot)
    if card is None:
        return int(bool(send(person, kind, text, key)))
    return int(bool(send(person, kind, text, key, card=card)))


def card(title: str, summary: str, page: str, day: dt.date, unit: str | None = None) -> dict:
    """What a message is in a few words, and the page that shows all of it: `member` (the
    recipient's page of `day`) or `view` (the secretary view of `unit` on `day`)."""
    found = {"title": title, "summary": summary, "page": page, "day": day.isoformat()}
    if unit:
        found["unit"] = unit
    return found


def _active_people(db: sqlite_utils.Database) -> dict[int, dict]:
    return {row["id"]: row for row in db.query("SELECT * FROM people WHERE active ORDER BY id")}


def _members_with_subjects(
    db: sqlite_utils.Database, day: dt.date, first: int, last: int | None
) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(person id, [(subject id, name)]) of active people with ids first..last (None: all)
    who have active subjects on `day`, by person id."""
    rows = db.conn.execute(
        f"""SELECT a.person_id, s.id, s.name FROM assignments a
            JOIN subjects s ON s.id = a.subject_id JOIN people p ON p.id = a.person_id
            WHERE p.active AND {ACTIVE_ON} AND a.person_id >= :first
              AND (:last IS NULL OR a.person_id <= :last)
            ORDER BY a.person_id, s.id""",
        {"day": day.isoformat(), "first": first, "last": last},
    )
    for person_id, group in groupby(rows, key=lambda row: row[0]):
        yield person_id, [(subject_id, name) for _, subject_id, name in group]


def members_to_contact(
    db: sqlite_utils.Database, day: dt.date, chunk: int = MEMBER_CHUNK
) -> Iterator[tuple[dict, list[tuple[int, str]]]]:
    """(person {id, name, wechat_id}, [(subject id, name)]) of each active person with
    active subjects on `day`, read `chunk` people at a time: a province's fan-out holds a
    few thousand members, not 100,000 (bench.province)."""
    ids = [row[0] for row in db.conn.execute("SELECT id FROM people WHERE active ORDER BY id")]
    for start in range(0, len(ids), chunk):
        first, last = ids[start], ids[min(start + chunk, len(ids)) - 1]
        people = {
            row[0]: {"id": row[0], "name": row[1], "wechat_id": row[2]}
            for row in db.conn.execute(
                "SELECT id, name, wechat_id FROM people WHERE active AND id BETWEEN ? AND ?",
                [first, last],
            )
        }
        for person_id, subjects in list(_members_with_subjects(db, day, first, last)):
            yield people[person_id], subjects


def example_reply(names: list[str]) -> str:
    """One reply in the grammar members type (DESIGN §3)."""
    if len(names) == 1:
        return f"{names[0]} 36.5 正常"
    return f"{names[0]} 36.5 正常，{names[1]} 36.8"


def prompt_text(slot: str, day: dt.date, names: list[str]) -> str:
    return "\n".join(
        [
            f"【{SLOT_TITLES[slot]}联系】{day_label(day)}，"
            f"请联系您负责的 {len(names)} 位监测对象：",
            "、".join(names),
            "联系后直接回复体温和情况，例如：",
            example_reply(names),
        ]
    )


def prompt(
    db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime, slot: str
) -> int:
    """Each member with an active subject gets the list to contact and an example reply."""
    day = now.date()
    sent = 0
    for person, subjects in members_to_contact(db, day):
        text = prompt_text(slot, day, [name for _, name in subjects])
        sent += _send_once(
            send,
            person,
            "prompt",
            text,
            target=person_target(person),
            day=day,
            slot=slot,
            card=card(f"{SLOT_TITLES[slot]}联系提醒", f"{len(subjects)}人待联系", "member", day),
        )
    return sent


def reminder_text(slot: str, config: Config, names: list[str]) -> str:
    due = config.slots[slot].deadline
    return "\n".join(
        [
            f"【{SLOT_TITLES[slot]}提醒】还有 {len(names)} 位监测对象未报告（{due:%H:%M} 截止）：",
            "、".join(names),
            f"联系后直接回复，例如：{example_reply(names[:1])}",
        ]
    )


def reminder(
    db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime, slot: str
) -> int:
    """Each member still missing subjects in the slot gets the names left.

    A report by anyone (another member covering) counts: the subject is contacted.
    """
    day = now.date()
    reported = {
        row[0]
        for row in db.conn.execute(
            "SELECT subject_id FROM contacts WHERE date = ? AND slot = ? AND current = 1",
            [day.isoformat(), slot],
        )
    }
    sent = 0
    for person, subjects in members_to_contact(db, day):
        left = [name for subject_id, name in subjects if subject_id not in reported]
        if left:
            sent += _send_once(
                send,
                person,
                "reminder",
                reminder_text(slot, config, left),
                target=person_target(person),
                day=day,
                slot=slot,
                card=card(
                    f"{SLOT_TITLES[slot]}催报",
                    f"{len(left)}人未报 {config.slots[slot].deadline:%H:%M}截止",
                    "member",
                    day,
                ),
            )
    return sent


def missed_text(slot: str, day: dt.date, due: dt.time, lines: list[str], count: int) -> str:
    head = (
        f"【{SLOT_TITLES[slot]}未报】{day_label(day)} {due:%H:%M} 截止，{count} 位监测对象未报告："
    )
    return "\n".join([head, *lines])


def deadline(
    db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime, slot: str
) -> int:
    """Each monitor gets one message listing, per member, the subjects with no report.

    Missing means no report recorded by the deadline; a monitor sees only units it is
    responsible for; nothing is sent when nothing is missing.
    """
    day = now.date()
    tree = UnitTree.load(db)
    people = _active_people(db)
    monitors = [p for p in people.values() if "monitor" in roles_of(p)]
    sent = 0
    for root in scopes(tree):  # a county at a time (a monitor's units are in one tree)
        data = load_day(db, config, day, deadline_time(config, day, slot), root, units=tree)
        missing = [s for s in data.subjects if s.active and (s.id, slot) not in data.reports.status]
        if not missing:
            continue
        mine = (
            monitors
            if root is None
            else [m for m in monitors if tree.ancestors(m["unit"])[-1:] == [root]]
        )
        sent += _missed_alerts(send, config, tree, people, mine, data, missing, day, slot)
    return sent


def _missed_alerts(
    send: Send,
    config: Config,
    tree: UnitTree,
    people: dict[int, dict],
    monitors: list[dict],
    data: DayData,
    missing: list[Subject],
    day: dt.date,
    slot: str,
) -> int:
    # each missing subject under every unit above it, once (a province's 500 monitors
    # tested against its 15,000 missing subjects one by one took 15 s, bench.province)
    under: dict[str, list[int]] = defaultdict(list)
    by_unit: dict[str, list[int]] = defaultdict(list)
    for index, subject in enumerate(missing):
        by_unit[subject.unit].append(index)
        for unit in tree.ancestors(subject.unit):
            under[unit].append(index)
    sent = 0
    for monitor in monitors:
        # storage.people.monitors_for: a monitor at the unit, below it, or above it
        found = set(under.get(monitor["unit"], ()))
        for unit in tree.ancestors(monitor["unit"])[1:]:
            found.update(by_unit.get(unit, ()))
        mine = [missing[index] for index in sorted(found)]
        if not mine:
            continue
        villages = {tree.village_of(s.unit) for s in mine}
        by_member: dict[tuple[int, str], list[str]] = defaultdict(list)
        for subject in mine:
            members = data.members.get(subject.id) or [(0, UNASSIGNED)]
            # a subject two members share (多对一) is listed under each, and said so: the
            # count in the heading is of subjects
            name = f"{subject.name}（共管）" if len(members) > 1 else subject.name
            for member in members:
                by_member[member].append(name)
        lines = []
        for (member_id, member), names in sorted(
            by_member.items(), key=lambda item: (item[0][0] == 0, item[0][0])
        ):
            where = ""
            if len(villages) > 1 and member_id in people:
                village = tree.village_of(people[member_id]["unit"])
                where = f"（{tree.units[village].name}）" if village else ""
            lines.append(f"{member}{where}：{'、'.join(names)}")
        text = missed_text(slot, day, config.slots[slot].deadline, lines, len(mine))
        sent += _send_once(
            send,
            monitor,
            "missed_alert",
            text,
            target=person_target(monitor),
            day=day,
            slot=slot,
            card=card(
                f"{SLOT_TITLES[slot]}未报预警", f"{len(mine)}人未报", "view", day, monitor["unit"]
            ),
        )
    return sent


def digest(
    db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime, report: int
) -> int:
    """Report `report` (1 or 2): each village's digest to its secretaries, roll-ups above.

    A village with nothing to report (no active subject, no release, no open need) is skipped.
    """
    day = now.date()
    as_of = report_time(config, day, report)
    tree = UnitTree.load(db)
    recipients = digest_recipients(tree, _active_people(db).values())
    sent = 0
    for root in scopes(tree):  # a county at a time: its digests need only its tree
        codes = sorted(
            code for code in recipients if root is None or tree.ancestors(code)[-1:] == [root]
        )
        if codes:
            data = load_day(db, config, day, as_of, root, units=tree)
            digests = digests_for(data, config, codes, report, as_of)
            del data
            sent += _send_digests(db, config, send, recipients, digests, day, now, report)
    return sent


def _send_digests(
    db: sqlite_utils.Database,
    config: Config,
    send: Send,
    recipients: dict[str, list[dict]],
    digests: dict[str, dict],
    day: dt.date,
    now: dt.datetime,
    report: int,
) -> int:
    sent = 0
    keep = getattr(send, "keep", None)  # the runner keeps each digest as sent
    for code, found in digests.items():
        if not (found["active"] or found["released_today"] or found["needs"]):
            continue
        if keep is not None:
            keep(code, day, report, found)
        text = digest_text(found, view_link(db, config, code, day, now))
        title = f"{found['unit_name']}{REPORT_TITLES.get(report, '')}汇总"
        about = card(title, digest_summary(found), "view", day, code)
        for person in recipients[code]:
            sent += _send_once(
                send,
                person,
                "digest",
                text,
                target=f"{code}/{person_target(person)}",
                day=day,
                slot=f"report{report}",
                card=about,
            )
    return sent


def digest_summary(found: dict) -> str:
    """异常1人 未报2人: the digest's counts in a template field (人次, as the digest counts)."""
    missing = sum(len(counts["missing"]) for counts in found["slots"].values())
    parts = [f"异常{len(found['abnormal'])}人"]
    if found["unreachable"]:
        parts.append(f"联系不上{len(found['unreachable'])}人")
    parts.append(f"未报{missing}人")
    if not found["active"]:
        return f"今日解除{len(found['released_today'])}人"
    return " ".join(parts)


def release_text(by_day: dict[dt.date, list[str]]) -> str:
    """One notice for every release a run records for one person, grouped by release date
    when a catch-up covers several days."""
    count = sum(len(lines) for lines in by_day.values())
    if len(by_day) == 1:
        [(released_on, lines)] = by_day.items()
        return "\n".join(
            [
                f"【期满解除】以下 {count} 位监测对象监测期满，"
                f"{day_label(released_on)}起解除居家监测，无需再每日联系：",
                *lines,
            ]
        )
    parts = [f"【期满解除】以下 {count} 位监测对象监测期满，已解除居家监测，无需再每日联系："]
    for released_on, lines in sorted(by_day.items()):
        parts += [f"{day_label(released_on)}起解除：", *lines]
    return "\n".join(parts)


def release(db: sqlite_utils.Database, config: Config, send: Send, now: dt.datetime) -> int:
    """Record every release whose period ended before today and was not yet recorded.

    Each subject becomes 'released' from the day after its last day (audited); its members
    and its village's secretaries get one `release` message each, for all the subjects the
    run released (a catch-up after downtime: grouped by release date, in one message).
    """
    today = now.date()
    ended = list(
        db.query(
            "SELECT * FROM subjects WHERE status = 'active' AND end_date < ? ORDER BY id",
            [today.isoformat()],
        )
    )
    if not ended:
        return 0
    tree = UnitTree.load(db)
    people = _active_people(db)
    secretaries = digest_recipients(tree, people.values())
    members: dict[int, list[int]] = defaultdict(list)
    for subject_id, person_id in db.conn.execute(
        "SELECT a.subject_id, a.person_id FROM assignments a JOIN subjects s"
        " ON s.id = a.subject_id WHERE s.status = 'active' AND s.end_date < ?"
        " ORDER BY a.subject_id, a.position",
        [today.isoformat()],
    ):
        members[subject_id].append(person_id)
    notices: dict[int, dict[dt.date, list[str]]] = defaultdict(lambda: defaultdict(list))
    released: dict[int, list[int]] = defaultdict(list)
    for subject in ended:
        last = dt.date.fromisoformat(subject["end_date"])
        released_on = last + dt.timedelta(days=1)
        db.execute(
            "UPDATE subjects SET status = 'released', released_on = ? WHERE id = ?",
            [released_on.isoformat(), subject["id"]],
        )
        record_change(
            db,
            now,
            ACTOR,
            "subjects",
            subject["id"],
            "release",
            {"status": "active", "released_on": subject["released_on"]},
            {"status": "released", "released_on": released_on.isoformat()},
        )
        start = dt.date.fromisoformat(subject["start_date"])
        village = tree.village_of(subject["unit"])
        where = f"{tree.units[village].name}，" if village else ""
        line = f"{subject['name']}（{where}{day_label(start)}—{day_label(last)}）"
        to = [pid for pid in members[subject["id"]] if pid in people]
        to += [p["id"] for p in secretaries.get(village or "", []) if p["id"] not in to]
        for person_id in to:
            notices[person_id][released_on].append(line)
            released[person_id].append(subject["id"])
    sent = 0
    for person_id, by_day in sorted(notices.items()):
        person = people[person_id]
        sent += _send_once(
            send,
            person,
            "release",
            release_text(by_day),
            target=person_target(person),
            # one notice per person and run, however many days a catch-up covers; keyed on
            # the subjects too: a second run the same day (a late import) announces its own
            day=today,
            slot=_subjects_key(released[person_id]),
        )
    return sent


def _subjects_key(subject_ids: list[int]) -> str:
    return hashlib.sha1(",".join(map(str, sorted(subject_ids))).encode()).hexdigest()[:16]
