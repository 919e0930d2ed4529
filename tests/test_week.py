"""A scripted week of the demo village through the real pipeline and the schedule (DESIGN §2):
a fever and its correction, a subject unreachable two slots running, 解除 and 延长 in chat,
an unchanged roster re-imported, two days of downtime. The outbox is then exactly what the
routine owes: checked per day and kind against the roster, message by message where an
event was scripted."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from bot.config import Config
from bot.context import Context
from handlers.pipeline import Incoming, handle_message
from schedules.runner import run_due
from storage.roster import import_roster
from tests.conftest import NOW

TZ = ZoneInfo("Asia/Shanghai")
DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=n) for n in range(7)]  # 3/2 … 3/8
DOWN = {dt.date(2026, 3, 6), dt.date(2026, 3, 7)}  # the server is off these two days
TIMES = ["00:05", "08:00", "09:30", "10:00", "10:30", "12:00", "13:30", "14:00"]
TIMES += ["18:00", "19:30", "20:00", "20:30"]
PROMPTS = {"08:00": "早", "12:00": "中", "18:00": "晚"}
MEMBERS = ["lianghong", "hanbing", "zhoujianguo", "wuxiulan", "zhenghaifeng", "sunliping"]


def at(day: dt.date, time: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(time), tzinfo=TZ)


# (day, time, sender, text): what people type besides 全部正常 after each prompt
EVENTS = [
    (DAYS[0], "08:20", "lianghong", "张三 37.8 咳嗽"),
    (DAYS[0], "08:50", "lianghong", "更正 张三 36.6 正常"),
    (DAYS[1], "08:20", "lianghong", "王五 未联系上"),
    (DAYS[1], "12:20", "lianghong", "王五 电话不通"),
    (DAYS[1], "12:50", "lianghong", "王五 联系上了 36.5"),
    (DAYS[2], "11:00", "chenzhigang", "解除 李四"),
    (DAYS[3], "11:00", "chenzhigang", "延长 罗娟 7天"),
]


def say(ctx: Context, sender: str, text: str, when: dt.datetime) -> str:
    message = Incoming(channel="console", sender=sender, text=text, at=when, received_at=when)
    return handle_message(ctx, message).reply


def play_week(db: sqlite_utils.Database, roster_dir: Path) -> None:
    config = Config()
    ctx = Context(db, config)
    for day in DAYS:
        if day in DOWN:
            continue
        if day == DAYS[4]:  # the admin re-imports the unchanged roster file
            import_roster(db, roster_dir, now=NOW, categories=config.categories, period=14)
        for time in TIMES:
            run_due(db, config, at(day, time))
            said = [
                (at(day, event_time), sender, text)
                for event_day, event_time, sender, text in EVENTS
                if event_day == day
                and at(day, time) < at(day, event_time) < at(day, time) + dt.timedelta(hours=1)
            ]
            if time in PROMPTS:  # everyone answers within half an hour
                answer = at(day, time) + dt.timedelta(minutes=30)
                said += [(answer, member, f"{PROMPTS[time]}：全部正常") for member in MEMBERS]
            for when, sender, text in sorted(said):
                say(ctx, sender, text, when)


def members_due(db: sqlite_utils.Database, day: dt.date) -> int:
    """Members with at least one subject monitored on `day`, by the roster (the oracle)."""
    return db.execute(
        """SELECT count(DISTINCT a.person_id) FROM assignments a JOIN subjects s
           ON s.id = a.subject_id WHERE s.start_date <= ? AND s.end_date >= ?
           AND (s.released_on IS NULL OR s.released_on > ?)""",
        [day.isoformat()] * 3,
    ).fetchone()[0]


def per_day(db: sqlite_utils.Database) -> Counter[tuple[str, str]]:
    rows = db.execute("SELECT substr(at, 1, 10), kind FROM outbox WHERE kind != 'reply'")
    return Counter((day, kind) for day, kind in rows)


def texts(db: sqlite_utils.Database, kind: str, day: dt.date) -> list[tuple[str, str]]:
    return db.execute(
        "SELECT person, text FROM outbox WHERE kind = ? AND at LIKE ? ORDER BY id",
        [kind, f"{day.isoformat()}%"],
    ).fetchall()


def test_a_scripted_week_leaves_exactly_the_expected_outbox(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    db = loaded_db
    play_week(db, roster_dir)
    counts = per_day(db)
    digest_recipients = counts[(DAYS[0].isoformat(), "digest")] // 2
    assert digest_recipients >= 1
    for day in DAYS:
        key = day.isoformat()
        if day in DOWN:
            assert not any(d == key for d, _ in counts), key  # nothing sent while down
            continue
        assert counts[(key, "prompt")] == 3 * members_due(db, day), key
        assert counts[(key, "reminder")] == 0, key  # everyone answered before 09:30 etc.
        assert counts[(key, "missed_alert")] == 0, key
        assert counts[(key, "digest")] == 2 * digest_recipients, key
    # the fever: the secretary and the medic, and the correction to both, once
    assert sorted(p for p, _ in texts(db, "abnormal_alert", DAYS[0])) == ["陈志刚", "黄永红"]
    assert sorted(p for p, _ in texts(db, "correction", DAYS[0])) == ["陈志刚", "黄永红"]
    # 王五 unreachable: the secretary at once; at the second slot the monitor too; reached
    # later that slot, both told of the noon alert hear it is over
    unreachable = [p for p, _ in texts(db, "unreachable_alert", DAYS[1])]
    assert sorted(unreachable) == ["刘敏", "陈志刚", "陈志刚"]
    assert sorted(p for p, _ in texts(db, "correction", DAYS[1])) == ["刘敏", "陈志刚"]
    # nobody acknowledged the morning's unreachable alert: the town's monitor is told, once
    # (the county has no monitor); the fever, corrected within the half hour, never goes up
    assert [p for p, _ in texts(db, "escalation", DAYS[1])] == ["刘敏"]
    assert texts(db, "escalation", DAYS[0]) == []
    # 解除 李四 and 延长 罗娟 are told to their member
    assert [p for p, t in texts(db, "release", DAYS[2]) if "李四" in t] == ["梁红"]
    assert [p for p, t in texts(db, "release", DAYS[3]) if "罗娟" in t] == ["梁红"]
    # the unchanged roster re-imported on 3/6's eve keeps 罗娟's extension and 李四's release
    days, status = db.execute("SELECT days, status FROM subjects WHERE name = '罗娟'").fetchone()
    assert (days, status) == (21, "active")
    assert db.execute("SELECT status FROM subjects WHERE name = '李四'").fetchone()[0] == (
        "released"
    )
    # back on 3/8 after two days down: each recipient gets one release notice for the gap
    catch_up = [p for p, _ in texts(db, "release", DAYS[6])]
    assert catch_up and len(catch_up) == len(set(catch_up))
    # and no scheduled message went twice
    keys = db.execute(
        "SELECT send_key, count(*) FROM outbox WHERE send_key IS NOT NULL GROUP BY send_key"
    ).fetchall()
    assert {count for _, count in keys} == {1}
