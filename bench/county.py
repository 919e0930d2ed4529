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
) -> County:
    """Write the county into `db` (an empty, migrated database); return its sizes.

    `counties` > 1 splits the villages evenly between that many counties (a province: one
    root unit per county, codes C000, C000T00, C000T00V00, …); with `today_reported` False
    the contacts are yesterday's only (a day about to be run, bench.province).
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
    contact_rows = _contacts(rng, active, assignments, contacts, day, tz, today_reported)
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
    return County(
        roots[0] if counties == 1 else "province",
        per_county * counties,
        sum(len(m) for _, m in grid_members),
        subjects,
        len(contact_rows),
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
) -> list[tuple]:
    """`total` current reports: today's three slots first (3% missing), then yesterday's."""
    member = {subject: person for subject, person, position in assignments if position == 0}
    yesterday = day - dt.timedelta(days=1)
    slots = [(day, "morning", 8), (day, "noon", 12), (day, "evening", 18)] if today else []
    slots += [(yesterday, "evening", 18), (yesterday, "noon", 12), (yesterday, "morning", 8)]
    rows: list[tuple] = []
    for when, slot, hour in slots:
        for subject in active:
            if len(rows) >= total:
                return rows
            if when == day and rng.random() < 0.03:  # not reported
                continue
            roll = rng.random()
            if roll < 0.02:
                status, temperature, symptoms = (
                    "abnormal",
                    round(rng.uniform(37.3, 39.0), 1),
                    "发热",
                )
            elif roll < 0.03:
                status, temperature, symptoms = "unreachable", None, ""
            elif roll < 0.033:
                status, temperature, symptoms = "absent", None, ""
            else:
                status, temperature, symptoms = "normal", round(rng.uniform(36.0, 37.1), 1), ""
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
