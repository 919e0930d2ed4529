"""build_digest (the DESIGN §7 JSON), its text, and `gridwatch digest`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from bot.config import Config, SlotTimes
from schedules.digest import UnknownUnit, build_digest, digest_text
from storage.needs import add_need, close_need
from tests.routine_helpers import ids, report

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)
LINK = "http://127.0.0.1:5000/view/TOKEN"
KEYS = [
    "unit",
    "unit_name",
    "date",
    "report",
    "as_of",
    "active",
    "by_category",
    "new_today",
    "released_today",
    "slots",
    "abnormal",
    "unreachable",
    "absent",
    "needs",
    "members_missing",
    "watch",  # added by DESIGN §11 (关注); the keys of §7 before it are unchanged
]


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def everyone_but(db: sqlite_utils.Database, *names: str) -> list[str]:
    return [name for name in ids(db, "subjects") if name not in (*names, "何平")]


@pytest.fixture
def morning(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """A morning like DESIGN §7's example: one abnormal, one unreachable, one missing."""
    report(loaded_db, everyone_but(loaded_db, "高远", "罗娟", "宋佳"), "morning", at(8, 30), "梁红")
    report(loaded_db, ["罗娟"], "morning", at(8, 41), "梁红", "abnormal", 37.8, ["发热", "咳嗽"])
    report(loaded_db, ["宋佳"], "morning", at(8, 50), "韩冰", "unreachable", None)
    return loaded_db


def test_a_release_by_the_secretary_is_released_today(loaded_db: sqlite_utils.Database) -> None:
    # 解除 李四 on 3/2: monitored until 3/1, so 3/2 is the day after the last day (DESIGN §2)
    loaded_db["subjects"].update(
        ids(loaded_db, "subjects")["李四"], {"status": "released", "released_on": "2026-03-02"}
    )
    digest = build_digest(loaded_db, Config(), "HX", DAY, 2, at(23))
    assert digest["released_today"] == ["李四", "何平"]
    assert digest["active"] == 28
    tomorrow = build_digest(loaded_db, Config(), "HX", DAY + dt.timedelta(days=1), 1, at(23))
    assert tomorrow["released_today"] == []


def test_a_subject_released_in_the_afternoon_keeps_its_morning_report(
    morning: sqlite_utils.Database,
) -> None:
    """罗娟 had a fever at 08:41 and a secretary 解除 her at 15:00: the 20:30 digest still counts
    the morning as the 10:30 one did, fever included; the slots after it expect her no more."""
    first = build_digest(morning, Config(), "HX", DAY, 1, at(10, 30))
    morning["subjects"].update(
        ids(morning, "subjects")["罗娟"], {"status": "released", "released_on": "2026-03-02"}
    )
    second = build_digest(morning, Config(), "HX", DAY, 2, at(20, 30))
    assert second["slots"]["morning"] == first["slots"]["morning"]
    assert [case["subject"] for case in second["abnormal"]] == ["罗娟"]
    assert second["slots"]["noon"]["expected"] == first["slots"]["noon"]["expected"] - 1
    assert "罗娟" not in second["slots"]["evening"]["missing"]
    assert second["active"] == first["active"] - 1 and "罗娟" in second["released_today"]


def test_village_digest_json(morning: sqlite_utils.Database) -> None:
    digest = build_digest(morning, Config(), "HX", DAY, 1, at(23))
    assert list(digest) == KEYS
    assert digest["unit"] == "HX"
    assert digest["unit_name"] == "河西村"
    assert digest["date"] == "2026-03-02"
    assert digest["report"] == 1
    assert digest["as_of"] == "2026-03-02T10:30:00+08:00"
    assert digest["active"] == 29
    assert digest["by_category"] == {
        "涉鄂人员": 6,
        "外地返回人员": 15,
        "疑似症状人员": 4,
        "暂缓返回人员": 4,
    }
    assert digest["new_today"] == ["林峰"]
    assert digest["released_today"] == ["何平"]
    assert digest["slots"] == {
        "morning": {"expected": 29, "reported": 28, "missing": ["高远"]},
        "noon": {"expected": 29, "reported": 0, "missing": []},
        "evening": {"expected": 29, "reported": 0, "missing": []},
    }
    assert digest["abnormal"] == [
        {
            "subject": "罗娟",
            "slot": "morning",
            "temperature": 37.8,
            "symptoms": ["发热", "咳嗽"],
            "member": "梁红",
            "at": "2026-03-02T08:41:00+08:00",
        }
    ]
    assert digest["unreachable"] == [
        {"subject": "宋佳", "slot": "morning", "member": "韩冰", "at": "2026-03-02T08:50:00+08:00"}
    ]
    assert digest["absent"] == []
    assert digest["needs"] == []
    assert digest["members_missing"] == [
        {"member": "韩冰", "missing": [{"subject": "高远", "slot": "morning"}]}
    ]
    json.dumps(digest)  # plain JSON


def test_every_configured_category_is_present(loaded_db: sqlite_utils.Database) -> None:
    config = Config(categories=(*Config().categories, "密切接触者"))
    digest = build_digest(loaded_db, config, "HX", DAY, 1, at(12))
    assert digest["by_category"]["密切接触者"] == 0
    assert list(digest["by_category"]) == list(config.categories)


def test_missing_only_once_the_deadline_has_passed(morning: sqlite_utils.Database) -> None:
    report(morning, everyone_but(morning, "张三"), "noon", at(12, 30), "梁红")
    second = build_digest(morning, Config(), "HX", DAY, 2, at(23))
    assert second["as_of"] == "2026-03-02T20:30:00+08:00"
    assert second["slots"]["noon"] == {"expected": 29, "reported": 28, "missing": ["张三"]}
    assert second["slots"]["evening"]["missing"] == everyone_but(morning)
    assert second["members_missing"][0] == {
        "member": "梁红",
        "missing": [{"subject": "张三", "slot": "noon"}]
        + [
            {"subject": name, "slot": "evening"}
            for name in ["张三", "李四", "王五", "罗娟", "林峰", "朱丽"]
        ],
    }


def test_shared_subject_missing_is_listed_for_each_member(loaded_db: sqlite_utils.Database) -> None:
    report(loaded_db, everyone_but(loaded_db, "朱丽"), "morning", at(9), "周建国")
    digest = build_digest(loaded_db, Config(), "HX", DAY, 1, at(11))
    assert digest["slots"]["morning"]["missing"] == ["朱丽"]
    assert [m["member"] for m in digest["members_missing"]] == ["梁红", "韩冰"]


def test_as_of_ignores_later_reports_and_keeps_the_earlier_one(
    morning: sqlite_utils.Database,
) -> None:
    report(morning, ["高远"], "morning", at(11), "韩冰")  # after 10:30
    report(morning, ["罗娟"], "morning", at(11, 5), "梁红")  # correction after 10:30
    first = build_digest(morning, Config(), "HX", DAY, 1, at(21))
    assert first["slots"]["morning"]["missing"] == ["高远"]
    assert [a["subject"] for a in first["abnormal"]] == ["罗娟"]
    second = build_digest(morning, Config(), "HX", DAY, 2, at(21))
    assert second["slots"]["morning"]["missing"] == []
    assert second["abnormal"] == []


def test_on_demand_uses_now(morning: sqlite_utils.Database) -> None:
    digest = build_digest(morning, Config(), "HX", DAY, None, at(15, 12))
    assert (digest["report"], digest["as_of"]) == (1, "2026-03-02T15:12:00+08:00")
    assert digest["slots"]["noon"]["missing"] == everyone_but(morning)
    evening = build_digest(morning, Config(), "HX", DAY, None, at(20, 30))
    assert evening["report"] == 2
    before = build_digest(morning, Config(), "HX", DAY, None, at(9, 59))
    assert before["slots"]["morning"]["missing"] == []


def test_needs_open_as_of_the_report(morning: sqlite_utils.Database) -> None:
    subjects, people = ids(morning, "subjects"), ids(morning, "people")
    first = add_need(morning, subjects["张三"], "买菜", people["梁红"], at(9))
    second = add_need(morning, subjects["李四"], "看病", people["梁红"], at(9, 10))
    add_need(morning, subjects["王五"], "心理疏导", people["梁红"], at(11))  # after 10:30
    close_need(morning, second["id"], people["陈志刚"], at(12))
    close_need(morning, first["id"], people["陈志刚"], at(10))
    digest = build_digest(morning, Config(), "HX", DAY, 1, at(21))
    assert digest["needs"] == [
        {
            "id": second["id"],
            "subject": "李四",
            "kind": "就医",
            "text": "看病",
            "at": "2026-03-02T09:10:00+08:00",
        }
    ]
    now = build_digest(morning, Config(), "HX", DAY, None, at(21))
    assert [n["subject"] for n in now["needs"]] == ["王五"]


def test_rollup_has_one_object_per_village(morning: sqlite_utils.Database) -> None:
    village = build_digest(morning, Config(), "HX", DAY, 1, at(23))
    for code, name in (("CG", "城关镇"), ("KC", "柯城区")):
        rollup = build_digest(morning, Config(), code, DAY, 1, at(23))
        assert list(rollup) == [*KEYS, "villages"]
        assert (rollup["unit"], rollup["unit_name"]) == (code, name)
        assert rollup["villages"] == [village]
        assert {k: v for k, v in rollup.items() if k not in ("unit", "unit_name", "villages")} == {
            k: v for k, v in village.items() if k not in ("unit", "unit_name")
        }


def test_grid_digest_covers_the_grid_only(morning: sqlite_utils.Database) -> None:
    grid = build_digest(morning, Config(), "HX02", DAY, 1, at(23))
    assert grid["active"] == 15
    assert "villages" not in grid


def test_unknown_unit(loaded_db: sqlite_utils.Database) -> None:
    with pytest.raises(UnknownUnit):
        build_digest(loaded_db, Config(), "NOPE", DAY, 1, at(12))


def test_times_follow_the_configured_zone(loaded_db: sqlite_utils.Database) -> None:
    config = Config(timezone="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    digest = build_digest(
        loaded_db, config, "HX", DAY, 1, dt.datetime(2026, 3, 2, 12, tzinfo=berlin)
    )
    assert digest["as_of"] == "2026-03-02T10:30:00+01:00"


def test_deadlines_come_from_config(morning: sqlite_utils.Database) -> None:
    slots = dict(Config().slots)
    slots["morning"] = SlotTimes(dt.time(7), dt.time(8), dt.time(11))
    digest = build_digest(morning, Config(slots=slots), "HX", DAY, 1, at(23))
    assert digest["slots"]["morning"]["missing"] == []


def test_village_text(morning: sqlite_utils.Database) -> None:
    text = digest_text(build_digest(morning, Config(), "HX", DAY, 1, at(23)), LINK)
    lines = text.splitlines()
    assert len(lines) <= 25
    assert lines[0] == "【河西村 汇报·第1次】3月2日 10:30"
    assert lines[1] == "在管 29 人：涉鄂人员 6、外地返回人员 15、疑似症状人员 4、暂缓返回人员 4"
    assert "今日新增 1 人：林峰" in lines
    assert "今日解除 1 人：何平" in lines
    assert "早：应报 29，已报 28，未报 1：高远" in lines
    assert "中：应报 29，已报 0（未到截止）" in lines
    assert "· 罗娟 37.8℃ 发热、咳嗽（早，梁红）" in lines
    assert "联系不上 1 人次：宋佳（早）" in lines
    assert "外出：无" in lines
    assert "未报网格员（人次）：韩冰1" in lines
    assert lines[-1] == f"查看详情：{LINK}"


def test_village_text_stays_short_on_a_bad_day(loaded_db: sqlite_utils.Database) -> None:
    names = everyone_but(loaded_db)
    report(loaded_db, names, "morning", at(9), "梁红", "abnormal", 38.2, ["发热"])
    subjects, people = ids(loaded_db, "subjects"), ids(loaded_db, "people")
    for name in names[:8]:
        add_need(loaded_db, subjects[name], "买菜", people["梁红"], at(9))
    lines = digest_text(build_digest(loaded_db, Config(), "HX", DAY, 2, at(23)), LINK).splitlines()
    assert len(lines) <= 25
    assert "· …另 24 人次，见详情" in lines


def test_rollup_text_one_line_per_village(morning: sqlite_utils.Database) -> None:
    lines = digest_text(build_digest(morning, Config(), "CG", DAY, 1, at(23)), LINK).splitlines()
    assert lines[0] == "【城关镇 汇总·第1次】3月2日 10:30"
    assert lines[1] == "1 个村(社)，在管 29 人（今日新增 1，解除 1）"
    assert lines[2] == "已报/应报：早28/29 中0/29 晚0/29"
    assert lines[4] == "各村："
    assert lines[5] == "河西村：在管29 早28/29 中0/29 晚0/29 未报1 异常1 联系不上1"
    assert lines[-1] == f"查看详情：{LINK}"


def test_cli_digest_json_and_text(
    morning: sqlite_utils.Database, run_cli: Callable[..., object]
) -> None:
    result = run_cli("digest", "--unit", "HX", "--date", "2026-03-02", "--report", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == build_digest(morning, Config(), "HX", DAY, 1, at(23))
    result = run_cli("digest", "--unit", "CG", "--date", "2026-03-02", "--report", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "【城关镇 汇总·第2次】3月2日 20:30"
    assert lines[-1].startswith("查看详情：http://127.0.0.1:5000/view/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--unit", "NOPE"], "unknown unit 'NOPE'"),
        (["--unit", "HX", "--report", "3"], "3 is not in the range 1<=x<=2"),
        (["--unit", "HX", "--date", "March"], "is not a date"),
    ],
)
def test_cli_digest_errors(
    loaded_db: sqlite_utils.Database, run_cli: Callable[..., object], args: list[str], message: str
) -> None:
    result = run_cli("digest", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_synthetic_county_generator(db: sqlite_utils.Database) -> None:
    from bench.county import make_county
    from schedules.runner import run_due

    county = make_county(
        db,
        day=DAY,
        tz=TZ,
        villages=3,
        subjects=300,
        contacts=700,
        members_per_village=4,
        villages_per_town=2,
        seed=7,
    )
    assert (county.villages, county.members, county.subjects, county.contacts) == (3, 12, 300, 700)
    levels = dict(db.execute("SELECT level, count(*) FROM units GROUP BY level").fetchall())
    assert levels == {"county": 1, "town": 2, "village": 3, "grid": 6}
    digest = build_digest(db, Config(), "C", DAY, 2, at(23))
    assert len(digest["villages"]) == 3
    assert digest["active"] == sum(v["active"] for v in digest["villages"]) > 280
    assert set(digest["by_category"]) == set(Config().categories)
    assert 0 < digest["slots"]["noon"]["reported"] < digest["slots"]["noon"]["expected"]
    assert digest["abnormal"] and digest["needs"]
    run_due(db, Config(), at(18))
    prompts = db.execute("SELECT count(*) FROM outbox WHERE kind = 'prompt'").fetchone()[0]
    assert prompts == 12  # every member has subjects
    names = [row[0] for row in db.execute("SELECT name FROM subjects ORDER BY id LIMIT 3")]
    assert all(2 <= len(name) <= 3 for name in names)


def test_synthetic_county_is_seeded(make_db: Callable[[str], sqlite_utils.Database]) -> None:
    from bench.county import make_county

    dumps = []
    for name in ("a.db", "b.db"):
        database = make_db(name)
        make_county(database, day=DAY, tz=TZ, villages=2, subjects=40, contacts=60)
        dumps.append(list(database.execute("SELECT name, category, start_date FROM subjects")))
    assert dumps[0] == dumps[1]


def test_a_past_day_without_a_report_number_is_its_final_report() -> None:
    from schedules.digest import resolve_report

    later = dt.datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    report, as_of = resolve_report(Config(), dt.date(2026, 3, 2), None, later)
    assert (report, as_of.isoformat()) == (2, "2026-03-02T20:30:00+08:00")


def test_just_after_midnight_the_on_demand_digest_is_still_the_evening_of_the_day() -> None:
    from schedules.digest import resolve_report

    after_midnight = dt.datetime(2026, 3, 3, 0, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    report, as_of = resolve_report(Config(), dt.date(2026, 3, 2), None, after_midnight)
    assert (report, as_of) == (2, after_midnight)


def test_digests_end_on_a_unit_cycle_stored_by_hand(cyclic_db: sqlite_utils.Database) -> None:
    """HX and its grid HX01 are each other's parent, KC its own (see conftest.cyclic_db)."""
    from schedules.digest import UnitTree
    from schedules.runner import day_jobs, run_job

    tree = UnitTree.load(cyclic_db)
    assert sorted(tree.subtree("HX")) == ["HX", "HX01", "HX02"]
    assert sorted(tree.subtree("KC")) == ["CG", "KC"]
    village = build_digest(cyclic_db, Config(), "HX", DAY, 1, at(23))
    assert village["active"] > 0
    county = build_digest(cyclic_db, Config(), "KC", DAY, 1, at(23))
    assert county["villages"] == []
    config = Config()
    job = next(job for job in day_jobs(config, DAY) if job.name == "digest:1")
    run_job(cyclic_db, config, job, job.due)
    sent = cyclic_db.execute("SELECT count(*) FROM outbox WHERE kind = 'digest'").fetchone()[0]
    assert sent > 0


def test_a_report_asked_for_later_shows_what_was_sent(
    loaded_db: sqlite_utils.Database, run_cli: Callable[..., object]
) -> None:
    """The 10:30 digest went out with 张三's need open; at 11:00 the secretary closes it and
    the roster file moves 李四 to another category. Asked for later, report 1 is what the
    secretary got, not what the record says now."""
    from schedules.runner import run_due

    said = run_cli("say", "--from", "lianghong", "--at", "2026-03-02T09:00", "需求 张三 买菜")
    assert said.exit_code == 0, said.output
    run_due(loaded_db, Config(), at(10, 31))
    said = run_cli("say", "--from", "chenzhigang", "--at", "2026-03-02T11:00", "办结 1")
    assert said.exit_code == 0, said.output
    loaded_db.execute("UPDATE subjects SET category = '涉鄂人员' WHERE name = '李四'")
    asked = run_cli("digest", "--unit", "HX", "--date", "2026-03-02", "--report", "1", "--json")
    sent = json.loads(asked.output)
    assert [need["subject"] for need in sent["needs"]] == ["张三"]
    assert build_digest(loaded_db, Config(), "HX", DAY, 1, at(23)) != sent


def test_the_worst_and_newest_abnormal_cases_are_never_cut() -> None:
    """Seven abnormal reports, five shown: the evening's 39.2 is among them, not behind
    "另 2 人次" (they were listed by slot, the morning's mild ones first)."""
    from schedules.digest import _abnormal_lines

    def case(subject: str, slot: str, temperature: float | None, at: str) -> dict:
        at = f"2026-03-02T{at}:00+08:00"
        return {"subject": subject, "slot": slot, "temperature": temperature,
                "symptoms": ["咳嗽"], "member": "梁红", "at": at}  # fmt: skip

    entries = [case(f"早{n}", "morning", 37.3, f"08:4{n}") for n in range(5)]
    entries += [case("罗娟", "evening", 39.2, "18:40"), case("李四", "evening", None, "18:45")]
    lines = _abnormal_lines(entries)
    assert lines[1].startswith("· 罗娟 39.2℃")
    assert lines[-1] == "· …另 2 人次，见详情"
    assert not any("李四" in line for line in lines)  # a cough alone is shown after fevers


def test_a_need_in_the_digest_has_its_number_kind_and_words(
    loaded_db: sqlite_utils.Database, say: Callable[..., str]
) -> None:
    say("lianghong", "需求 张三 买菜")
    digest = build_digest(loaded_db, Config(), "HX", DAY, 2, at(20, 30))
    text = digest_text(digest, LINK)
    assert "待办需求 1 件：#1 张三（生活物资）买菜" in text  # 办结 1 closes it
