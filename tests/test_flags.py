"""The 请核实 flags (DESIGN §11) as pure functions of a week: each scripted cheat raises its
flag with the evidence, honest work raises none, and the simulator's sample of 200 honest
member-weeks has no false positive (bench/flags.py measures more)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest

from bench.flags import CHEATS, EXPECTED, measure
from bot.config import SLOTS, Config, ConfigError, Supervision, build_config
from schedules.supervision import Activity, Report, all_flags, member_records, normalized

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 3, 2)
PROMPT = {"morning": dt.time(8), "noon": dt.time(12), "evening": dt.time(18)}
NAMES = {11: "张三", 12: "李四", 13: "王五"}
ME, OTHER = 1, 2


def at(day: dt.date, time: dt.time, **delta: float) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=TZ) + dt.timedelta(**delta)


class Week:
    """One member (梁红) with three subjects for a week, and a neighbour (韩冰)."""

    def __init__(self) -> None:
        end = MONDAY + dt.timedelta(days=6)
        self.activity = Activity(start=MONDAY, end=end, now=at(end, dt.time(23)))
        config = Config()
        self.activity.prompt_times = {slot: config.slots[slot].prompt for slot in SLOTS}
        for day in self.activity.days():
            for slot in SLOTS:
                self.activity.deadlines[(day, slot)] = at(day, config.slots[slot].deadline)
                for member in (ME, OTHER):
                    self.activity.prompts[(member, day, slot)] = at(day, PROMPT[slot])
        self.activity.members = {ME: "梁红", OTHER: "韩冰"}
        self.activity.subjects = dict(NAMES)
        self.activity.duty = {
            ME: {day: list(NAMES) for day in self.activity.days()},
            OTHER: {day: [] for day in self.activity.days()},
        }
        self.ids = iter(range(100, 100_000))

    def send(
        self,
        day: dt.date,
        slot: str,
        when: dt.datetime,
        text: str,
        temps: dict[int, float | None],
        member: int = ME,
    ) -> None:
        inbox = next(self.ids)
        self.activity.texts[inbox] = text
        for subject, temp in temps.items():
            self.activity.reports.append(
                Report(next(self.ids), subject, day, slot, member, temp, when, inbox, True)
            )

    def slots(self) -> list[tuple[dt.date, str]]:
        return [(day, slot) for day in self.activity.days() for slot in SLOTS]


def varied(n: int, subject: int) -> float:
    return round(36.2 + ((n * 7 + subject * 3) % 8) / 10, 1)


def honest(week: Week) -> None:
    for n, (day, slot) in enumerate(week.slots()):
        temps = {s: varied(n, s) for s in NAMES}
        text = "，".join(f"{NAMES[s]} {t}" for s, t in temps.items())
        week.send(day, slot, at(day, PROMPT[slot], minutes=20 + n % 50), text, temps)


def copier(week: Week) -> None:
    texts: dict[str, tuple[str, dict]] = {}
    for n, (day, slot) in enumerate(week.slots()):
        if slot not in texts:
            temps = {s: varied(n, s) for s in NAMES}
            texts[slot] = ("，".join(f"{NAMES[s]} {t}" for s, t in temps.items()), temps)
        text, temps = texts[slot]
        week.send(day, slot, at(day, PROMPT[slot], minutes=30), text, temps)


def script(week: Week) -> None:
    for n, (day, slot) in enumerate(week.slots()):
        for i, subject in enumerate(NAMES):
            when = at(day, PROMPT[slot], seconds=5 + 3 * i)
            week.send(day, slot, when, f"{NAMES[subject]} 36.5", {subject: varied(n, subject)})


def flat(week: Week) -> None:
    for n, (day, slot) in enumerate(week.slots()):
        text = f"{'、'.join(NAMES.values())} 都是36.6（第{n}次）"
        week.send(day, slot, at(day, PROMPT[slot], minutes=25), text, dict.fromkeys(NAMES, 36.6))


def early(week: Week) -> None:
    for n, (day, slot) in enumerate(week.slots()):
        when = at(day, PROMPT[slot], minutes=25)
        if slot == "evening":
            when = at(day, dt.time(15))
        temps = {s: varied(n, s) for s in NAMES}
        week.send(day, slot, when, f"晚 {n}", temps)


def covered(week: Week) -> None:
    for n, (day, slot) in enumerate(week.slots()):
        temps = {s: varied(n, s) for s in NAMES}
        who = ME if n % 5 == 0 else OTHER
        week.send(day, slot, at(day, PROMPT[slot], minutes=40), f"代报 {n}", temps, member=who)


@pytest.mark.parametrize(
    ("script_week", "kind", "evidence"),
    [
        (honest, None, ""),
        (copier, "copy_paste", "一字不差"),
        (script, "burst", "秒内报完全部对象"),
        (flat, "flat_readings", "体温都是36.6℃"),
        (early, "before_prompt", "在该时段提示之前就已发出"),
        (covered, "cover_heavy", "由他人上报（韩冰"),
    ],
    ids=["honest", "copy_paste", "burst", "flat_readings", "before_prompt", "cover_heavy"],
)
def test_each_scripted_cheat_raises_its_flag_with_evidence(
    script_week: Callable[[Week], None], kind: str | None, evidence: str
) -> None:
    week = Week()
    script_week(week)
    flags = [f for f in all_flags(week.activity, Supervision()) if f.member == "梁红"]
    assert [f.kind for f in flags] == ([kind] if kind else [])
    for flag in flags:
        assert evidence in flag.detail and flag.detail.endswith(("请核实", "请核实是否逐一联系"))
        # the day the evidence first sufficed (the daily note tells it once), not the last
        assert MONDAY <= flag.day <= MONDAY + dt.timedelta(days=3)
        assert list(flag.as_json()) == ["kind", "member", "date", "detail"]


@pytest.mark.parametrize(
    ("slot", "sent", "flagged"),
    [
        ("evening", dt.time(17, 20), False),  # the parser's evening: an honest early report
        ("evening", dt.time(17, 0), False),  # the window's first minute
        ("evening", dt.time(16, 59), True),  # still the noon window
        ("evening", dt.time(15), True),
        ("noon", dt.time(11, 5), False),
        ("noon", dt.time(10, 30), True),
        ("morning", dt.time(5, 30), False),
        ("morning", dt.time(4, 50), True),  # by its time, last night's evening
    ],
)
def test_before_prompt_only_before_the_slots_own_window(
    slot: str, sent: dt.time, flagged: bool
) -> None:
    """A report inside the slot's time window (DESIGN §3) is never before_prompt, however
    far ahead of the prompt; one sent before the window opens is, on enough slots."""
    week = Week()
    for n, (day, each) in enumerate(week.slots()):
        temps = {s: varied(n, s) for s in NAMES}
        when = at(day, sent) if each == slot else at(day, PROMPT[each], minutes=25)
        week.send(day, each, when, f"{each} {n}", temps)
    kinds = [f.kind for f in all_flags(week.activity, Supervision())]
    assert kinds == (["before_prompt"] if flagged else [])


def test_thresholds_are_settings() -> None:
    week = Week()
    script(week)
    assert [f.kind for f in all_flags(week.activity, Supervision())] == ["burst"]
    assert all_flags(week.activity, Supervision(burst_days=8)) == []
    assert all_flags(week.activity, Supervision(burst_seconds=5)) == []


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("burst_days", 0, "out of range"),
        ("cover_share", 1.5, "out of range"),
        ("flags_at", "25:00", "expected a time"),
        ("review_weekday", 8, "out of range"),
        ("copy_paste", 3, "unknown setting"),
    ],
)
def test_bad_supervision_settings_are_refused(setting: str, value: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build_config({"supervision": {setting: value}}, {})


def test_supervision_settings_are_read() -> None:
    config = build_config(
        {"supervision": {"burst_days": 4, "flags_at": "21:00", "cover_share": 0.6}}, {}
    )
    assert config.supervision == dataclasses.replace(
        Supervision(), burst_days=4, flags_at=dt.time(21), cover_share=0.6
    )


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("早：张三 36.5，李四 36.6", "晚 张三36.5 李四36.6", True),
        ("张三 36.5，李四 36.6", "张三　３６.５，李四 36.6。", True),
        ("张三 36.5，李四 36.6", "张三 36.5，李四 36.7", False),
        ("中午张三36.5", "张三36.5", True),
    ],
)
def test_copies_are_compared_without_spaces_punctuation_or_slot(
    one: str, other: str, same: bool
) -> None:
    assert (normalized(one) == normalized(other)) is same


def test_members_record_counts_due_slots_only() -> None:
    week = Week()
    week.activity.now = at(MONDAY, dt.time(14, 30))  # the noon deadline has passed
    day = MONDAY
    week.send(day, "morning", at(day, dt.time(8, 40)), "都好", dict.fromkeys(NAMES, None))
    week.send(day, "noon", at(day, dt.time(14, 10)), "张三 36.5", {11: 36.5})  # late
    [mine] = [r for r in member_records(week.activity, []) if r["member"] == "梁红"]
    assert mine == {
        "member": "梁红",
        "expected": 6,
        "on_time": 3,
        "late": 1,
        "missed": 2,
        "median_minutes": 40,
        "flags": [],
    }


def test_the_simulators_honest_sample_has_no_false_positive_and_cheats_are_caught() -> None:
    found = measure(seed=1, weeks=200)
    assert found["honest_member_weeks"] >= 200
    assert found["honest_flagged"] == 0, found["honest_flag_kinds"]
    for kind in CHEATS:
        row = found["cheats"][kind]
        if EXPECTED[kind] is None:  # made-up readings that look honest: nothing here sees them
            continue
        assert row["caught"] >= 0.6 * row["member_weeks"], (kind, row)
