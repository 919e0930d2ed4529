"""Alerts are acknowledged and escalate; problems move up when overdue (DESIGN §11), through
`say` and the schedule's `tick` (run_due) as a village lives them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlite_utils

from bot.config import Config
from handlers.acks import acknowledge
from schedules.runner import run_due
from storage.db import migrate
from storage.needs import week_problems
from tests.conftest import TZ

MEMBER, SECRETARY, MONITOR, MEDIC = "lianghong", "chenzhigang", "liumin", "huangyonghong"
COUNTY = "zhaoxian"  # a county monitor added for these tests (the demo has none)
OTHER = "hedong"  # the secretary of another village


def at(hour: int, minute: int = 0, day: int = 2) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def village(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """The demo roster, plus a county monitor and a second village with its secretary."""
    db = loaded_db
    db["units"].insert({"code": "HD", "name": "河东村", "level": "village", "parent": "CG"})
    for name, phone, wechat_id, roles, unit in [
        ("赵县", "13800000091", COUNTY, "monitor", "KC"),
        ("钱村", "13800000092", OTHER, "secretary", "HD"),
    ]:
        db["people"].insert(
            {"name": name, "phone": phone, "wechat_id": wechat_id, "roles": roles}
            | {"unit": unit, "active": 1}
        )
    return db


@pytest.fixture
def tick(village: sqlite_utils.Database, config: Config) -> Callable[[dt.datetime], None]:
    def run(now: dt.datetime) -> None:
        run_due(village, config, now)

    return run


def escalations(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """(person, first line) of every escalation, in order."""
    rows = db.execute("SELECT person, text FROM outbox WHERE kind = 'escalation' ORDER BY id")
    return [(person, text.splitlines()[0]) for person, text in rows]


def fever(say: Callable[..., str]) -> int:
    """张三's fever at 08:20: alert number 1 to the secretary and the medic."""
    reply = say(MEMBER, "张三 37.8 咳嗽", at=at(8, 20))
    assert "已通知陈志刚、黄永红" in reply
    return 1


def test_an_alert_carries_its_number_and_how_to_answer(village, say) -> None:
    fever(say)
    texts = village.execute(
        "SELECT person, text FROM outbox WHERE kind = 'abnormal_alert' ORDER BY person"
    ).fetchall()
    assert [p for p, _ in texts] == ["陈志刚", "黄永红"]
    for _, text in texts:
        assert "提醒编号 1：请回复“收到 1”或“已处置 1”" in text


def test_unreachable_subjects_of_one_message_each_have_a_number(village, say) -> None:
    say(MEMBER, "张三 未联系上，李四 电话不通", at=at(8, 20))
    (text,) = village.execute("SELECT text FROM outbox WHERE kind = 'unreachable_alert'").fetchone()
    assert "[1] 张三" in text and "[2] 李四" in text and "例如：收到 1" in text


def test_unacknowledged_alert_reaches_the_town_then_the_county(village, say, tick) -> None:
    fever(say)
    tick(at(8, 49))
    assert escalations(village) == []
    tick(at(8, 50))  # escalate_after (30 min): the town's monitor
    assert [p for p, _ in escalations(village)] == ["刘敏"]
    (text,) = village.execute("SELECT text FROM outbox WHERE kind = 'escalation'").fetchone()
    assert text.splitlines() == [
        "【督办·异常】提醒编号 1 已 30 分钟无人确认（08:20 发出，第一次升级至城关镇）：",
        "异常：张三（河西村第一网格，涉鄂人员）体温37.8℃，发热、咳嗽，"
        "3月2日早网格员梁红 08:20上报。",
        "已通知陈志刚、黄永红，尚无人按编号确认。",
        "请督促核实处置，并回复“收到 1”或“已处置 1 说明”。",
    ]
    tick(at(9, 5))
    tick(at(9, 20))  # twice that: the county's
    assert [p for p, _ in escalations(village)] == ["刘敏", "赵县"]
    tick(at(10, 0))
    tick(at(12, 0))
    assert len(escalations(village)) == 2  # each step once


@pytest.mark.parametrize(
    "sender, text",
    [(SECRETARY, "收到 1"), (MEDIC, "已处置 1 已电话核实，建议就医"), (MONITOR, "收到1")],
    ids=["secretary-received", "medic-handled", "monitor-above"],
)
def test_an_acknowledged_alert_never_escalates(village, say, tick, sender, text) -> None:
    fever(say)
    reply = say(sender, text, at=at(8, 30))
    assert "编号 1" in reply and "仅限" not in reply
    for now in (at(8, 50), at(9, 20), at(12, 0)):
        tick(now)
    assert [line for _, line in escalations(village) if line.startswith("【督办")] == []


def test_the_alerts_other_recipients_hear_it_is_handled(village, say) -> None:
    """The medic handled it: the secretary, who got the same alert, hears so once (two people
    do not go to the same door); a 收到 tells nobody."""
    fever(say)
    say(SECRETARY, "收到 1", at=at(8, 25))
    assert escalations(village) == []
    say(MEDIC, "已处置 1 已电话核实，建议就医", at=at(8, 30))
    assert escalations(village) == [
        (
            "陈志刚",
            "【已处置】提醒编号 1（张三）已由黄永红于 08:30 处置，"
            "说明：已电话核实，建议就医，无需再处置。",
        )
    ]


def test_a_corrected_alert_never_escalates(village, say, tick) -> None:
    fever(say)
    say(MEMBER, "更正 张三 36.6 正常", at=at(8, 40))
    for now in (at(8, 50), at(9, 20), at(12, 0)):
        tick(now)
    assert escalations(village) == []
    assert village.execute("SELECT status FROM alerts WHERE id = 1").fetchone()[0] == "voided"


def test_a_corrected_reading_with_the_cough_still_there_keeps_the_alert(village, say, tick) -> None:
    fever(say)
    say(MEMBER, "更正 张三 36.6", at=at(8, 40))  # the reading was mistyped; the cough stays
    tick(at(8, 50))
    assert [p for p, _ in escalations(village)] == ["刘敏"]


def test_a_cover_report_cannot_silence_an_alert(village, say, tick) -> None:
    """吴秀兰 (another grid, not 张三's member) reports 张三 normal after the alert went up to
    the town: the record changes, the alert stays open and goes on up, and the town monitor
    it reached hears the correction too."""
    fever(say)
    tick(at(8, 50))  # 刘敏, the town, has it
    say("wuxiulan", "早 张三 36.5 正常", at=at(9, 0))
    told = village.execute("SELECT person, text FROM outbox WHERE kind = 'correction'").fetchall()
    assert {person for person, _ in told} == {"陈志刚", "黄永红", "刘敏"}
    assert all("非包联网格员代报" in text and "已处置 1" in text for _, text in told)
    assert village.execute("SELECT status FROM alerts WHERE id = 1").fetchone()[0] == "open"
    tick(at(9, 20))
    assert [p for p, _ in escalations(village)] == ["刘敏", "赵县"]


def test_a_cover_member_may_take_back_their_own_alert(village, say, tick) -> None:
    say("wuxiulan", "张三 38.5", at=at(8, 20))  # not her subject: a cover report, alert 1
    say("wuxiulan", "撤销", at=at(8, 22))
    assert village.execute("SELECT status FROM alerts WHERE id = 1").fetchone()[0] == "voided"
    tick(at(9, 30))
    assert escalations(village) == []
    told = village.execute("SELECT text FROM outbox WHERE kind = 'correction'").fetchall()
    assert told and all("非包联网格员代报" not in text for (text,) in told)


def test_a_correction_reaches_everyone_the_escalation_reached(village, say, tick) -> None:
    fever(say)
    tick(at(8, 50))
    say(MEMBER, "更正 张三 36.5 正常", at=at(9, 0))
    told = {p for (p,) in village.execute("SELECT person FROM outbox WHERE kind = 'correction'")}
    assert told == {"陈志刚", "黄永红", "刘敏"}


def test_a_later_report_of_another_slot_does_not_void_the_alert(village, say, tick) -> None:
    fever(say)
    say(MEMBER, "中：张三 36.6", at=at(8, 40))
    tick(at(8, 50))
    assert [p for p, _ in escalations(village)] == ["刘敏"]


def test_catch_up_after_downtime_sends_each_escalation_once(village, say, tick) -> None:
    tick(at(8, 0))
    fever(say)
    tick(at(10, 15))  # the server was down from 08:00: both steps are due
    assert [p for p, _ in escalations(village)] == ["刘敏", "赵县"]
    assert "已 115 分钟无人确认" in escalations(village)[0][1]  # how long it really was
    tick(at(10, 16))
    tick(at(10, 30))
    assert [p for p, _ in escalations(village)] == ["刘敏", "赵县"]
    keys = village.execute(
        "SELECT send_key, count(*) FROM outbox WHERE send_key IS NOT NULL GROUP BY send_key"
    ).fetchall()
    assert {count for _, count in keys} == {1}


def test_an_alert_of_yesterday_is_not_escalated_after_a_long_downtime(village, say, tick):
    fever(say)
    tick(at(9, 0, day=3))
    assert escalations(village) == []


def test_acknowledging_after_escalation_tells_the_escalation_recipients_once(
    village, say, tick
) -> None:
    fever(say)
    tick(at(9, 20))
    assert "已确认收到编号 1" in say(SECRETARY, "收到 1", at=at(9, 25))
    assert "已记录编号 1（张三）已处置" in say(MEDIC, "已处置 1 已送医", at=at(9, 40))
    told = [(p, line) for p, line in escalations(village) if line.startswith("【已回复】")]
    assert sorted(p for p, _ in told) == ["刘敏", "赵县"]
    assert all("陈志刚" in line and "确认收到" in line for _, line in told)
    acks = village.execute(
        "SELECT p.name, k.action, k.at, k.note FROM alert_acks k JOIN people p"
        " ON p.id = k.person_id ORDER BY k.id"
    ).fetchall()
    assert acks == [
        ("陈志刚", "received", "2026-03-02T09:25:00+08:00", ""),
        ("黄永红", "handled", "2026-03-02T09:40:00+08:00", "已送医"),
    ]


@pytest.mark.parametrize(
    "sender, text, answer",
    [
        (SECRETARY, "收到 9", "没有编号为 9 的提醒"),
        (SECRETARY, "已处置", "请写上提醒编号，例如：已处置 12"),
        (OTHER, "收到 1", "不是发给您的"),
        (SECRETARY, "收到１", "已确认收到编号 1"),  # full-width digit
        (SECRETARY, "已处置 #1", "已记录编号 1（张三）已处置。"),
        (SECRETARY, "已处置1号，已退烧", "已记录编号 1（张三）已处置，说明：已退烧。"),
        (MEMBER, "收到 1", "是书记、督查员、医护确认提醒用的"),  # one line, not the help
        (MEMBER, "已处置 12号", "仅限医护、督查员、书记使用"),  # a command: refused by role
        (MEMBER, "收到", "好的"),  # a member's plain acknowledgement stays one
        (MEMBER, "收到 365", "没写是谁的情况"),  # might be a reading (36.5): the parser's to read
        (SECRETARY, "收到", "已确认收到编号 1"),  # the one alert waiting for her
    ],
)
def test_acknowledgement_answers(village, say, sender, text, answer) -> None:
    fever(say)
    assert answer in say(sender, text, at=at(8, 30))


@pytest.mark.parametrize(
    "first, then, answer",
    [
        ("已处置 1", "已处置 1", "已由黄永红于3月2日 08:30处置，无需再回复"),
        ("已处置 1", "收到 1", "已由黄永红于3月2日 08:30处置"),
        ("收到 1", "已处置 1 退烧了", "已记录编号 1（张三）已处置，说明：退烧了"),
    ],
)
def test_a_second_answer(village, say, first, then, answer) -> None:
    fever(say)
    say(MEDIC, first, at=at(8, 30))
    assert answer in say(SECRETARY, then, at=at(8, 35))


def test_the_button_calls_acknowledge_with_the_same_answers(village, say) -> None:
    fever(say)
    medic = next(village.query("SELECT * FROM people WHERE wechat_id = ?", [MEDIC]))
    other = next(village.query("SELECT * FROM people WHERE wechat_id = ?", [OTHER]))
    assert "不是发给您的" in acknowledge(village, other, 1, "handled", at(8, 30))
    assert "已处置" in acknowledge(village, medic, 1, "handled", at(8, 30), note="已核实")
    assert "无需再回复" in acknowledge(village, medic, 1, "handled", at(8, 31))
    assert village.execute("SELECT status FROM alerts WHERE id = 1").fetchone()[0] == "handled"


def test_a_voided_alert_is_answered_so(village, say) -> None:
    fever(say)
    say(MEMBER, "更正 张三 36.6 正常", at=at(8, 40))
    assert "已作废" in say(SECRETARY, "收到 1", at=at(8, 45))


# ---------------------------------------------------------------- the problem ledger


def test_a_need_is_a_problem_with_owner_level_and_due(village, say) -> None:
    reply = say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    assert "已登记需求 #1（生活物资）" in reply and "由您包干负责" in reply
    assert "3月3日 09:00前办结" in reply  # 生活物资: 24 hours
    listed = say(SECRETARY, "需求", at=at(9, 5))
    assert "村级 梁红包干，3月3日 09:00前" in listed


def test_an_overdue_problem_moves_up_once_and_is_closed_with_a_note(village, say, tick):
    say(MEMBER, "需求 王五 需要去医院开降压药", at=at(9, 0))  # 就医: 12 hours
    tick(at(20, 59))
    assert escalations(village) == []
    tick(at(21, 1))
    tick(at(21, 2))
    tick(at(22, 0))
    moved = escalations(village)
    assert moved == [("刘敏", "【问题台账·逾期上交】#1 王五（就医）需要去医院开降压药")]
    row = village.execute("SELECT level, due_at FROM needs WHERE id = 1").fetchone()
    assert row == ("town", "2026-03-03T09:01:00+08:00")
    assert "已逾期" not in say(MONITOR, "需求", at=at(22, 5))
    assert "镇级 刘敏包干" in say(MONITOR, "需求", at=at(22, 5))
    assert "已办结 #1：王五 需要去医院开降压药，说明：已陪同就医" in say(
        MONITOR, "办结 1 已陪同就医", at=at(22, 10)
    )
    assert village.execute("SELECT status, note FROM needs WHERE id = 1").fetchone() == (
        "closed",
        "已陪同就医",
    )
    # 梁红 raised it and owned it before it went up: she hears it is done
    assert escalations(village)[1] == (
        "梁红",
        "【需求办结】#1 王五 需要去医院开降压药：已由刘敏于 22:10 办结，说明：已陪同就医。",
    )
    tick(at(10, 0, day=3))
    assert len(escalations(village)) == 2  # closed: never moves again


def test_closing_twice_or_by_the_member_who_raised_it_says_where_it_stands(village, say) -> None:
    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    village.execute(
        "UPDATE needs SET owner_id = (SELECT id FROM people WHERE wechat_id = ?)", [SECRETARY]
    )
    assert "现由陈志刚包干" in say(MEMBER, "办结 1 送到了", at=at(9, 5))
    say(SECRETARY, "办结 1 已送菜", at=at(9, 10))
    assert "已于3月2日 09:10由陈志刚办结" in say(MEMBER, "办结 1 送到了", at=at(9, 15))


def test_a_member_closes_only_the_problems_they_own(village, say) -> None:
    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    assert "没有由您包干" in say("hanbing", "办结 1 送了", at=at(9, 5))
    assert "已办结 #1" in say(MEMBER, "办结 1 送了", at=at(9, 10))


def test_week_problems(village, say, tick) -> None:
    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    say(MEMBER, "需求 王五 需要去医院开降压药", at=at(9, 0))
    say(MEMBER, "需求 李四 想找人聊天", at=at(9, 0))
    say(SECRETARY, "办结 1 已送", at=at(11, 0))
    now = at(22, 0)
    tick(now)
    week = week_problems(village, "HX", dt.date(2026, 3, 2), dt.date(2026, 3, 8), at(9, 30, 3))
    assert {k: week[k] for k in ("opened", "closed", "open", "overdue")} == {
        "opened": 3,
        "closed": 1,
        "open": 2,
        "overdue": 1,  # 李四 (24 h) is due 3/3 09:00; 王五 moved up at 22:00, due 3/3 10:00
    }
    items = {item["id"]: item for item in week["items"]}
    assert items[1]["note"] == "已送" and items[1]["status"] == "closed"
    assert items[2]["level"] == "town" and items[2]["owner"] == "刘敏"
    assert items[3]["owner"] == "梁红" and items[3]["overdue"]
    assert (
        week_problems(village, "HD", dt.date(2026, 3, 2), dt.date(2026, 3, 8), now)["items"] == []
    )


def test_migrations_rerun_from_version_4_keep_alerts_and_problems(village, say) -> None:
    fever(say)
    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    village.execute("PRAGMA user_version = 4")
    migrate(village)
    assert village.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    assert village.execute("SELECT owner_id IS NOT NULL FROM needs").fetchone()[0] == 1


def test_a_rehearsal_ahead_of_the_clock_moves_no_problem(village, say, config) -> None:
    say(MEMBER, "需求 王五 需要去医院开降压药", at=at(9, 0))
    run_due(village, config, at(22, 0), clock=at(10, 0))  # `tick --at` ahead of the real time
    assert village.execute("SELECT level FROM needs WHERE id = 1").fetchone()[0] == "village"
    run_due(village, config, at(22, 0))
    assert village.execute("SELECT level FROM needs WHERE id = 1").fetchone()[0] == "town"


def test_with_nobody_at_the_town_a_problem_goes_to_the_county(village, say, tick) -> None:
    village.execute("UPDATE people SET active = 0 WHERE wechat_id = ?", [MONITOR])
    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    tick(at(9, 1, day=3))
    assert escalations(village) == [("赵县", "【问题台账·逾期上交】#1 张三（生活物资）买菜")]
    assert village.execute("SELECT level FROM needs WHERE id = 1").fetchone()[0] == "county"
    tick(at(9, 2, day=4))  # at the top: it stays, told once
    assert len(escalations(village)) == 1


def test_gridwatch_ledger_xlsx_has_the_problem_sheet(village, say, run_cli, tmp_path) -> None:
    import openpyxl

    say(MEMBER, "需求 张三 买菜", at=at(9, 0))
    out = tmp_path / "ledger.xlsx"
    result = run_cli("ledger", "--unit", "HX", "--format", "xlsx", "--out", out)
    assert result.exit_code == 0 and "1 problems" in result.output
    sheet = openpyxl.load_workbook(out)["问题台账"]
    assert [c.value for c in sheet[2]][:4] == [1, "张三", "生活物资", "买菜"]


def test_yichang_shows_each_alert_number_and_whether_it_was_answered(village, say) -> None:
    fever(say)
    say(MEMBER, "王五 不在家", at=at(8, 25))
    say(SECRETARY, "已处置 1 已送发热门诊", at=at(8, 40))
    listed = say(SECRETARY, "异常", at=at(8, 45))
    assert "张三 异常 37.8℃ 发热、咳嗽（编号 1，已处置）" in listed
    assert "王五 外出（编号 2，未确认）" in listed


@pytest.mark.parametrize(
    "start, counts, listed",
    [
        (dt.date(2026, 2, 23), {"opened": 1, "closed": 0, "open": 1, "overdue": 0}, [1]),
        (dt.date(2026, 3, 2), {"opened": 1, "closed": 1, "open": 1, "overdue": 1}, [1, 2]),
        (dt.date(2026, 3, 9), {"opened": 0, "closed": 0, "open": 1, "overdue": 1}, [2]),
    ],
    ids=["W09", "W10", "W11"],
)
def test_a_past_week_counts_its_problems_at_its_end(village, say, start, counts, listed):
    say(MEMBER, "需求 张三 买菜", at=at(9, 0, day=1))  # Sunday of W09, due in W10
    say(SECRETARY, "办结 1 已送", at=at(11, 0, day=2))  # W10
    say(MEMBER, "需求 李四 买菜", at=at(9, 0, day=4))  # W10, due 3/5, never closed
    week = week_problems(village, "HX", start, start + dt.timedelta(days=6), at(9, 0, day=20))
    assert {k: week[k] for k in counts} == counts
    assert [item["id"] for item in week["items"]] == listed


def test_a_member_with_one_subject_may_report_after_shoudao(village, say) -> None:
    """收到 36.5 from a member with one subject is a report, not an acknowledgement."""
    village.execute(
        """DELETE FROM assignments WHERE person_id = (SELECT id FROM people WHERE name = '梁红')
           AND subject_id != (SELECT id FROM subjects WHERE name = '张三')"""
    )
    reply = say(MEMBER, "收到 36.5", at=at(8, 30))
    assert "张三 36.5℃ 正常" in reply and "仅限" not in reply


# ---------------------------------------------------------------- 收到 without a number


@pytest.mark.parametrize("text", ["收到", "收到，马上去", "好的收到", "收到！我这就去核实"])
def test_a_bare_received_acknowledges_the_one_alert_waiting(village, say, tick, text) -> None:
    fever(say)
    reply = say(SECRETARY, text, at=at(8, 25))
    assert "编号 1" in reply
    tick(at(9, 30))
    assert escalations(village) == []  # answered: nobody is told it was not


def test_a_bare_received_with_several_alerts_waiting_asks_which(village, say) -> None:
    fever(say)
    say(MEMBER, "李四 38.1", at=at(8, 21))
    reply = say(SECRETARY, "收到", at=at(8, 25))
    assert "2条未确认的提醒：1 张三、2 李四" in reply and "收到 1" in reply
    assert village.execute("SELECT count(*) FROM alert_acks").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (SECRETARY, "好的，辛苦了！"),  # nothing waiting: the ordinary acknowledgement
        (MEMBER, "好的，辛苦了！"),  # a member's 收到 is never an alert's acknowledgement
    ],
)
def test_a_bare_received_with_nothing_waiting_is_just_thanks(village, say, who, expected) -> None:
    assert say(who, "收到", at=at(8, 25)) == expected


def test_received_with_the_number_written_out(village, say) -> None:
    fever(say)
    assert "编号 1" in say(SECRETARY, "收到第1号", at=at(8, 25))


def test_a_bare_received_does_not_pick_an_alert_someone_else_answered(village, say) -> None:
    """The medic answered alert 1; the secretary's bare 收到 could mean 1 or 2: asked."""
    fever(say)
    say(MEDIC, "收到 1", at=at(8, 21))
    say(MEMBER, "李四 38.6", at=at(8, 22))
    reply = say(SECRETARY, "收到", at=at(8, 25))
    assert "2条未确认的提醒" in reply
    assert village.execute(
        "SELECT count(*) FROM alert_acks k JOIN people p ON p.id = k.person_id"
        " WHERE p.wechat_id = ?",
        [SECRETARY],
    ).fetchone() == (0,)
