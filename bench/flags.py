"""How well the 请核实 flags (DESIGN §11) tell honest members from scripted cheats.

`python -m bench.flags [--weeks 200] [--seed 1]` simulates, from a seed, member-weeks of
honest members and of each kind of cheat, runs every flag on them (the same pure functions
the weekly pack runs, schedules/supervision.py) and prints the false positives among honest
members and the catch rate per cheat.

Honest members report minutes to hours after the prompt (now and then after the deadline,
rarely not at all), their subjects' temperatures vary (36.1–37.0, each subject around its own
level, drifting day to day), their wording varies (their own habits, slot markers or not,
全部正常 some days), and they send one message for the whole list or one per subject; some
do the evening round on some days from 17:00, before the 18:00 prompt (the evening by the
parser's slot rule, so never before_prompt).

Cheats: `copy_paste` sends yesterday's text again for each slot; `script` sends everyone's
report seconds after each prompt; `uniform` makes readings up, uniform 36.5–36.9; `all_same`
gives every subject one temperature; `early` sends the evening report in the afternoon;
`covered` lets a neighbour report most of their subjects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from bot.config import SLOTS, Config
from schedules.supervision import Activity, Report, all_flags

TZ = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 3, 2)
CHEATS = ("copy_paste", "script", "uniform", "all_same", "early", "covered")
# what each cheat should raise; `uniform` is listed for the record: nothing here can see it
EXPECTED = {
    "copy_paste": "copy_paste",
    "script": "burst",
    "uniform": None,
    "all_same": "flat_readings",
    "early": "before_prompt",
    "covered": "cover_heavy",
}
SURNAMES = (
    "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国兰峰红梅玉珍"
MARK = {"morning": "早", "noon": "中", "evening": "晚"}


class Sim:
    """One simulated unit: members, subjects, messages, reports and prompts of one week."""

    def __init__(self, rng: random.Random, config: Config) -> None:
        self.rng, self.config = rng, config
        end = MONDAY + dt.timedelta(days=6)
        now = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(9), tzinfo=TZ)
        self.activity = Activity(start=MONDAY, end=end, now=now)
        self.activity.prompt_times = {slot: config.slots[slot].prompt for slot in SLOTS}
        for day in self.activity.days():
            for slot in SLOTS:
                self.activity.deadlines[(day, slot)] = self.at(day, config.slots[slot].deadline)
        self.kind: dict[int, str] = {}
        self.next_id = 1

    def at(self, day: dt.date, time: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, time, tzinfo=TZ)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def name(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(
            self.rng.choices(GIVEN, k=self.rng.choice((1, 2)))
        )

    def add_member(self, kind: str) -> int:
        rng = self.rng
        member = self.new_id()
        self.kind[member] = kind
        self.activity.members[member] = self.name()
        count = rng.choices((1, 2, 3, 4, 5, 6), weights=(10, 25, 25, 20, 12, 8))[0]
        if kind in ("all_same", "copy_paste"):
            count = max(count, 2)  # one subject has nothing to be flat or copied against
        days = self.activity.days()
        duty: dict[dt.date, list[int]] = {day: [] for day in days}
        for _ in range(count):
            subject = self.new_id()
            self.activity.subjects[subject] = self.name()
            # most run all week; some start or end inside it
            first = rng.choice(days) if rng.random() < 0.15 else days[0]
            last = rng.choice(days) if rng.random() < 0.15 else days[-1]
            for day in days:
                if first <= day <= max(first, last):
                    duty[day].append(subject)
        self.activity.duty[member] = duty
        for day in days:
            for slot in SLOTS:
                if duty[day]:
                    # the console channel delivers within a few seconds of the job
                    delivered = self.at(day, self.config.slots[slot].prompt)
                    delivered += dt.timedelta(seconds=rng.uniform(0, 5))
                    self.activity.prompts[(member, day, slot)] = delivered
        return member

    def message(self, member: int, at: dt.datetime, text: str, readings: list) -> None:
        """One message carrying (subject, day, slot, temperature) readings."""
        inbox = self.new_id()
        self.activity.texts[inbox] = text
        for subject, day, slot, temperature in readings:
            self.activity.reports.append(
                Report(self.new_id(), subject, day, slot, member, temperature, at, inbox, True)
            )


class Honest:
    """A member's habits: speed, wording, how they split messages."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.median = rng.uniform(8, 90)  # minutes from the prompt, a person's own pace
        self.late_rate = rng.uniform(0, 0.06)
        self.miss_rate = rng.uniform(0, 0.02)
        self.split = rng.choice(("one", "each", "mixed"))
        self.template = rng.choice(
            ("{n} {t}", "{n}{t}", "{n} {t} 正常", "{n}体温{t}，无异常", "{n} {t}度", "{n}：{t}℃")
        )
        self.joiner = rng.choice(("，", " ", "\n", "；"))
        self.marker = rng.random() < 0.4
        self.bulk = rng.uniform(0, 0.3)  # share of slots answered 全部正常 (no readings)
        # some do the evening round on some days between 17:00 (the parser's evening) and
        # the 18:00 prompt: on time by the slot rule, not ahead of it
        # (drawn from a generator of their own: the main stream, and so every other figure,
        # stays as it was)
        self.own = random.Random(self.median)
        self.evening_early = self.own.uniform(0, 0.5) if self.own.random() < 0.3 else 0.0
        self.levels: dict[int, float] = {}
        self.drift: dict[tuple[int, dt.date], float] = {}

    def delay(self, slot_minutes: int = 120) -> dt.timedelta:
        rng = self.rng
        if rng.random() < self.late_rate:
            minutes = rng.uniform(slot_minutes, slot_minutes + 180)
        else:
            minutes = min(rng.lognormvariate(0, 0.7) * self.median, slot_minutes - 1)
        return dt.timedelta(minutes=max(minutes, 2 + rng.random() * 3))

    def temperature(self, subject: int, day: dt.date) -> float:
        rng = self.rng
        level = self.levels.setdefault(subject, rng.uniform(36.2, 36.8))
        drift = self.drift.setdefault((subject, day), rng.gauss(0, 0.1))
        value = level + drift + rng.gauss(0, 0.12)
        return round(min(max(value, 36.1), 37.0), 1)

    def wording(self, name: str, temperature: float) -> str:
        if self.rng.random() < 0.15:  # now and then a different form
            form = self.rng.choice(("{n} {t}", "{n}{t}度正常", "{n} 体温{t}"))
            return form.format(n=name, t=f"{temperature:.1f}")
        return self.template.format(n=name, t=f"{temperature:.1f}")


def slots_on_duty(sim: Sim, member: int) -> Iterator[tuple[dt.date, str, list[int], dt.datetime]]:
    """(day, slot, the member's subjects, when they were prompted) of each slot the member
    had subjects in, in order."""
    for day in sim.activity.days():
        for slot in SLOTS:
            subjects = sim.activity.duty[member][day]
            if subjects:
                yield day, slot, subjects, sim.activity.prompts[(member, day, slot)]


def honest_week(sim: Sim, member: int, habits: Honest, *, temps=None, bulk: bool = True) -> None:
    """The member works the week honestly (or with made-up `temps(subject, day)`)."""
    rng = sim.rng
    names = sim.activity.subjects
    for day, slot, subjects, prompt in slots_on_duty(sim, member):
        if rng.random() < habits.miss_rate:
            continue
        if slot == "evening" and habits.own.random() < habits.evening_early:
            # the delay below adds 2–120 minutes: start from 17:00 less a little
            prompt = sim.at(day, dt.time(17)) - dt.timedelta(minutes=2)
        marker = f"{MARK[slot]}：" if habits.marker else ""
        readings = [(s, day, slot, (temps or habits.temperature)(s, day)) for s in subjects]
        if bulk and rng.random() < habits.bulk:
            sim.message(
                member,
                prompt + habits.delay(),
                f"{marker}全部正常",
                [(s, d, sl, None) for s, d, sl, _ in readings],
            )
            continue
        split = habits.split if habits.split != "mixed" else rng.choice(("one", "each"))
        if split == "one" or len(subjects) == 1:
            text = habits.joiner.join(habits.wording(names[s], t) for s, _, _, t in readings)
            sim.message(member, prompt + habits.delay(), marker + text, readings)
        else:
            when = prompt + habits.delay()
            for reading in readings:
                when += dt.timedelta(seconds=rng.uniform(20, 400))
                text = habits.wording(names[reading[0]], reading[3])
                sim.message(member, when, marker + text, [reading])


def copy_paste_week(sim: Sim, member: int, habits: Honest) -> None:
    """Day one honestly, in one message per slot; then yesterday's text again, each slot."""
    rng, names = sim.rng, sim.activity.subjects
    sent: dict[str, tuple[str, dict[int, float]]] = {}
    for day, slot, subjects, prompt in slots_on_duty(sim, member):
        if slot in sent:
            text, temps = sent[slot]
            readings = [(s, day, slot, temps.get(s, 36.5)) for s in subjects]
            text_now = text
        else:
            temps = {s: habits.temperature(s, day) for s in subjects}
            readings = [(s, day, slot, temps[s]) for s in subjects]
            text_now = habits.joiner.join(habits.wording(names[s], temps[s]) for s in subjects)
        sim.message(member, prompt + habits.delay(), text_now, readings)
        sent[slot] = (text_now, {s: t for s, _, _, t in readings})
    del rng


def script_week(sim: Sim, member: int, habits: Honest) -> None:
    """A script: every subject's report seconds after each prompt."""
    rng, names = sim.rng, sim.activity.subjects
    for day, slot, subjects, prompt in slots_on_duty(sim, member):
        when = prompt + dt.timedelta(seconds=rng.uniform(3, 20))
        for s in subjects:
            t = round(rng.uniform(36.3, 36.8), 1)
            sim.message(member, when, f"{names[s]} {t:.1f}", [(s, day, slot, t)])
            when += dt.timedelta(seconds=rng.uniform(1, 6))


def early_week(sim: Sim, member: int, habits: Honest) -> None:
    """Honest mornings and noons; the evening reported at 14:00–16:30, marked 晚."""
    honest_week(sim, member, habits, bulk=False)
    names = sim.activity.subjects
    for day in sim.activity.days():
        subjects = sim.activity.duty[member][day]
        if not subjects:
            continue
        sim.activity.reports[:] = [
            r
            for r in sim.activity.reports
            if not (r.member_id == member and r.day == day and r.slot == "evening")
        ]
        when = sim.at(day, dt.time(14)) + dt.timedelta(minutes=sim.rng.uniform(0, 150))
        readings = [(s, day, "evening", habits.temperature(s, day)) for s in subjects]
        text = "晚：" + habits.joiner.join(habits.wording(names[s], t) for s, _, _, t in readings)
        sim.message(member, when, text, readings)


def covered_week(sim: Sim, member: int, habits: Honest, neighbour: int) -> None:
    """The neighbour reports most of the member's subjects; the member a few."""
    rng, names = sim.rng, sim.activity.subjects
    other = Honest(rng)
    for day, slot, subjects, prompt in slots_on_duty(sim, member):
        who = member if rng.random() < 0.2 else neighbour
        readings = [(s, day, slot, habits.temperature(s, day)) for s in subjects]
        text = "，".join(other.wording(names[s], t) for s, _, _, t in readings)
        sim.message(who, prompt + other.delay(), text, readings)


def simulate(seed: int, honest: int, cheats: int, config: Config | None = None) -> Sim:
    """A unit of `honest` honest members and `cheats` of each cheat kind, one week."""
    config = config or Config()
    rng = random.Random(seed)
    sim = Sim(rng, config)
    plan = ["honest"] * honest + [kind for kind in CHEATS for _ in range(cheats)]
    rng.shuffle(plan)
    neighbours: list[int] = []
    for kind in plan:
        member = sim.add_member(kind)
        habits = Honest(rng)
        if kind == "honest":
            honest_week(sim, member, habits)
            neighbours.append(member)
        elif kind == "copy_paste":
            copy_paste_week(sim, member, habits)
        elif kind == "script":
            script_week(sim, member, habits)
        elif kind == "uniform":
            honest_week(sim, member, habits, temps=lambda s, d: round(rng.uniform(36.5, 36.9), 1))
        elif kind == "all_same":
            value = round(rng.uniform(36.3, 36.7), 1)
            honest_week(sim, member, habits, temps=lambda s, d, v=value: v, bulk=False)
        elif kind == "early":
            early_week(sim, member, habits)
        elif kind == "covered":
            # the neighbour is a member of the same unit (made here when none exists yet)
            neighbour = neighbours[-1] if neighbours else sim.add_member("neighbour")
            covered_week(sim, member, habits, neighbour)
    return sim


def measure(seed: int = 1, weeks: int = 200, cheats: int = 2, unit_size: int = 20) -> dict:
    """Honest member-weeks flagged, and cheats caught by the flag meant for them (and by any)."""
    settings = Config().supervision
    honest_weeks = honest_flagged = 0
    honest_kinds: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    caught_any: Counter[str] = Counter()
    total: Counter[str] = Counter()
    unit = 0
    while honest_weeks < weeks:
        sim = simulate(seed * 100_003 + unit, unit_size, cheats)
        unit += 1
        flags = all_flags(sim.activity, settings)
        by_member: dict[int, set[str]] = {}
        for flag in flags:
            by_member.setdefault(flag.member_id, set()).add(flag.kind)
        for member, kind in sim.kind.items():
            raised = by_member.get(member, set())
            if kind in ("honest", "neighbour"):
                honest_weeks += 1
                if raised:
                    honest_flagged += 1
                    honest_kinds.update(raised)
                continue
            total[kind] += 1
            if EXPECTED[kind] in raised:
                caught[kind] += 1
            if raised:
                caught_any[kind] += 1
    return {
        "honest_member_weeks": honest_weeks,
        "honest_flagged": honest_flagged,
        "honest_flag_kinds": dict(honest_kinds),
        "cheats": {
            kind: {
                "member_weeks": total[kind],
                "expected_flag": EXPECTED[kind],
                "caught": caught[kind],
                "caught_by_any_flag": caught_any[kind],
            }
            for kind in CHEATS
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flags", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--weeks", type=int, default=200, help="honest member-weeks (200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cheats", type=int, default=2, help="of each kind per unit of 20")
    args = parser.parse_args(argv)
    result = measure(seed=args.seed, weeks=args.weeks, cheats=args.cheats)
    print(
        f"honest member-weeks: {result['honest_member_weeks']}, flagged: "
        f"{result['honest_flagged']} {result['honest_flag_kinds'] or ''}"
    )
    for kind, row in result["cheats"].items():
        share = row["caught"] / row["member_weeks"] if row["member_weeks"] else 0
        meant = row["expected_flag"] or "(none meant)"
        print(
            f"{kind:<11} {row['member_weeks']:>4} member-weeks: caught by {meant:<14} "
            f"{row['caught']:>4} ({share:.0%}), by any flag {row['caught_by_any_flag']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
