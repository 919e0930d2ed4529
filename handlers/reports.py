"""A member's report: parse it, record each contact, raise alerts, answer in plain Chinese."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlite_utils import Database

from handlers.alerts import (
    ALERT_KINDS,
    Unreachable,
    alerts_for_contact,
    queue_corrections,
    queue_unreachable,
)
from handlers.commands import Turn
from handlers.dates import day_label
from handlers.names import NameIndex
from handlers.parser import Entry, ParseResult, Problem, parse_reply
from handlers.slots import split_by_slot
from storage.contacts import NewContact, contacts_on, record_contacts
from storage.roster_cache import cached_member_subjects, cached_village
from storage.subjects import subjects_by_ids

SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
STATUS_CN = {"normal": "正常", "abnormal": "异常", "unreachable": "未联系上", "absent": "外出"}
COVER_NOTE = "多对一代报"
# 张伟36.5 王芳36.7 都好: the 都好 counts for the names written, never for the others
BULK_NAMED_HINT = "（“都好”只算上面写到的人；其余的人都正常请发“其他都正常”）"


def monitoring_day(at: dt.datetime) -> dt.date:
    """00:00–04:59 still belongs to the previous day's evening (DESIGN §3)."""
    return (at - dt.timedelta(days=1)).date() if at.hour < 5 else at.date()


def describe(entry: Entry) -> str:
    parts = [entry.name]
    if entry.temperature is not None:
        parts.append(f"{entry.temperature:.1f}℃")
    if entry.status == "abnormal":
        parts.append("、".join(entry.symptoms) or "异常")
    else:
        parts.append(STATUS_CN[entry.status])
    return " ".join(parts)


def _namesakes(candidates: tuple[str, ...]) -> bool:
    """Candidates that are one name with different addresses (see _namesakes_asked)."""
    return len(candidates) > 1 and len({c.split("（")[0] for c in candidates}) == 1


def problem_question(problem: Problem, own_names: list[str]) -> str:
    yours = "、".join(own_names) or "（无）"
    if problem.reason == "unknown_name":
        guess = f"，您是说“{problem.candidates[0]}”吗？" if problem.candidates else "。"
        return (
            f"“{problem.text}”中的姓名不在您的名单中{guess}您负责：{yours}。"
            f"请用名单上的姓名重发，例如：{own_names[0] if own_names else '张三'} 36.5 正常"
        )
    if problem.reason == "ambiguous_name" and _namesakes(problem.candidates):
        options = "、".join(problem.candidates)
        return (
            f"名单中有同名：{options}，系统无法区分。"
            "请联系书记在名单中区分姓名（例如：张三大、张三小）后再报。"
        )
    if problem.reason == "ambiguous_name":
        options = "、".join(problem.candidates)
        return f"“{problem.text}”可能是{options}，请写全名重发，例如：{problem.candidates[0]} 36.5"
    if problem.reason == "bad_temperature":
        return (
            f"“{problem.text}”的体温没法确认（读数应在34.0–42.5之间，且写全小数，"
            "不写“36度多”这样的约数），请核对后重发，例如：张三 36.5"
        )
    if problem.reason == "no_content":
        return f"“{problem.text}”后面没写情况，请补上体温或状态，例如：{problem.text} 36.5 正常"
    return f"“{problem.text}”没看懂，请按示例重发：张三 36.5 正常"


def unnamed_question(own_names: list[str]) -> str:
    """A reading or a status with no name: never guessed for a member with several subjects."""
    return (
        f"没写是谁的情况，请写上姓名重发，例如：{own_names[0]} 36.5；"
        f"都正常可发“全部正常”。您负责：{'、'.join(own_names)}"
    )


@dataclass
class ReportPlan:
    """What a report means, worked out before the write lock is taken."""

    result: ParseResult
    own: list[dict]
    by_name: dict[str, dict]
    # the member's subjects that share a name: 全部正常 covers each of them
    namesakes: dict[str, list[dict]]


def plan_report(turn: Turn) -> list[ReportPlan] | tuple[str, str]:
    """Parse the report against the member's subjects (reads only), one plan per slot the
    message speaks of; an answer instead when there is nothing to record."""
    db, day, unit = turn.ctx.db, monitoring_day(turn.at), turn.person["unit"]
    village = cached_village(db, unit, day)
    own = cached_member_subjects(db, turn.person["id"], unit, day)
    own_ids = {s["id"] for s in own}
    own_names = tuple(s["name"] for s in own)
    everyone = village.names
    if not village.by_name.keys() >= set(own_names):  # a subject of another village
        everyone = tuple(sorted({*everyone, *own_names}))
    # the village's names in roster order: the index sets the member's own aside itself
    index = NameIndex(own_names, village.row_names, everyone)

    def parse(text: str) -> ParseResult:
        return parse_reply(
            text, own_names, turn.at, fever_threshold=turn.ctx.config.fever_threshold, index=index
        )

    parts = split_by_slot(turn.text)
    results = [parse(part) for part in parts]
    if len(parts) > 1:
        results = _one_per_slot(parts, results, parse)
    by_name = dict(village.by_name)
    by_name.update({s["name"]: s for s in own})
    namesakes = _same_name(own)
    theirs = {
        name: same
        for name, rows in village.namesakes.items()
        if len(same := [s for s in rows if s["id"] not in own_ids]) > 1
    }
    if namesakes or theirs:  # rare: the question names where each one lives
        asked_mine, asked_theirs = _with_addresses(db, namesakes), _with_addresses(db, theirs)
    else:
        asked_mine, asked_theirs = namesakes, theirs
    plans = [
        ReportPlan(_namesakes_asked(result, asked_mine, asked_theirs), own, by_name, namesakes)
        for result in results
        if result.entries or result.problems
    ]
    if not plans:
        from handlers.commands import help_text

        if not own:
            return "help", "您今天没有需要联系的监测对象。发送“帮助”查看用法。"
        if any(result.unnamed for result in results):
            return "problem", unnamed_question([s["name"] for s in own])
        return "help", help_text(turn.roles, unknown=turn.text)
    return plans


def _one_per_slot(
    parts: list[str], results: list[ParseResult], parse: Callable[[str], ParseResult]
) -> list[ParseResult]:
    """Parts that land in the same slot are read as one text (so 全部正常 in one covers only
    who the others did not name); a leading 更正 speaks for every part."""
    grouped: dict[tuple, list[str]] = {}
    for part, result in zip(parts, results, strict=True):
        grouped.setdefault((result.date, result.slot), []).append(part)
    merged = [parse("\n".join(texts)) for texts in grouped.values()]
    if results[0].correction:
        merged = [replace(result, correction=True) for result in merged]
    return merged


def _same_name(subjects: list[dict]) -> dict[str, list[dict]]:
    counts = Counter(s["name"] for s in subjects)
    return {
        name: [s for s in subjects if s["name"] == name]
        for name, count in counts.items()
        if count > 1
    }


def _with_addresses(db: Database, groups: dict[str, list]) -> dict[str, list]:
    """The namesake groups with every subject's address (the roster cache keeps addresses
    only for names its village repeats)."""
    missing = {s["id"] for same in groups.values() for s in same if not s.get("address")}
    if not missing:
        return groups
    found = {row["id"]: row for row in subjects_by_ids(db, missing)}
    return {
        name: [found.get(s["id"], s) if not s.get("address") else s for s in same]
        for name, same in groups.items()
    }


def _namesakes_asked(
    result: ParseResult, mine: dict[str, list[dict]], theirs: dict[str, list[dict]]
) -> ParseResult:
    """A name shared by two of the subjects it could mean (`mine`, the member's own, or for a
    cover report `theirs`, the village's others) is asked back with where each lives, never
    guessed. 全部正常 is not asked: it covers every namesake."""
    if not mine and not theirs:
        return result
    keep, asked = [], list(result.problems)
    for entry in result.entries:
        same = (mine if entry.assigned else theirs).get(entry.name)
        if same and not entry.bulk:
            # addresses only to the member who has them in hand; a cover report (someone
            # else's subjects) sees the grids they belong to
            where = tuple(
                f"{s['name']}（{(s.get('address') if entry.assigned else '') or s['unit']}）"
                for s in same
            )
            asked.append(Problem(entry.typed, "ambiguous_name", where))
        else:
            keep.append(entry)
    return replace(result, entries=tuple(keep), problems=tuple(asked))


def apply_reports(turn: Turn, plans: list[ReportPlan]) -> tuple[str, str]:
    """Apply each slot's plan; one reply for the whole message."""
    unreachable: list[Unreachable] = []
    answers = [apply_report(turn, plan, unreachable) for plan in plans]
    queue_unreachable(turn, unreachable)  # one alert per recipient, all slots of the message
    outcome = "problem" if any(outcome == "problem" for outcome, _ in answers) else "ok"
    return outcome, "\n".join(reply for _, reply in answers)


def apply_report(
    turn: Turn, plan: ReportPlan, unreachable: list[Unreachable] | None = None
) -> tuple[str, str]:
    """Record the planned contacts and alerts (inside the caller's transaction)."""
    db = turn.ctx.db
    result, by_name = plan.result, plan.by_name
    mentioned = [by_name[e.name]["id"] for e in result.entries if e.name in by_name]
    # one read serves the replaced rows, the alerts and the reply's "still missing"
    reported = contacts_on(db, {*mentioned, *(s["id"] for s in plan.own)}, result.date)
    new, entries = [], []
    superseded: set[int] = set()  # subjects whose current report was sent after this one
    for entry in result.entries:
        subjects = plan.namesakes.get(entry.name) if entry.bulk else None
        if subjects is None:
            subjects = [by_name[entry.name]] if entry.name in by_name else []
        note = entry.note if entry.assigned else " ".join(p for p in (entry.note, COVER_NOTE) if p)
        for subject in subjects:
            previous = reported.get((subject["id"], result.slot))
            if entry.bulk and previous is not None:
                continue  # 全部正常 covers the rest; it never overwrites a report already in
            said = _kept_symptoms(entry, previous) if result.correction else entry
            later = previous is not None and _sent_after(previous, turn.at)
            if later:
                superseded.add(subject["id"])
            new.append(
                NewContact(
                    subject["id"],
                    said.temperature,
                    said.status,
                    said.symptoms,
                    note,
                    superseded_by=previous["id"] if later else None,
                )
            )
            entries.append((said, subject, previous))
    record_contacts(
        db,
        new,
        day=result.date,
        slot=result.slot,
        member_id=turn.person["id"],
        at=turn.at,
        inbox_id=turn.inbox_id,
        actor=f"person:{turn.person['id']}",
        current=reported,
    )
    done = {sid for sid, slot in reported if slot == result.slot} | {c.subject_id for c in new}
    alerted = []
    for entry, subject, previous in entries:
        if subject["id"] in superseded:
            continue  # what is on record now is what anyone is told about
        people = alerts_for_contact(turn, subject, entry, result, previous, unreachable)
        if people:
            alerted.append(f"已通知{'、'.join(p['name'] for p in people)}（{entry.name}）")
        if previous is not None and previous["status"] in ALERT_KINDS:
            fever_gone = _fever_gone(previous, entry)
            if previous["status"] != entry.status or fever_gone:  # the alert is void now
                told = queue_corrections(
                    turn,
                    subject,
                    result.date,
                    result.slot,
                    previous["status"],
                    describe(entry),
                    voided_word="发热" if fever_gone else None,
                )
                if told:
                    names = "、".join(p["name"] for p in told)
                    alerted.append(f"已向{names}发送更正（{entry.name}）")
    outcome = "problem" if result.problems else "ok"
    released = {}
    if any(problem.reason == "unknown_name" for problem in result.problems):
        released = _released(db, turn.person["id"], result.date)
    return outcome, _reply(result, entries, alerted, plan.own, done, superseded, released)


def _kept_symptoms(entry: Entry, previous: dict | None) -> Entry:
    """`更正 张三 36.4` after `张三 37.6 咳嗽` corrects the reading, not the cough: a correction
    that gives a reading and nothing else keeps the symptoms on record (发热 follows the new
    reading)."""
    if not entry.bare_temperature or previous is None or previous["status"] != "abnormal":
        return entry
    kept = [s for s in (previous["symptoms"] or "").split("、") if s and s != "发热"]
    symptoms = (*entry.symptoms, *(s for s in kept if s not in entry.symptoms))
    return replace(entry, symptoms=symptoms, status="abnormal" if symptoms else entry.status)


def _fever_gone(previous: dict, entry: Entry) -> bool:
    """An abnormal report whose fever was corrected away while another symptom stays."""
    said = (previous["symptoms"] or "").split("、")
    return entry.status == "abnormal" and "发热" in said and "发热" not in entry.symptoms


def _released(db: Database, person_id: int, day: dt.date) -> dict[str, str]:
    """The member's subjects no longer monitored on `day`: name → the day it ended."""
    rows = db.execute(
        """SELECT s.name, coalesce(s.released_on, date(s.end_date, '+1 day'))
           FROM subjects s JOIN assignments a ON a.subject_id = s.id
           WHERE a.person_id = ? AND s.start_date <= ? AND (s.status != 'active'
                 OR s.end_date < ? OR s.released_on <= ?)
           ORDER BY s.start_date""",
        [person_id, *[day.isoformat()] * 3],
    ).fetchall()
    return {name: day_label(dt.date.fromisoformat(ended)) for name, ended in rows}


def _released_name(problem: Problem, released: dict[str, str]) -> str | None:
    if problem.reason != "unknown_name":
        return None
    return next((name for name in released if problem.text.startswith(name)), None)


def _sent_after(previous: dict, at: dt.datetime) -> bool:
    """Whether the report on record was sent after a message sent at `at`."""
    stamp = previous.get("reported_at")
    return bool(stamp) and dt.datetime.fromisoformat(stamp) > at


def _reply(
    result: ParseResult,
    entries: list[tuple[Entry, dict, dict | None]],
    alerted: list[str],
    own: list[dict],
    done: set[int],
    superseded: set[int],
    released: dict[str, str] | None = None,
) -> str:
    lines = []
    if not entries and not result.problems:
        # 全部正常 when everyone is already reported: say so, or the member hears nothing
        return f"{SLOT_CN[result.slot]}间已全部上报，未作更改。"
    if entries:
        corrected = result.correction and any(previous for _, _, previous in entries)
        head = "已更正" if corrected else "已记录"
        lines.append(f"{head}（{day_label(result.date)}{SLOT_CN[result.slot]}）：")
        bulk = [e for e, _, _ in entries if e.bulk]
        for entry, subject, previous in entries:
            if entry.bulk:
                continue
            mark = "⚠ " if entry.status != "normal" else ""
            replaced = "（已覆盖之前的上报）" if previous and not result.correction else ""
            if subject["id"] in superseded:
                replaced = "（此后已有新的上报，以新的为准）"
            cover = "（非您负责，已代报）" if not entry.assigned else ""
            lines.append(f"{mark}{describe(entry)}{cover}{replaced}")
        if bulk:
            lines.append(f"{'、'.join(e.name for e in bulk)} 正常")
        lines.extend(alerted)
    for problem in result.problems:
        ended = _released_name(problem, released or {})
        if ended:  # 解除 or the period's end: nothing to record, and the member is told why
            lines.append(
                f"ℹ {ended}已于{(released or {})[ended]}解除居家监测，无需再上报，本条未记录。"
            )
            continue
        lines.append("❓ " + problem_question(problem, [s["name"] for s in own]))
    missing = [s["name"] for s in own if s["id"] not in done]
    if entries and own:
        if missing:
            lines.append(f"本时段还差：{'、'.join(missing)}")
            if result.bulk_named:
                lines.append(BULK_NAMED_HINT)
        else:
            lines.append("本时段已全部上报，辛苦了！")
    return "\n".join(lines)
