"""Chat commands by role (DESIGN §4), as conversations through the pipeline."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlite_utils

from tests.conftest import TZ

AT = dt.datetime(2026, 3, 2, 10, 40, tzinfo=TZ)
MEMBER, SECRETARY, MONITOR, MEDIC = "lianghong", "chenzhigang", "liumin", "huangyonghong"


def subject(db: sqlite_utils.Database, name: str) -> dict:
    return next(db.query("SELECT * FROM subjects WHERE name = ?", [name]))


HELP = [
    # sender, what help offers, what it must not offer (anywhere in the text)
    (
        MEMBER,
        ["上报请这样写", "名单", "撤销", "需求 张三 买菜", "办结 3 说明"],
        ["汇总", "解除", "未报", "查 张三", "收到 12", "已处置"],
    ),
    (
        SECRETARY,
        ["汇总", "异常", "未报", "查 张三", "解除 张三", "延长 张三 7天", "办结", "收到 12"],
        ["名单", "撤销", "上报请这样写"],
    ),
    (
        MONITOR,
        ["未报", "查 张三", "收到 12", "已处置 12", "需求", "办结"],
        ["汇总", "异常", "解除", "延长", "名单", "撤销"],
    ),
    (
        MEDIC,
        ["异常", "查 张三", "收到 12", "已处置 12"],
        ["汇总", "未报", "解除", "延长", "办结", "名单", "撤销"],
    ),
]


@pytest.mark.parametrize(
    "sender, offered, not_offered", HELP, ids=["member", "secretary", "monitor", "medic"]
)
@pytest.mark.parametrize("text", ["帮助", "？", "随便说点什么"], ids=["help", "?", "unknown"])
def test_help_offers_only_the_commands_of_the_role(
    say, sender: str, text: str, offered: list[str], not_offered: list[str]
) -> None:
    reply = say(sender, text)
    for word in offered:
        assert word in reply
    for word in not_offered:
        assert word not in reply


@pytest.mark.parametrize("sender", [MEMBER, SECRETARY, MONITOR, MEDIC])
def test_every_command_help_names_is_one_the_person_may_use(say, sender: str) -> None:
    """Each “word” of the example and each · line of help runs, never 仅限…."""
    reply = say(sender, "帮助")
    quoted = re.findall(r"“([^”]+)”", reply)
    listed = [line[2:].split(" — ")[0] for line in reply.splitlines() if line.startswith("· ")]
    assert listed
    for text in quoted + listed:
        assert "仅限" not in say(sender, text), text


@pytest.mark.parametrize(
    "sender, text, refusal",
    [
        (MEMBER, "汇总", "仅限书记"),
        (MEMBER, "未报", "仅限"),
        (MONITOR, "解除 张三", "仅限书记"),
        (MONITOR, "延长 张三 7天", "仅限书记"),
        (MEDIC, "办结 1", "仅限"),
        (SECRETARY, "名单", "仅限网格员"),
        (SECRETARY, "撤销", "仅限网格员"),
        (MEDIC, "延长 张三 7天", "仅限书记"),
        # a member spelling out a secretary's command is refused, not read as a report
        (MEMBER, "解除 张三", "仅限书记"),
        (MEMBER, "延长 张三 7天", "仅限书记"),
        (MEMBER, "查 张三", "仅限"),
        (MEMBER, "完成", "仅限"),  # a member closes only by number what they own (办结 1)
        (MEDIC, "收到", "好的"),  # 收到 alone is an acknowledgement, for everyone
    ],
)
def test_commands_are_refused_outside_their_roles(
    say, loaded_db: sqlite_utils.Database, sender: str, text: str, refusal: str
) -> None:
    before = subject(loaded_db, "张三")
    assert refusal in say(sender, text)
    assert subject(loaded_db, "张三") == before


def test_member_list_shows_todays_status_per_slot(say) -> None:
    say(MEMBER, "张三 36.5，王五 37.8 咳嗽", at=AT.replace(hour=8))
    reply = say(MEMBER, "名单")
    assert "张三  早✓36.5 中— 晚—" in reply
    assert "王五  早⚠37.8 中— 晚—" in reply
    assert reply.count("\n") == 6  # a heading and six subjects


def test_need_is_registered_listed_and_closed(say, loaded_db: sqlite_utils.Database) -> None:
    assert "已登记需求 #1（生活物资）：张三 买菜" in say(MEMBER, "需求 张三 买菜")
    assert "（就医）" in say(MEMBER, "需求 王五 需要去医院开降压药")
    listed = say(SECRETARY, "需求")
    assert "#1 张三 [生活物资] 买菜" in listed and "#2 王五 [就医]" in listed
    assert "已办结 #1" in say(SECRETARY, "办结 1")
    assert "#1" not in say(SECRETARY, "需求")
    assert "无需再办" in say(SECRETARY, "办结 1")  # closed already: says by whom and when
    assert "请写上需求编号" in say(SECRETARY, "办结 张三")
    assert "请以您负责的监测对象姓名开头" in say(MEMBER, "需求 高远 买菜")
    assert "请写明需要什么" in say(MEMBER, "需求 张三")


def test_secretary_looks_up_one_persons_file(say) -> None:
    say(MEMBER, "王五 37.8 咳嗽", at=AT.replace(hour=8))
    reply = say(SECRETARY, "查 王五")
    assert "王五（外地返回人员）监测中" in reply
    assert "139****0103" in reply and "13900000103" not in reply
    assert "3月2日早 异常 37.8℃ 发热、咳嗽（梁红 08:40）" in reply
    assert "未报" not in reply  # no prompt was ever sent: nothing was owed before go-live
    assert "没有名为“赵六”" in say(SECRETARY, "查 赵六")
    assert say(SECRETARY, "查王五") == reply  # voice input glues the name on


def test_the_file_shows_missed_slots_and_open_needs(say, loaded_db: sqlite_utils.Database) -> None:
    """查 王五 at 14:30 on 3/3, the schedule running since 2/28 12:00: the slots prompted and
    due since 3/1 (王五 started 2/26) in order, the ones nobody reported as 未报, and his
    open need."""
    from bot.config import Config
    from schedules.runner import run_due

    for day in (28, 1, 2, 3):
        month = 2 if day == 28 else 3
        for hour in (8, 12, 18):
            if (day, hour) not in ((28, 8), (3, 18)):
                run_due(loaded_db, Config(), AT.replace(month=month, day=day, hour=hour, minute=0))
    say(MEMBER, "王五 36.5", at=AT.replace(day=3, hour=8))
    say(MEMBER, "需求 王五 需要去医院开降压药", at=AT.replace(day=3, hour=8, minute=50))
    reply = say(SECRETARY, "查 王五", at=AT.replace(day=3, hour=14, minute=30))
    lines = reply.splitlines()
    days = [line for line in lines if line.startswith("3月")]
    assert days[0] == "3月1日早 未报" and len(days) == 3 * 2 + 2  # 3/1 and 3/2 whole, 3/3 two
    assert "3月3日早 正常 36.5℃（梁红 08:40）" in lines and "3月3日中 未报" in lines
    assert "需求 #1（就医）需要去医院开降压药：未办结，梁红包干" in lines


def test_abnormal_lists_todays_problems(say) -> None:
    assert "暂无异常" in say(SECRETARY, "异常")
    say(MEMBER, "王五 37.8 咳嗽，罗娟联系不上", at=AT.replace(hour=8))
    reply = say(SECRETARY, "异常")
    assert "早 王五 异常 37.8℃ 发热、咳嗽" in reply
    assert "早 罗娟 未联系上" in reply


def test_not_reported_groups_missing_subjects_by_member(say) -> None:
    say(MEMBER, "全部正常", at=AT.replace(hour=8))
    reply = say(MONITOR, "未报")
    assert "梁红" not in reply
    assert "韩冰：高远、宋佳、马晓东、朱丽" not in reply  # 朱丽 is covered by 梁红's 全部正常
    assert "韩冰：高远、宋佳、马晓东" in reply
    assert reply.startswith("3月2日未报：\n早（23人）")
    assert "今天的联系还没开始" in say(SECRETARY, "未报", at=AT.replace(hour=7))


def test_release_and_extend_change_the_period(say, loaded_db: sqlite_utils.Database) -> None:
    assert "已将王五的监测期延长7天，至3月18日" in say(SECRETARY, "延长 王五 7天")
    assert subject(loaded_db, "王五")["days"] == 21
    assert "已解除张三" in say(SECRETARY, "解除 张三")
    assert subject(loaded_db, "张三")["status"] == "released"
    assert "张三" not in say(MEMBER, "名单")
    assert "已不在监测中" in say(SECRETARY, "解除 张三")
    assert "请写明姓名和天数" in say(SECRETARY, "延长 张三")
    assert "延长天数应在1到90天之间" in say(SECRETARY, "延长 张三 900天")
    actions = [
        r["action"] for r in loaded_db.query("SELECT action FROM audit WHERE actor LIKE 'person:%'")
    ]
    assert actions == ["extend", "release"]


def test_release_and_extend_are_told_to_the_subjects_members(
    say, loaded_db: sqlite_utils.Database
) -> None:
    """DESIGN §2: the member hears it at once, and stops (or goes on) reporting."""
    assert say(SECRETARY, "解除 张三").endswith("已通知网格员梁红。")
    assert "已通知网格员" in say(SECRETARY, "延长 王五 7天")
    told = loaded_db.execute(
        "SELECT person, kind, text, status FROM outbox WHERE kind = 'release' ORDER BY id"
    ).fetchall()
    assert [(person, kind) for person, kind, _, _ in told] == [
        ("梁红", "release"),
        ("梁红", "release"),
    ]
    assert "张三" in told[0][2] and "3月2日起解除居家监测" in told[0][2]
    assert "王五的监测期延长7天，至3月18日" in told[1][2]


EXTEND = [
    # text, subject, days added
    ("延长 王五 7天", "王五", 7),
    ("延长 王五 7", "王五", 7),
    ("延长 王五 ７天", "王五", 7),  # full-width digit
    ("延长 王五 七天", "王五", 7),
    ("延长 李四 七天", "李四", 7),  # as the tester wrote it
    ("延长 王五七天", "王五", 7),  # voice: the name and the days in one breath
    ("延长王五七天", "王五", 7),
    ("延长 王五 两天", "王五", 2),
    ("延长 王五 一天", "王五", 1),
    ("延长 王五 十天", "王五", 10),
    ("延长 王五十天", "王五", 10),  # 王五 for ten days, not 王 for fifty
    ("延长 王五 十四天", "王五", 14),
    ("延长 王五 二十天", "王五", 20),
    ("延长 王五 二十一日", "王五", 21),
    ("延长 王五 三十天", "王五", 30),
    ("延长：王五，三天", "王五", 3),
    ("延长 张三 17天", "张三", 17),
    ("延期 张三 九十天", "张三", 90),
]


@pytest.mark.parametrize(("text", "name", "days"), EXTEND, ids=[e[0] for e in EXTEND])
def test_extend_takes_digits_or_chinese_numbers(
    say, loaded_db: sqlite_utils.Database, text: str, name: str, days: int
) -> None:
    before = subject(loaded_db, name)["days"]
    assert f"已将{name}的监测期延长{days}天" in say(SECRETARY, text)
    assert subject(loaded_db, name)["days"] == before + days


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("延长 王五 九十一天", "延长天数应在1到90天之间"),
        ("延长 王五 零天", "请写明姓名和天数"),
        ("延长 王五 几天", "请写明姓名和天数"),
        ("延长 赵六 七天", "没有名为“赵六”"),
        ("延长 赵六 二十一天", "没有名为“赵六”"),
        ("延长 赵六 17天", "没有名为“赵六”"),
    ],
)
def test_extend_refuses_what_it_cannot_read(
    say, loaded_db: sqlite_utils.Database, text: str, answer: str
) -> None:
    before = subject(loaded_db, "王五")["days"]
    assert answer in say(SECRETARY, text)
    assert subject(loaded_db, "王五")["days"] == before


@pytest.mark.parametrize(
    "text",
    [
        "查",
        "解除",
        "延长",
        "办结",
        "查 '; DROP TABLE subjects; --",
        "延长 🙂 7天",
        "办结 -1",
        "需求 " + "x" * 500,
    ],
)
def test_garbage_arguments_get_an_example(
    say, loaded_db: sqlite_utils.Database, dump_db, text: str
):
    before = dump_db(loaded_db)
    reply = say(SECRETARY, text)
    assert "例如" in reply or "没有" in reply
    after = dump_db(loaded_db)
    # only the inbox and the reply in the outbox may change
    assert without_messages(before) == without_messages(after)


def without_messages(dump: str) -> list[str]:
    return [line for line in dump.splitlines() if '"inbox"' not in line and '"outbox"' not in line]


@pytest.fixture
def namesake(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """A second village of 城关镇, 河东村, with a 张三 of its own."""
    loaded_db["units"].insert({"code": "HD", "name": "河东村", "level": "village", "parent": "CG"})
    loaded_db["subjects"].insert(
        {"name": "张三", "category": "外地返回人员", "unit": "HD", "start_date": "2026-02-28",
         "days": 14, "phone": "13900000999", "address": "河东村2组1号"}
    )  # fmt: skip
    return loaded_db


@pytest.mark.parametrize(
    ("sender", "text", "expected"),
    [
        (SECRETARY, "查 萝卷", "罗娟（疑似症状人员）"),  # a homophone, as in a report
        (SECRETARY, "查 老罗", "罗娟（疑似症状人员）"),  # the courtesy form
        (SECRETARY, "查 张三", "张三（涉鄂人员）"),  # the secretary's village has one
        (MONITOR, "查 张三", "有2位名为张三的监测对象：河东村张三、河西村张三"),
        (MONITOR, "查 河东村张三", "张三（外地返回人员）"),
        (MONITOR, "查 河西村张三", "张三（涉鄂人员）"),
        (SECRETARY, "查 赵六", "本村没有名为“赵六”的监测对象"),
    ],
)
def test_lookup_matches_names_as_reports_do_and_lists_namesakes(
    say, namesake: sqlite_utils.Database, sender: str, text: str, expected: str
) -> None:
    assert expected in say(sender, text)


def test_a_report_on_a_released_subject_is_answered_and_recorded_nowhere(
    say, loaded_db: sqlite_utils.Database
) -> None:
    """DESIGN §2: after 解除 张三, her member's 张三 36.5 gets 已解除, not 不在您的名单中."""
    say(SECRETARY, "解除 张三")
    contacts = loaded_db.execute("SELECT count(*) FROM contacts").fetchone()[0]
    reply = say(MEMBER, "张三 36.5，李四 36.6")
    assert "张三已于3月2日解除居家监测，无需再上报，本条未记录" in reply
    assert "李四 36.6℃" in reply and "不在您的名单中" not in reply
    assert loaded_db.execute("SELECT count(*) FROM contacts").fetchone()[0] == contacts + 1
    # a period that ended by itself (何平: 2/16–3/1) reads the same
    assert "何平已于3月2日解除居家监测" in say("hanbing", "何平 36.5")


def test_not_reported_names_every_member_of_a_shared_subject(say) -> None:
    """朱丽 is 梁红's and 韩冰's (多对一): 未报 names both, as the 10:00 alert does."""
    reply = say(SECRETARY, "未报")
    morning = reply.splitlines()[1]
    assert "梁红：" in morning and "韩冰：" in morning
    assert morning.count("朱丽") == 2
    assert morning.startswith("早（29人）")  # each subject counted once
