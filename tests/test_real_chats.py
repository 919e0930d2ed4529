"""Reports as they circulated in village chats and notices, as conversations through
`gridwatch say`: what is recorded, what the member is told, who is alerted (DESIGN §3).

The demo roster, plus two members of 河西村 for the forms it lacks: 王建 (wangjian) with
张伟, 王芳 and 张建军 (a given name, two surnames 张), and 李静 (lijing) with one subject.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import Result

from handlers.pipeline import ACK_REPLY
from handlers.reports import BULK_NAMED_HINT

AT = "2026-03-02T08:41"
Say = Callable[..., Result]


@pytest.fixture
def roster_dir(roster_dir: Path) -> Path:
    """The demo roster with 王建 (three subjects) and 李静 (one) added in grid HX02."""
    with (roster_dir / "people.csv").open("a", encoding="utf-8") as f:
        f.write("王建,13800000017,wangjian,网格员,HX02\n")
        f.write("李静,13800000018,lijing,网格员,HX02\n")
    with (roster_dir / "subjects.csv").open("a", encoding="utf-8") as f:
        f.write("张伟,13900000131,外地返回人员,河西村7组1号,HX02,2026-02-28,14,王建\n")
        f.write("王芳,13900000132,外地返回人员,河西村7组2号,HX02,2026-02-28,14,王建\n")
        f.write("张建军,13900000133,涉鄂人员,河西村7组3号,HX02,2026-02-28,14,王建\n")
        f.write("赵敏,13900000134,外地返回人员,河西村7组5号,HX02,2026-02-28,14,李静\n")
    return roster_dir


@pytest.fixture
def say(loaded_db: sqlite_utils.Database, run_cli: Callable[..., Result]) -> Say:
    """say("lianghong", "张三 36.5") runs `gridwatch say --from lianghong --at AT TEXT`."""

    def run(sender: str, text: str, at: str = AT) -> Result:
        result = run_cli("say", "--from", sender, "--at", at, text)
        assert result.exit_code == 0, result.output
        return result

    return run


def records(db: sqlite_utils.Database) -> dict[str, tuple]:
    """Current morning reports: name → (status, temperature, symptoms)."""
    rows = db.query(
        """SELECT s.name, c.status, c.temperature, c.symptoms FROM contacts c
           JOIN subjects s ON s.id = c.subject_id
           WHERE c.slot = 'morning' AND c.current = 1 ORDER BY c.id"""
    )
    return {r["name"]: (r["status"], r["temperature"], r["symptoms"] or "") for r in rows}


def alert_kinds(db: sqlite_utils.Database) -> set[str]:
    return {r["kind"] for r in db.query("SELECT kind FROM outbox WHERE kind LIKE '%alert'")}


def reply_of(db: sqlite_utils.Database) -> str:
    row = next(db.query("SELECT reply, outcome FROM inbox ORDER BY id DESC LIMIT 1"))
    return row["reply"]


def chat_case(
    sender: str,
    text: str,
    recorded: dict[str, tuple],
    says: tuple[str, ...] = (),
    never: tuple[str, ...] = (),
    alerts: set[str] | frozenset[str] = frozenset(),
    *,
    id: str,  # noqa: A002
):
    return pytest.param(sender, text, recorded, says, never, set(alerts), id=id)


CHATS = [
    # a comma or a doubled dot as decimal mark: the fever is seen
    chat_case(
        "lianghong",
        "王五 37,8",
        {"王五": ("abnormal", 37.8, "发热")},
        ("⚠ 王五 37.8℃ 发热", "本时段还差：张三、李四、罗娟、林峰、朱丽"),
        alerts={"abnormal_alert"},
        id="comma-decimal",
    ),
    chat_case(
        "lianghong",
        "王五 37，8",
        {"王五": ("abnormal", 37.8, "发热")},
        ("⚠ 王五 37.8℃ 发热",),
        alerts={"abnormal_alert"},
        id="full-width-comma-decimal",
    ),
    chat_case("lianghong", "王五 36,5", {"王五": ("normal", 36.5, "")}, id="comma-normal"),
    chat_case(
        "lianghong",
        "王五 37..8",
        {"王五": ("abnormal", 37.8, "发热")},
        ("⚠ 王五 37.8℃ 发热",),
        alerts={"abnormal_alert"},
        id="double-dot",
    ),
    chat_case(
        "lianghong",
        "王五 37 8",
        {},
        ("❓", "体温没法确认"),
        ("已记录",),
        id="decimal-apart-asked-back",
    ),
    # the notice's wording is a normal report, whatever the list holds
    chat_case(
        "lianghong",
        "王五 36.5，无发热、干咳、乏力、咽痛、嗅（味）觉减退、腹泻等症状",
        {"王五": ("normal", 36.5, "")},
        ("王五 36.5℃ 正常",),
        ("⚠", "❓"),
        id="notice-negation",
    ),
    chat_case(
        "lianghong",
        "王五体温36.4，无发热、寒战、干咳、咳痰、鼻塞、流涕、咽痛、头痛、乏力、肌肉酸痛、"
        "关节疼痛、气促、呼吸困难、胸闷、结膜充血、恶心、呕吐、腹泻、腹痛等症状",
        {"王五": ("normal", 36.4, "")},
        ("王五 36.4℃ 正常",),
        ("⚠", "❓", "不在您的名单"),
        id="notice-long-list",
    ),
    # a bulk after named reports: those names only
    chat_case(
        "wangjian",
        "张伟36.5 王芳36.7 都好",
        {"张伟": ("normal", 36.5, ""), "王芳": ("normal", 36.7, "")},
        ("张伟 36.5℃ 正常", "王芳 36.7℃ 正常", "本时段还差：张建军", BULK_NAMED_HINT),
        id="bulk-after-names",
    ),
    chat_case(
        "wangjian",
        "除张伟外都正常，张伟未联系上",
        {
            "张伟": ("unreachable", None, ""),
            "王芳": ("normal", None, ""),
            "张建军": ("normal", None, ""),
        },
        ("⚠ 张伟 未联系上", "王芳、张建军 正常", "本时段已全部上报"),
        alerts={"unreachable_alert"},
        id="except-then-status",
    ),
    # a member with one subject may leave the name out
    chat_case(
        "lijing",
        "一切正常",
        {"赵敏": ("normal", None, "")},
        ("赵敏 正常", "本时段已全部上报"),
        id="one-subject-bulk",
    ),
    chat_case(
        "lijing",
        "36.5",
        {"赵敏": ("normal", 36.5, "")},
        ("赵敏 36.5℃ 正常",),
        id="one-subject-bare-reading",
    ),
    # status first, given name, 老师, traditional characters
    chat_case(
        "wangjian",
        "未联系上：张伟",
        {"张伟": ("unreachable", None, "")},
        ("⚠ 张伟 未联系上", "本时段还差：王芳、张建军"),
        alerts={"unreachable_alert"},
        id="status-first",
    ),
    chat_case(
        "wangjian",
        "建军 36.5",
        {"张建军": ("normal", 36.5, "")},
        ("张建军 36.5℃ 正常",),
        id="given-name",
    ),
    chat_case(
        "lianghong",
        "罗老师 36.2",
        {"罗娟": ("normal", 36.2, "")},
        ("罗娟 36.2℃ 正常",),
        id="courtesy-teacher",
    ),
    chat_case(
        "wangjian",
        "张老师 36.2",
        {},
        ("❓", "可能是张伟、张建军"),
        id="courtesy-teacher-two-zhang-asked",
    ),
    chat_case(
        "wangjian",
        "張偉 頭痛",
        {"张伟": ("abnormal", None, "头痛")},
        ("⚠ 张伟 头痛",),
        alerts={"abnormal_alert"},
        id="traditional",
    ),
    # symptoms over; out of the house
    chat_case("lianghong", "王五 咳嗽好了 36.6", {"王五": ("normal", 36.6, "")}, id="symptom-over"),
    chat_case(
        "lianghong",
        "王五 出去买菜了",
        {"王五": ("absent", None, "")},
        ("⚠ 王五 外出",),
        alerts={"absent_alert"},
        id="absent-shopping",
    ),
    chat_case(
        "lianghong",
        "王五 已送医院",
        {"王五": ("absent", None, "")},
        ("⚠ 王五 外出",),
        alerts={"absent_alert"},
        id="absent-hospital",
    ),
]


@pytest.mark.parametrize(("sender", "text", "recorded", "says", "never", "alerts"), CHATS)
def test_chat(
    say: Say,
    loaded_db: sqlite_utils.Database,
    sender: str,
    text: str,
    recorded: dict[str, tuple],
    says: tuple[str, ...],
    never: tuple[str, ...],
    alerts: set[str],
) -> None:
    say(sender, text)
    reply = reply_of(loaded_db)
    assert records(loaded_db) == recorded
    for part in says:
        assert part in reply, reply
    for part in never:
        assert part not in reply, reply
    assert alert_kinds(loaded_db) == alerts


ACKS = ["收到", "好的", "嗯", "👌", "谢谢", "收到，谢谢！", "[抱拳]", "好的👍"]


@pytest.mark.parametrize("text", ACKS)
@pytest.mark.parametrize("sender", ["lianghong", "lijing", "chenzhigang"])
def test_an_acknowledgement_gets_one_short_line(
    say: Say, loaded_db: sqlite_utils.Database, sender: str, text: str
) -> None:
    result = say(sender, text)
    assert result.output.strip() == ACK_REPLY
    row = next(loaded_db.query("SELECT outcome FROM inbox"))
    assert row["outcome"] == "ack"
    assert loaded_db["contacts"].count == 0


def test_a_symptom_reported_then_over(say: Say, loaded_db: sqlite_utils.Database) -> None:
    say("lianghong", "王五 咳嗽")
    assert records(loaded_db) == {"王五": ("abnormal", None, "咳嗽")}
    say("lianghong", "王五 咳嗽好了", at="2026-03-02T09:30")
    assert records(loaded_db) == {"王五": ("normal", None, "")}


def test_the_bulk_after_names_leaves_the_rest_to_report(
    say: Say, loaded_db: sqlite_utils.Database
) -> None:
    say("wangjian", "张伟36.5 王芳36.7 都好")
    reply = say("wangjian", "其他都正常", at="2026-03-02T08:50").output
    assert records(loaded_db)["张建军"] == ("normal", None, "")
    assert "本时段已全部上报" in reply


@pytest.mark.parametrize("text", ["36.5", "体温正常", "37.8 咳嗽"])
def test_a_report_with_no_name_is_asked_back_from_a_member_with_several(
    say: Say, loaded_db: sqlite_utils.Database, text: str
) -> None:
    reply = say("wangjian", text).output
    assert "没写是谁" in reply and "张伟、王芳、张建军" in reply
    assert loaded_db["contacts"].count == 0
