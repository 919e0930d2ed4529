"""Whole days of the routine: the scripted day, three days of a village, restarts, zones."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot.config import Config
from schedules.digest import build_digest
from schedules.runner import due_jobs, run_due
from storage.roster import import_roster
from tests.routine_helpers import report

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)
TIMES = ["00:05", "08:00", "09:30", "10:00", "10:30", "12:00", "13:30", "14:00"]
TIMES += ["18:00", "19:30", "20:00", "20:30"]
GROUPS = {
    "梁红": ["张三", "李四", "王五", "罗娟", "林峰", "朱丽"],
    "韩冰": ["高远", "宋佳", "马晓东", "朱丽"],
    "周建国": ["杨桂芳", "徐志强", "胡晓燕", "郭明", "谢婷"],
    "吴秀兰": ["唐伟", "冯雪梅", "董建华", "程晨", "曹秀英"],
    "郑海峰": ["袁浩", "邓丽娟", "许文斌", "傅强", "沈玉兰"],
    "孙丽萍": ["沈玉兰", "彭涛", "吕桂兰", "苏磊", "蒋秀珍", "田军"],
}
MEMBERS = list(GROUPS)


def at(text: str, day: dt.date = DAY, tz: dt.tzinfo = TZ) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(text), tzinfo=tz)


def outbox(db: sqlite_utils.Database, since_id: int = 0) -> list[dict]:
    return list(db.query("SELECT * FROM outbox WHERE id > ? ORDER BY id", [since_id]))


def sent(db: sqlite_utils.Database, since_id: int = 0) -> list[tuple[str, str]]:
    return [(row["kind"], row["person"]) for row in outbox(db, since_id)]


def text_to(db: sqlite_utils.Database, kind: str, person: str, since_id: int = 0) -> list[str]:
    texts = [r["text"] for r in outbox(db, since_id) if (r["kind"], r["person"]) == (kind, person)]
    assert len(texts) == 1, (kind, person, texts)
    return texts[0].splitlines()


def last_id(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]


def test_scripted_day(
    loaded_db: sqlite_utils.Database,
    run_cli: Callable[..., object],
    dump_db: Callable[[sqlite_utils.Database], str],
) -> None:
    """08:00 prompts → reports → 09:30 reminders → 10:00 alert → 10:30 digest → … → 20:30."""
    db = loaded_db

    def tick(time: str) -> list[str]:
        result = run_cli("tick", "--at", f"2026-03-02T{time}")
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    assert tick("00:05") == ["ran     2026-03-02T00:05+08:00 release: 2 queued"]
    assert sent(db) == [("release", "陈志刚"), ("release", "韩冰")]
    assert text_to(db, "release", "陈志刚")[1] == "何平（河西村，2月16日—3月1日）"

    mark = last_id(db)
    tick("08:00")
    assert sent(db, mark) == [("prompt", m) for m in MEMBERS]
    assert text_to(db, "prompt", "梁红", mark) == [
        "【早间联系】3月2日，请联系您负责的 6 位监测对象：",
        "张三、李四、王五、罗娟、林峰、朱丽",
        "联系后直接回复体温和情况，例如：",
        "张三 36.5 正常，李四 36.8",
    ]

    morning = [n for group in GROUPS.values() for n in group if n not in ("高远", "林峰", "罗娟")]
    report(db, [n for n in morning if n not in ("朱丽", "宋佳")], "morning", at("08:30"), "梁红")
    report(db, ["罗娟"], "morning", at("08:41"), "梁红", "abnormal", 37.8, ["发热", "咳嗽"])
    report(db, ["朱丽"], "morning", at("08:45"), "韩冰")  # 韩冰 covers the shared subject
    report(db, ["宋佳"], "morning", at("08:50"), "韩冰", "unreachable", None)

    mark = last_id(db)
    tick("09:30")
    # 3/2 is a Monday, the first day of the system: last week asked nothing of anyone, so
    # the 09:00 weekly pack (DESIGN §11) sends nothing; then the reminders
    assert sent(db, mark) == [
        ("reminder", "梁红"),
        ("reminder", "韩冰"),
    ]
    assert text_to(db, "reminder", "梁红", mark)[:2] == [
        "【早间提醒】还有 1 位监测对象未报告（10:00 截止）：",
        "林峰",
    ]
    assert text_to(db, "reminder", "韩冰", mark)[1] == "高远"

    mark = last_id(db)
    tick("10:00")
    assert sent(db, mark) == [("missed_alert", "刘敏")]
    assert text_to(db, "missed_alert", "刘敏", mark) == [
        "【早间未报】3月2日 10:00 截止，2 位监测对象未报告：",
        "梁红：林峰",
        "韩冰：高远",
    ]
    report(db, ["高远"], "morning", at("10:10"), "韩冰")  # late, but before the digest

    mark = last_id(db)
    tick("10:30")
    assert sent(db, mark) == [("digest", "刘敏"), ("digest", "陈志刚")]
    village = text_to(db, "digest", "陈志刚", mark)
    assert village[0] == "【河西村 汇报·第1次】3月2日 10:30"
    assert "早：应报 29，已报 28，未报 1：林峰" in village
    assert "· 罗娟 37.8℃ 发热、咳嗽（早，梁红）" in village
    assert "联系不上 1 人次：宋佳（早）" in village
    assert "未报网格员（人次）：梁红1" in village
    assert village[-1].startswith("查看详情：http://127.0.0.1:5000/view/")
    town = text_to(db, "digest", "刘敏", mark)
    assert town[0] == "【城关镇 汇总·第1次】3月2日 10:30"
    assert "河西村：在管29 早28/29 中0/29 晚0/29 未报1 异常1 联系不上1" in town

    mark = last_id(db)
    tick("12:00")
    for member, names in GROUPS.items():
        report(db, names, "noon", at("12:20"), member)
    tick("13:30")
    tick("14:00")
    assert sent(db, mark) == [("prompt", m) for m in MEMBERS]  # no reminder, no alert

    mark = last_id(db)
    tick("18:00")
    for member, names in GROUPS.items():
        if member != "孙丽萍":
            report(db, [n for n in names if n != "沈玉兰"], "evening", at("18:30"), member)
    tick("19:30")
    tick("20:00")
    tick("20:30")
    assert sent(db, mark) == [("prompt", m) for m in MEMBERS] + [
        ("reminder", "郑海峰"),
        ("reminder", "孙丽萍"),
        ("missed_alert", "刘敏"),
        ("digest", "刘敏"),
        ("digest", "陈志刚"),
    ]
    assert text_to(db, "missed_alert", "刘敏", mark) == [
        "【晚间未报】3月2日 20:00 截止，6 位监测对象未报告：",
        "郑海峰：沈玉兰（共管）",
        "孙丽萍：沈玉兰（共管）、彭涛、吕桂兰、苏磊、蒋秀珍、田军",
    ]
    evening = text_to(db, "digest", "陈志刚", mark)
    assert evening[0] == "【河西村 汇报·第2次】3月2日 20:30"
    assert "早：应报 29，已报 28，未报 1：林峰" in evening
    assert "中：应报 29，已报齐" in evening
    assert "晚：应报 29，已报 23，未报 6：沈玉兰、彭涛、吕桂兰、苏磊、蒋秀珍、田军" in evening

    whole_day = [(kind, person) for kind, person in sent(db)]
    assert len(whole_day) == 30  # no weekly pack: nothing was expected the week before
    assert {kind for kind, _ in whole_day} == {
        "release",
        "prompt",
        "reminder",
        "missed_alert",
        "digest",
    }
    assert {row["status"] for row in outbox(db)} == {"sent"}
    assert len({row["send_key"] for row in outbox(db)}) == 30

    before = dump_db(db)
    for time in TIMES:
        assert tick(time) == ["nothing due"]
    assert dump_db(db) == before


@pytest.fixture
def village_db(db: sqlite_utils.Database, roster_dir: Path) -> sqlite_utils.Database:
    """The demo village with 张三's last day on 3/2, 李四's on 3/4, and 田军 starting 3/3."""
    path = roster_dir / "subjects.csv"
    text = path.read_text(encoding="utf-8")
    text = text.replace("HX01,2026-02-24,14,梁红", "HX01,2026-02-24,7,梁红")  # 张三
    text = text.replace("HX01,2026-02-25,14,梁红", "HX01,2026-02-25,8,梁红")  # 李四
    text = text.replace("HX02,2026-03-01,14,孙丽萍", "HX02,2026-03-03,14,孙丽萍")  # 田军
    path.write_text(text, encoding="utf-8")
    start = at("07:00", dt.date(2026, 3, 1))
    report_ = import_roster(db, roster_dir, now=start, categories=Config().categories)
    assert not report_.errors
    return db


def test_three_days_of_a_village(village_db: sqlite_utils.Database) -> None:
    db, config = village_db, Config()
    days = [DAY + dt.timedelta(days=n) for n in range(3)]
    prompts: dict[dt.date, dict[str, str]] = {}
    digests: dict[dt.date, dict] = {}
    for day in days:
        for job in due_jobs(config, at("00:00", day), at("23:59", day)):
            mark = last_id(db)
            run_due(db, config, job.due)
            if job.name == "prompt:morning":
                prompts[day] = {r["person"]: r["text"].splitlines()[1] for r in outbox(db, mark)}
                # every slot is reported by the member, 周建国 covering 林峰 for 梁红
            if job.name.startswith("prompt:"):
                slot = job.name.split(":")[1]
                active = {s["name"] for s in db.query("SELECT name FROM subjects")}
                for member, names in GROUPS.items():
                    mine = [n for n in names if n in prompts[day].get(member, "").split("、")]
                    mine = [n for n in mine if n in active and n != "林峰"]
                    report(db, mine, slot, job.due + dt.timedelta(minutes=20), member)
                report(db, ["林峰"], slot, job.due + dt.timedelta(minutes=25), "周建国")
            if job.name == "digest:2":
                digests[day] = build_digest(db, config, "HX", day, 2, job.due)
    first, second, third = days
    # day 1: 张三's last day is today; 田军 has not started
    assert prompts[first]["梁红"] == "张三、李四、王五、罗娟、林峰、朱丽"
    assert prompts[first]["孙丽萍"] == "沈玉兰、彭涛、吕桂兰、苏磊、蒋秀珍"
    assert (digests[first]["new_today"], digests[first]["released_today"]) == (["林峰"], ["何平"])
    # day 2: 张三 released at 00:05, 田军 starts
    assert prompts[second]["梁红"] == "李四、王五、罗娟、林峰、朱丽"
    assert prompts[second]["孙丽萍"] == "沈玉兰、彭涛、吕桂兰、苏磊、蒋秀珍、田军"
    assert (digests[second]["new_today"], digests[second]["released_today"]) == (["田军"], ["张三"])
    # day 3: 李四's last day: still contacted
    assert prompts[third]["梁红"] == "李四、王五、罗娟、林峰、朱丽"
    assert digests[third]["released_today"] == []
    for day in days:
        assert digests[day]["members_missing"] == []
        assert {s["missing"] == [] for s in digests[day]["slots"].values()} == {True}
        assert digests[day]["active"] == 28  # 29 − 张三 + 田军 on day 2, the same on day 3
    kinds = [r["kind"] for r in outbox(db)]
    assert kinds.count("reminder") == 0  # covering counted: no one was left missing
    assert kinds.count("missed_alert") == 0
    assert kinds.count("prompt") == 3 * 3 * 6
    assert kinds.count("digest") == 3 * 2 * 2
    release = {
        (r["person"], r["text"].splitlines()[1]) for r in outbox(db) if r["kind"] == "release"
    }
    assert release == {
        ("陈志刚", "何平（河西村，2月16日—3月1日）"),
        ("韩冰", "何平（河西村，2月16日—3月1日）"),
        ("陈志刚", "张三（河西村，2月24日—3月2日）"),
        ("梁红", "张三（河西村，2月24日—3月2日）"),
    }
    zhang = db.execute("SELECT status, released_on FROM subjects WHERE name = '张三'").fetchone()
    assert zhang == ("released", "2026-03-03")
    li = db.execute("SELECT status FROM subjects WHERE name = '李四'").fetchone()
    assert li == ("active",)  # released on 3/5 at 00:05, not before


def test_restart_mid_day(
    loaded_db: sqlite_utils.Database, caplog: pytest.LogCaptureFixture
) -> None:
    db, config = loaded_db, Config()
    for time in ("00:05", "08:00", "09:30", "10:00"):
        run_due(db, config, at(time))
    assert len(outbox(db)) == 2 + 6 + 6 + 1  # no weekly pack: the week before asked nothing
    # the server was down from 10:01 to 11:45: the 10:30 digest is 75 min late
    with caplog.at_level(logging.WARNING, logger="gridwatch.schedule"):
        done = run_due(db, config, at("11:45"))
    assert [(r.job, r.outcome) for r in done] == [("digest:1", "skipped")]
    assert "skipped digest:1 due 2026-03-02T10:30:00+08:00" in caplog.text
    # down again from 11:46 to 12:40: the noon prompt is 40 min late and still goes out
    mark = last_id(db)
    done = run_due(db, config, at("12:40"))
    assert [(r.job, r.outcome) for r in done] == [("prompt:noon", "ran")]
    rows = outbox(db, mark)  # recorded at the table's time, sent when the server came back
    assert {(r["at"], r["sent_at"]) for r in rows} == {
        ("2026-03-02T12:00:00+08:00", "2026-03-02T12:40:00+08:00")
    }
    assert len(outbox(db, mark)) == 6
    # a second process starting at the same moment adds nothing
    assert run_due(db, config, at("12:40")) == []
    assert len(outbox(db)) == 15 + 6
    kinds = [(row["job"], row["outcome"]) for row in db.query("SELECT * FROM job_runs")]
    assert ("digest:1", "skipped") in kinds
    assert len(kinds) == 7  # with Monday's 09:00 weekly pack (run, nothing to send)


def test_restart_within_grace_sends_the_digest_as_of_its_time(
    loaded_db: sqlite_utils.Database,
) -> None:
    db, config = loaded_db, Config()
    run_due(db, config, at("10:00"))
    report(db, ["张三"], "morning", at("10:40"), "梁红")  # after the report time
    mark = last_id(db)
    run_due(db, config, at("10:50"))
    village = text_to(db, "digest", "陈志刚", mark)
    assert village[0] == "【河西村 汇报·第1次】3月2日 10:30"
    assert "早：应报 29，已报 0，未报 29" in village[4]


def test_times_follow_the_configured_zone(loaded_db: sqlite_utils.Database) -> None:
    db, config = loaded_db, Config(timezone="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    # 08:00 in Shanghai is 01:00 in Berlin: only Berlin's 00:05 release is due
    done = run_due(db, config, at("08:00"))
    assert [(r.job, r.due.isoformat()) for r in done] == [("release", "2026-03-02T00:05:00+01:00")]
    # 15:00 in Shanghai is 08:00 in Berlin: the morning prompt
    done = run_due(db, config, at("15:00"))
    assert [(r.job, r.due.isoformat()) for r in done] == [
        ("prompt:morning", "2026-03-02T08:00:00+01:00")
    ]
    assert {r["at"] for r in outbox(db) if r["kind"] == "prompt"} == {"2026-03-02T08:00:00+01:00"}
    dues = [row[0] for row in db.execute("SELECT due FROM job_runs ORDER BY due")]
    assert dues == ["2026-03-02T00:05:00+01:00", "2026-03-02T08:00:00+01:00"]
    digest = build_digest(db, config, "HX", DAY, 1, at("12:00", tz=berlin))
    assert digest["as_of"] == "2026-03-02T10:30:00+01:00"


def test_a_subject_whose_last_day_is_today(loaded_db: sqlite_utils.Database) -> None:
    db, config = loaded_db, Config()
    last_day = dt.date(2026, 3, 7)  # 杨桂芳 and 袁浩: 2/22 + 14 days
    run_due(db, config, at("08:00", last_day))
    prompt = text_to(db, "prompt", "周建国")[1]
    assert prompt.startswith("杨桂芳、")
    run_due(db, config, at("08:00", last_day + dt.timedelta(days=1)))
    assert db.execute("SELECT released_on FROM subjects WHERE name = '杨桂芳'").fetchone() == (
        "2026-03-08",
    )
    next_prompts = [
        r["text"] for r in outbox(db) if r["person"] == "周建国" and r["kind"] == "prompt"
    ]
    assert "杨桂芳" not in next_prompts[-1]
    digest = build_digest(db, config, "HX", last_day + dt.timedelta(days=1), 1, at("23:00"))
    assert digest["released_today"] == ["杨桂芳", "袁浩"]
