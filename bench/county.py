"""A seeded synthetic county written straight into a database, for benches and load tests.

Towns → villages (two grids each) with a secretary, a medic and members per village, a
monitor per town, subjects with realistic names and categories spread over their 14-day
periods, shared (多对一) assignments, a day of contacts with a few abnormal, unreachable and
absent reports, and some open care needs. Everything goes in with executemany.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import sqlite_utils

from bot.config import DEFAULT_CATEGORIES
from storage.db import transaction

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬飞鹏辉宇浩凯健俊帆"
    "帅旭宁龙林欢佳阳建国志海峰晓东丽梅雪婷文斌雨晨思远家豪子轩梓涵一诺欣怡浩然宇轩"
)
PLACES = (
    "河西 河东 柳树 杨家 王庄 李村 张湾 石桥 青山 白沙 红旗 新华 向阳 东风 前进 胜利 和平 光明"
    " 长乐 永安 太平 兴隆 金星 银河 凤凰 龙泉 桃源 梅林 松林 竹园 荷塘 清水 黄土 双河 三里 五里"
).split()
CATEGORY_WEIGHTS = (0.15, 0.6, 0.1, 0.15)
NEEDS = (
    ("生活物资", "买菜"),
    ("就医", "需要买药"),
    ("心理疏导", "晚上睡不着"),
    ("其他", "快递代收"),
)


@dataclass(frozen=True)
class County:
    code: str
    villages: int
    members: int
    subjects: int
    contacts: int
    day: dt.date


def _outcome(rng: random.Random) -> tuple[str, float | None, str]:
    """A contact's (status, temperature, symptoms): 2 % fever, 1 % unreachable, 0.3 % away."""
    roll = rng.random()
    if roll < 0.02:
        return "abnormal", round(rng.uniform(37.3, 39.0), 1), "发热"
    if roll < 0.03:
        return "unreachable", None, ""
    if roll < 0.033:
        return "absent", None, ""
    return "normal", round(rng.uniform(36.0, 37.1), 1), ""


def _name(rng: random.Random) -> str:
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(SURNAMES) + given


def _stamp(day: dt.date, hour: int, minute: int, tz: dt.tzinfo) -> str:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz).isoformat()


def make_county(
    db: sqlite_utils.Database,
    *,
    day: dt.date,
    tz: dt.tzinfo,
    villages: int = 500,
    subjects: int = 50_000,
    contacts: int = 150_000,
    members_per_village: int = 20,
    villages_per_town: int = 20,
    seed: int = 2020,
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    counties: int = 1,
    today_reported: bool = True,
    week: bool = False,
) -> County:
    """Write the county into `db` (an empty, migrated database); return its sizes.

    `counties` > 1 splits the villages evenly between that many counties (a province: one
    root unit per county, codes C000, C000T00, C000T00V00, …); with `today_reported` False
    the contacts are yesterday's only (a day about to be run, bench.province). With `week`
    the 7 days before `day` are a real week of work (`_past_week`): each day's prompts sent
    (outbox and sends), and each member's reports of a slot in one message (inbox), so the
    Monday pack and the flags note read what a running deployment holds.
    """
    rng = random.Random(seed)
    if counties == 1:
        units: list[tuple[str, str, str, str | None]] = [("C", "示范县", "county", None)]
        roots = ["C"]
    else:
        roots = [f"C{c:03d}" for c in range(counties)]
        units = [(code, f"第{c + 1}县", "county", None) for c, code in enumerate(roots)]
    per_county = max(1, villages // counties)
    people: list[tuple] = []
    phone = iter(range(10_000_000, 99_999_999))

    def person(name: str, roles: str, unit: str) -> int:
        people.append(
            (len(people) + 1, name, f"138{next(phone)}", f"wx{len(people) + 1}", roles, unit)
        )
        return len(people)

    grid_members: list[tuple[str, list[int]]] = []
    towns = (per_county + villages_per_town - 1) // villages_per_town

    def town_code(county: int, t: int) -> str:
        return f"T{t:02d}" if counties == 1 else f"{roots[county]}T{t:02d}"

    for c, root in enumerate(roots):
        for t in range(towns):
            town = town_code(c, t)
            units.append((town, f"{PLACES[t % len(PLACES)]}镇", "town", root))
            person(_name(rng), "monitor", town)
    for v in range(per_county * counties):
        c, local = divmod(v, per_county)
        town = town_code(c, local // villages_per_town)
        village = f"{town}V{local % villages_per_town:02d}"
        place = PLACES[(v * 7 + 3) % len(PLACES)] + ("" if v < len(PLACES) else str(v))
        units.append((village, f"{place}村", "village", town))
        person(_name(rng), "secretary", village)
        person(_name(rng), "medic", village)
        for g in (1, 2):
            grid = f"{village}G{g}"
            units.append((grid, f"{place}村第{g}网格", "grid", village))
            count = members_per_village // 2 + (members_per_village % 2 if g == 1 else 0)
            grid_members.append((grid, [person(_name(rng), "member", grid) for _ in range(count)]))
    subject_rows, assignments = [], []
    for number in range(1, subjects + 1):
        grid, members = grid_members[(number - 1) * len(grid_members) // subjects]
        # 2% ended yesterday (released today), the rest spread over their period
        offset = 14 if rng.random() < 0.02 else rng.randrange(0, 14)
        start = day - dt.timedelta(days=offset)
        category = rng.choices(categories[:4], CATEGORY_WEIGHTS[: len(categories[:4])])[0]
        address = f"{rng.randrange(1, 12)}组{rng.randrange(1, 60)}号"
        subject_rows.append(
            (
                number,
                _name(rng),
                f"139{next(phone)}",
                category,
                address,
                grid,
                start.isoformat(),
                14,
            )
        )
        first = members[number % len(members)]  # round robin: every member has subjects
        assignments.append((number, first, 0))
        if rng.random() < 0.1:  # 多对一
            second = rng.choice(members)
            if second != first:
                assignments.append((number, second, 1))
    active = [row[0] for row in subject_rows if row[6] > (day - dt.timedelta(days=14)).isoformat()]
    contact_rows = _contacts(
        rng, active, assignments, contacts, day, tz, today_reported, yesterday=not week
    )
    needs = [
        (rng.choice(active), *rng.choice(NEEDS), _stamp(day, 7, rng.randrange(60), tz))
        for _ in range(max(1, subjects // 100))
    ]
    with transaction(db) as conn:
        conn.executemany("INSERT INTO units (code, name, level, parent) VALUES (?, ?, ?, ?)", units)
        conn.executemany(
            "INSERT INTO people (id, name, phone, wechat_id, roles, unit)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            people,
        )
        conn.executemany(
            "INSERT INTO subjects (id, name, phone, category, address, unit, start_date, days)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            subject_rows,
        )
        conn.executemany(
            "INSERT INTO assignments (subject_id, person_id, position) VALUES (?, ?, ?)",
            assignments,
        )
        conn.executemany(
            "INSERT INTO contacts (subject_id, date, slot, member_id, temperature, status,"
            " symptoms, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            contact_rows,
        )
        conn.executemany(
            "INSERT INTO needs (subject_id, kind, text, created_at) VALUES (?, ?, ?, ?)", needs
        )
    written = len(contact_rows)
    del contact_rows
    if week:
        written += _past_week(db, random.Random(seed + 1), subject_rows, assignments, day, tz)
    return County(
        roots[0] if counties == 1 else "province",
        per_county * counties,
        sum(len(m) for _, m in grid_members),
        subjects,
        written,
        day,
    )


def _contacts(
    rng: random.Random,
    active: list[int],
    assignments: list[tuple[int, int, int]],
    total: int,
    day: dt.date,
    tz: dt.tzinfo,
    today: bool = True,
    yesterday: bool = True,
) -> list[tuple]:
    """`total` current reports: today's three slots first (3% missing), then yesterday's."""
    member = {subject: person for subject, person, position in assignments if position == 0}
    before = day - dt.timedelta(days=1)
    slots = [(day, "morning", 8), (day, "noon", 12), (day, "evening", 18)] if today else []
    if yesterday:
        slots += [(before, "evening", 18), (before, "noon", 12), (before, "morning", 8)]
    rows: list[tuple] = []
    for when, slot, hour in slots:
        for subject in active:
            if len(rows) >= total:
                return rows
            if when == day and rng.random() < 0.03:  # not reported
                continue
            status, temperature, symptoms = _outcome(rng)
            at = _stamp(when, hour, rng.randrange(60), tz)
            rows.append(
                (
                    subject,
                    when.isoformat(),
                    slot,
                    member[subject],
                    temperature,
                    status,
                    symptoms,
                    at,
                )
            )
    return rows


WEEK_SLOTS = (("morning", 8), ("noon", 12), ("evening", 18))


def _past_week(
    db: sqlite_utils.Database,
    rng: random.Random,
    subject_rows: list[tuple],
    assignments: list[tuple[int, int, int]],
    day: dt.date,
    tz: dt.tzinfo,
) -> int:
    """The 7 days before `day`, as the schedule and the members left them: each member with
    an active subject prompted for each slot (the outbox row sent, its key in sends), and
    answering in one message (inbox) naming their first-member subjects, 8-100 minutes after
    the prompt (a few after the deadline: late), 3 % of the subject-slots not reported;
    statuses as in `_contacts`. Written a day at a time (a province's week is ~8 million
    reports); returns the reports written."""
    from schedules.jobs import prompt_text  # the prompt as the job words it

    names = {row[0]: row[1] for row in subject_rows}
    periods = {row[0]: (row[6], row[7]) for row in subject_rows}
    first: dict[int, list[int]] = {}
    listed: dict[int, list[int]] = {}
    for subject, person, position in sorted(assignments):
        listed.setdefault(person, []).append(subject)
        if position == 0:
            first.setdefault(person, []).append(subject)
    inbox_id = db.conn.execute("SELECT COALESCE(MAX(id), 0) FROM inbox").fetchone()[0]
    written = 0
    for back in range(7, 0, -1):
        when = day - dt.timedelta(days=back)
        stamp = when.isoformat()

        def active(subject: int, stamp: str = stamp, when: dt.date = when) -> bool:
            start, days = periods[subject]
            return start <= stamp and when < dt.date.fromisoformat(start) + dt.timedelta(days)

        outbox, sends, inbox, contacts = [], [], [], []
        for slot, hour in WEEK_SLOTS:
            prompt = dt.datetime.combine(when, dt.time(hour), tzinfo=tz)
            for person in sorted(listed):
                mine = [s for s in listed[person] if active(s)]
                if not mine:
                    continue
                key = f"prompt|person:{person}|{stamp}|{slot}"
                sent = (prompt + dt.timedelta(seconds=rng.randrange(1, 60))).isoformat()
                text = prompt_text(slot, when, [names[s] for s in mine])
                outbox.append((prompt.isoformat(), person, "prompt", text, "sent", sent, key))
                sends.append((key, "prompt", f"person:{person}", stamp, slot, prompt.isoformat()))
                reported = [s for s in first.get(person, []) if active(s) and rng.random() >= 0.03]
                if not reported:
                    continue
                late = rng.random() < 0.02
                minutes = rng.uniform(125, 170) if late else rng.uniform(8, 100)
                at = (prompt + dt.timedelta(minutes=minutes)).replace(microsecond=0).isoformat()
                inbox_id += 1
                parts = []
                for subject in reported:
                    status, temperature, symptoms = _outcome(rng)
                    shown = {"unreachable": "联系不上", "absent": "不在家"}.get(status)
                    parts.append(f"{names[subject]} {shown or temperature}")
                    contacts.append(
                        (subject, stamp, slot, person, temperature, status, symptoms, at, inbox_id)
                    )
                inbox.append(
                    (inbox_id, at, at, "console", f"wx{person}", person, "，".join(parts), "ok")
                )
        with transaction(db) as conn:
            conn.executemany(
                "INSERT INTO outbox (at, person_id, kind, text, status, sent_at, send_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                outbox,
            )
            conn.executemany(
                "INSERT INTO sends (key, kind, target, date, slot, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                sends,
            )
            conn.executemany(
                "INSERT INTO inbox (id, received_at, at, channel, sender, person_id, text,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                inbox,
            )
            conn.executemany(
                "INSERT INTO contacts (subject_id, date, slot, member_id, temperature, status,"
                " symptoms, reported_at, inbox_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                contacts,
            )
        written += len(contacts)
    return written
