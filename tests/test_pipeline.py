"""The message pipeline, as conversations: what a member types, what is stored, who is told."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.context import Context
from handlers.pipeline import (
    ERROR_REPLY,
    UNBOUND_REPLY,
    Handled,
    Incoming,
    handle_message,
    rehandle,
)
from tests.conftest import TZ

MORNING = dt.datetime(2026, 3, 2, 8, 40, tzinfo=TZ)

Chat = Callable[..., Handled]


@pytest.fixture
def chat(loaded_db: sqlite_utils.Database, config: Config) -> Chat:
    """chat("lianghong", "张三 36.5") sends one message through the pipeline."""
    ctx = Context(db=loaded_db, config=config)

    def send(sender: str, text: str, at: dt.datetime = MORNING, **fields: object) -> Handled:
        message = Incoming(
            channel="console", sender=sender, text=text, at=at, received_at=at, **fields
        )  # type: ignore[arg-type]
        return handle_message(ctx, message)

    return send


def current(db: sqlite_utils.Database, name: str, slot: str = "morning") -> dict | None:
    return next(
        db.query(
            """SELECT c.* FROM contacts c JOIN subjects s ON s.id = c.subject_id
               WHERE s.name = ? AND c.slot = ? AND c.current = 1""",
            [name, slot],
        ),
        None,
    )


def alerts(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    return [
        (row["kind"], row["person"])
        for row in db.query("SELECT kind, person FROM outbox WHERE kind LIKE '%alert' ORDER BY id")
    ]


def test_report_is_recorded_and_confirmed(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    handled = chat("lianghong", "张三 36.5 正常，李四 36.8")
    assert handled.outcome == "ok"
    assert "已记录（3月2日早）" in handled.reply
    assert "张三 36.5℃ 正常" in handled.reply
    assert "本时段还差：王五、罗娟、林峰、朱丽" in handled.reply
    assert current(loaded_db, "张三")["temperature"] == 36.5
    assert current(loaded_db, "李四")["status"] == "normal"


def test_every_message_is_stored_raw_with_its_outcome(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "张三 36.5")
    chat("lianghong", "赵六 36.5")
    chat("stranger", "你好")
    rows = list(loaded_db.query("SELECT sender, text, outcome, reply FROM inbox ORDER BY id"))
    assert [(r["sender"], r["text"], r["outcome"]) for r in rows] == [
        ("lianghong", "张三 36.5", "ok"),
        ("lianghong", "赵六 36.5", "problem"),
        ("stranger", "你好", "unbound"),
    ]
    assert all(r["reply"] for r in rows)


def test_replies_are_in_the_outbox(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    handled = chat("lianghong", "张三 36.5")
    row = next(loaded_db.query("SELECT * FROM outbox WHERE kind = 'reply'"))
    assert (row["person"], row["recipient"], row["text"]) == ("梁红", "lianghong", handled.reply)


def test_unbound_sender_learns_only_how_to_bind(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    handled = chat("stranger", "张三 36.5")
    assert handled.reply == UNBOUND_REPLY
    assert "绑定" in handled.reply and "张三" not in handled.reply
    assert loaded_db["contacts"].count == 0


def test_binding_with_an_invite_code(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    from storage.invites import create_invite

    person = next(loaded_db.query("SELECT id FROM people WHERE name = '梁红'"))
    code = create_invite(loaded_db, person["id"], MORNING)
    assert "不正确" in chat("openid-x", "绑定 000000" if code != "000000" else "绑定 111111").reply
    assert "绑定成功" in chat("openid-x", f"绑定 {code}").reply
    assert "已记录" in chat("openid-x", "张三 36.5").reply
    assert "不正确或已使用" in chat("openid-y", f"绑定 {code}").reply


def test_binding_guesses_are_rate_limited(chat: Chat) -> None:
    replies = [chat("guesser", f"绑定 {n:06d}").reply for n in range(6)]
    assert "次数过多" in replies[-1]


def test_a_later_report_replaces_the_current_one_and_keeps_history(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "张三 36.5")
    handled = chat("lianghong", "更正 张三 36.4")
    assert "已更正" in handled.reply
    assert current(loaded_db, "张三")["temperature"] == 36.4
    history = list(loaded_db.query("SELECT temperature, current FROM contacts ORDER BY id"))
    assert history == [{"temperature": 36.5, "current": 0}, {"temperature": 36.4, "current": 1}]


def test_fever_alerts_secretary_and_medic_once(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    handled = chat("lianghong", "王五 37.6 咳嗽 乏力")
    assert "⚠ 王五 37.6℃ 发热、咳嗽、乏力" in handled.reply
    assert alerts(loaded_db) == [("abnormal_alert", "陈志刚"), ("abnormal_alert", "黄永红")]
    text = next(loaded_db.query("SELECT text FROM outbox WHERE kind = 'abnormal_alert'"))["text"]
    assert "王五" in text and "37.6" in text and "梁红" in text
    chat("lianghong", "更正 王五 37.8 咳嗽")  # the same state again: nobody is nagged twice
    assert len(alerts(loaded_db)) == 2


def test_unreachable_alerts_secretary_then_monitors_on_the_second_slot(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "罗娟未联系上")
    assert alerts(loaded_db) == [("unreachable_alert", "陈志刚")]
    chat("lianghong", "罗娟 电话不通", at=MORNING.replace(hour=12, minute=20))
    assert alerts(loaded_db)[1:] == [("unreachable_alert", "陈志刚"), ("unreachable_alert", "刘敏")]
    last = list(loaded_db.query("SELECT text FROM outbox WHERE kind = 'unreachable_alert'"))[-1]
    assert "连续两个时段" in last["text"]


def unreachable_alerts(db: sqlite_utils.Database, since: int = 0) -> list[tuple[str, str]]:
    return [
        (row["person"], row["text"])
        for row in db.query(
            "SELECT person, text FROM outbox WHERE kind = 'unreachable_alert' AND id > ?"
            " ORDER BY id",
            [since],
        )
    ]


ONE_ALERT_EACH = [
    # earlier messages (text, hour), the message, {recipient: (subjects listed, visit asked)}
    ([], "张三未联系上，李四联系不上，王五 36.5", {"陈志刚": (["张三", "李四"], False)}),
    ([], "张三、李四、罗娟都联系不上", {"陈志刚": (["张三", "李四", "罗娟"], False)}),
    ([], "早：张三未联系上\n中：李四未联系上", {"陈志刚": (["张三", "李四"], False)}),
    (
        [("罗娟未联系上", 8)],  # the morning: 罗娟 is unreachable two slots running at noon
        "罗娟 电话不通，张三 关机",
        {"陈志刚": (["罗娟", "张三"], True), "刘敏": (["罗娟"], True)},
    ),
]


@pytest.mark.parametrize(
    ("before", "text", "told"),
    ONE_ALERT_EACH,
    ids=["two-of-three", "three-together", "two-slots", "twice-for-monitors"],
)
def test_unreachable_subjects_of_one_message_make_one_alert_per_recipient(
    chat: Chat,
    loaded_db: sqlite_utils.Database,
    before: list[tuple[str, int]],
    text: str,
    told: dict[str, tuple[list[str], bool]],
) -> None:
    for earlier, hour in before:
        chat("lianghong", earlier, at=MORNING.replace(hour=hour))
    since = loaded_db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    handled = chat("lianghong", text, at=MORNING.replace(hour=12, minute=20))
    sent = unreachable_alerts(loaded_db, since)
    assert [person for person, _ in sent] == list(told)  # one each
    for person, message in sent:
        names, visit = told[person]
        assert all(name in message for name in names)
        assert ("上门核实" in message) == visit
        if len(names) > 1:
            assert message.startswith(f"⚠ 联系不上：{len(names)}人未联系上，网格员梁红 12:20上报：")
            assert message.count("\n· ") == len(names)
    assert "已通知陈志刚" in handled.reply


def test_absent_alerts_secretary_and_monitors(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    chat("lianghong", "老王 不在家")
    assert alerts(loaded_db) == [("absent_alert", "陈志刚"), ("absent_alert", "刘敏")]
    assert current(loaded_db, "王五")["status"] == "absent"


def test_bulk_covers_the_rest_but_never_overwrites_a_report(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "王五 37.6 咳嗽")
    handled = chat("lianghong", "都正常，张三 37.4")
    assert current(loaded_db, "王五")["status"] == "abnormal"
    assert current(loaded_db, "张三")["status"] == "abnormal"
    assert current(loaded_db, "李四")["status"] == "normal"
    assert "本时段已全部上报" in handled.reply


def test_cover_report_for_a_subject_of_the_same_village(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    handled = chat("lianghong", "高远 36.6")  # 高远 is 韩冰's subject, same village
    assert "非您负责，已代报" in handled.reply
    row = current(loaded_db, "高远")
    assert row["note"].endswith("多对一代报")
    member = next(loaded_db.query("SELECT name FROM people WHERE id = ?", [row["member_id"]]))
    assert member["name"] == "梁红"


def test_slot_marker_and_small_hours(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    chat("lianghong", "早：张三36.5李四36.7", at=MORNING.replace(hour=12))
    assert current(loaded_db, "张三", "morning") is not None
    chat("lianghong", "李四 36.6", at=dt.datetime(2026, 3, 3, 0, 30, tzinfo=TZ))
    row = current(loaded_db, "李四", "evening")
    assert (row["date"], row["reported_at"]) == ("2026-03-02", "2026-03-03T00:30:00+08:00")


def test_problems_get_precise_questions(chat: Chat) -> None:
    reply = chat("lianghong", "赵六 36.5").reply
    assert "不在您的名单中" in reply and "您负责：张三、李四、王五、罗娟、林峰、朱丽" in reply
    assert "体温没法确认" in chat("lianghong", "张三 45.1").reply
    assert "后面没写情况" in chat("lianghong", "张三").reply


def test_undo_restores_the_report_it_replaced(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    chat("lianghong", "张三 36.5")
    chat("lianghong", "张三 37.5")
    reply = chat("lianghong", "撤销").reply
    assert "已撤销" in reply and "张三" in reply
    assert current(loaded_db, "张三")["temperature"] == 36.5
    chat("lianghong", "撤销")
    assert current(loaded_db, "张三") is None
    assert "没有可撤销" in chat("lianghong", "撤销").reply


@pytest.mark.parametrize(
    ("between", "undone"),
    [
        (None, True),  # the report is the last message: undone
        ("好的", True),  # an acknowledgement between changes nothing
        ("需求 罗娟 家里没米了", False),  # the last message was a need: nothing is undone
        ("名单", False),
    ],
)
def test_undo_undoes_the_last_message_only(
    chat: Chat, loaded_db: sqlite_utils.Database, between: str | None, undone: bool
) -> None:
    chat("lianghong", "李四 38.2 咳嗽")
    if between:
        chat("lianghong", between, at=MORNING + dt.timedelta(minutes=5))
    reply = chat("lianghong", "撤销", at=MORNING + dt.timedelta(minutes=6)).reply
    assert (current(loaded_db, "李四") is None) == undone
    if not undone:
        assert "不是上报" in reply and "更正" in reply and corrections(loaded_db) == []


def test_undo_never_reaches_past_a_report_someone_else_replaced(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """梁红 reported 李四; 韩冰's cover report replaced it; her 撤销 says so and leaves her
    earlier 张三 alone."""
    chat("lianghong", "张三 36.5", at=MORNING - dt.timedelta(minutes=20))
    chat("lianghong", "李四 36.6", at=MORNING - dt.timedelta(minutes=10))
    chat("hanbing", "李四 36.9", at=MORNING - dt.timedelta(minutes=5))
    reply = chat("lianghong", "撤销").reply
    assert "已被韩冰的上报取代" in reply
    assert current(loaded_db, "张三")["temperature"] == 36.5
    assert current(loaded_db, "李四")["temperature"] == 36.9


def test_a_report_whose_alert_was_handled_is_not_undone(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "李四 38.2 咳嗽")
    [number] = [row[0] for row in loaded_db.execute("SELECT id FROM alerts")]
    chat("chenzhigang", f"已处置 {number} 已送医", at=MORNING + dt.timedelta(minutes=5))
    reply = chat("lianghong", "撤销", at=MORNING + dt.timedelta(minutes=6)).reply
    assert "已由陈志刚处置" in reply and "不能撤销" in reply
    assert current(loaded_db, "李四")["temperature"] == 38.2


def test_retry_with_the_same_key_is_recorded_once(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    first = chat("lianghong", "张三 36.5", dedup_key="console:msg:1")
    again = chat("lianghong", "张三 36.5", dedup_key="console:msg:1")
    assert again.duplicate and again.reply == first.reply
    assert loaded_db["contacts"].count == 1
    assert loaded_db["inbox"].count == 1


def test_non_text_messages_are_stored_and_answered(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    assert "只能处理文字和语音" in chat("lianghong", "", type="image").reply
    assert "没有识别出语音" in chat("lianghong", "", type="voice").reply
    assert "已记录" in chat("lianghong", "张三三十六度五没什么不舒服", type="voice").reply
    assert loaded_db["inbox"].count == 3


def break_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a report fails (until monkeypatch.undo())."""
    import handlers.pipeline

    def broken(turn: object, plan: object) -> tuple[str, str]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handlers.pipeline, "apply_reports", broken)


def test_a_failure_keeps_the_raw_message(
    chat: Chat, loaded_db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_handling(monkeypatch)
    handled = chat("lianghong", "张三 36.5")
    assert handled.reply == ERROR_REPLY
    row = next(loaded_db.query("SELECT * FROM inbox"))
    assert (row["text"], row["outcome"], row["error"]) == (
        "张三 36.5",
        "error",
        "RuntimeError: disk on fire",
    )
    assert loaded_db["contacts"].count == 0


def test_a_failed_message_is_handled_again_once_mended(
    chat: Chat, loaded_db: sqlite_utils.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_handling(monkeypatch)
    failed = chat("lianghong", "张三 37.9 咳嗽")
    ctx = Context(db=loaded_db, config=config)
    again = rehandle(ctx, failed.inbox_id)
    assert again is not None and again.outcome == "error"  # still broken: nothing more sent
    assert [r["status"] for r in loaded_db.query("SELECT * FROM outbox")] == ["sent"]
    monkeypatch.undo()

    handled = rehandle(ctx, failed.inbox_id)
    assert handled is not None and handled.outcome == "ok" and handled.alerts
    assert "张三 37.9℃" in handled.reply and "已通知" in handled.reply
    assert current(loaded_db, "张三")["temperature"] == 37.9
    assert current(loaded_db, "张三")["reported_at"] == MORNING.isoformat()  # its own time
    row = next(loaded_db.query("SELECT * FROM inbox"))
    assert (row["outcome"], row["error"], row["reply"]) == ("ok", None, handled.reply)
    replies = list(loaded_db.query("SELECT text, status FROM outbox WHERE kind = 'reply'"))
    assert replies == [
        {"text": ERROR_REPLY, "status": "sent"},
        {"text": handled.reply, "status": "queued"},  # to go through the channel
    ]
    assert rehandle(ctx, failed.inbox_id) is None  # handled: never twice
    assert loaded_db["contacts"].count == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "🙂🙂🙂",
        "'; DROP TABLE contacts; --",
        "SELECT * FROM people WHERE 1=1",
        "a" * 10_000,
        "张三" * 5_000,
        "\x00\x01\x02",
        "<xml><b>hi</b></xml>",
    ],
    ids=[
        "empty",
        "spaces",
        "emoji",
        "sql-drop",
        "sql-select",
        "10k-latin",
        "10k-names",
        "control",
        "markup",
    ],
)
def test_garbage_gets_a_helpful_reply(
    chat: Chat, loaded_db: sqlite_utils.Database, text: str
) -> None:
    handled = chat("lianghong", text)
    assert handled.outcome in {"help", "problem"}
    assert "例如" in handled.reply
    assert loaded_db["contacts"].count == 0
    assert loaded_db["inbox"].count == 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_never_crashes(chat: Chat, text: str) -> None:
    handled = chat("lianghong", text)
    assert handled.outcome != "error"
    assert handled.reply


def test_bulk_with_everyone_reported_still_answers(chat: Chat) -> None:
    chat("lianghong", "全部正常")
    assert chat("lianghong", "全部正常").reply == "早间已全部上报，未作更改。"


def test_a_correction_with_nothing_to_correct_says_recorded(chat: Chat) -> None:
    reply = chat("lianghong", "更正 张三 36.4").reply
    assert reply.startswith("已记录（3月2日早）") and "已更正" not in reply


def test_lines_marked_for_different_slots_go_to_their_slots(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """早：… and 中：… in one message (a late morning report sent with the noon one)."""
    reply = chat(
        "lianghong",
        "早：张三36.5 李四 36.6\n中：张三36.8 李四 36.7",
        at=MORNING.replace(hour=12, minute=30),
    ).reply
    assert "已记录（3月2日早）" in reply and "已记录（3月2日中）" in reply
    assert current(loaded_db, "张三", "morning")["temperature"] == 36.5
    assert current(loaded_db, "张三", "noon")["temperature"] == 36.8
    assert current(loaded_db, "李四", "noon")["temperature"] == 36.7


def test_an_unmarked_line_before_a_marked_one_keeps_the_message_time(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "张三 36.9\n补报早上：李四 36.6", at=MORNING.replace(hour=12, minute=30))
    assert current(loaded_db, "张三", "noon")["temperature"] == 36.9
    assert current(loaded_db, "李四", "morning")["temperature"] == 36.6


def second_zhang_san(db: sqlite_utils.Database, member: str = "梁红") -> None:
    other = (
        db["subjects"]
        .insert(
            {
                "name": "张三",
                "category": "外地返回人员",
                "unit": "HX02",
                "address": "河西村4组9号",
                "start_date": "2026-03-01",
                "days": 14,
            }
        )
        .last_pk
    )
    person = next(db.query("SELECT id FROM people WHERE name = ?", [member]))["id"]
    db["assignments"].insert({"subject_id": other, "person_id": person, "position": 0})


def test_two_subjects_of_one_member_with_the_same_name_are_asked_back(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """A second 张三 (another grid) assigned to 梁红: a report for 张三 is not guessed."""
    second_zhang_san(loaded_db)
    handled = chat("lianghong", "张三 37.9，李四 36.5")
    assert handled.outcome == "problem"
    assert "同名" in handled.reply and "河西村4组9号" in handled.reply
    assert "系统无法区分" in handled.reply
    assert current(loaded_db, "李四")["temperature"] == 36.5
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 1


def test_a_cover_report_on_namesakes_shows_their_grids_not_their_addresses(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """吴秀兰 (grid HX02) covers for 梁红, whose two 张三 live at two addresses: she is asked
    which one by grid; the addresses stay with the member who has them in hand."""
    second_zhang_san(loaded_db)
    handled = chat("wuxiulan", "张三 36.5")
    assert handled.outcome == "problem" and "同名" in handled.reply
    assert "河西村4组9号" not in handled.reply and "组" not in handled.reply
    assert "张三（HX01）" in handled.reply and "张三（HX02）" in handled.reply


def test_namesakes_in_two_villages_are_asked_back_with_both_addresses(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    second_zhang_san(loaded_db)
    loaded_db.execute(
        "INSERT INTO units (code, name, level, parent) VALUES ('DX', '东溪村', 'village', 'CG')"
    )
    loaded_db.execute("UPDATE subjects SET unit = 'DX' WHERE address = '河西村4组9号'")
    first = next(
        loaded_db.query("SELECT address FROM subjects WHERE name = '张三' AND unit != 'DX'")
    )
    handled = chat("lianghong", "张三 36.5")
    assert handled.outcome == "problem" and "同名" in handled.reply
    assert (
        f"张三（{first['address']}）" in handled.reply and "张三（河西村4组9号）" in handled.reply
    )


def test_all_normal_covers_both_namesakes(chat: Chat, loaded_db: sqlite_utils.Database) -> None:
    second_zhang_san(loaded_db)
    handled = chat("lianghong", "全部正常")
    assert handled.outcome == "ok" and "本时段已全部上报" in handled.reply
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 7


def test_a_cover_report_for_a_name_two_village_subjects_share_is_asked_back(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    # a second 高远 in the village, 吴秀兰's; the first is 韩冰's; neither is 梁红's
    second_zhang_san(loaded_db, member="吴秀兰")
    loaded_db.execute("UPDATE subjects SET name = '高远' WHERE address = '河西村4组9号'")
    handled = chat("lianghong", "高远 37.9 咳嗽")
    assert handled.outcome == "problem" and "高远" in handled.reply
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 0
    assert alerts(loaded_db) == []


def test_an_unmarked_line_and_a_marker_of_the_same_slot_read_as_one_message(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "全部正常\n早：张三 37.8 咳嗽", at=MORNING.replace(minute=30))
    rows = list(
        loaded_db.query(
            "SELECT c.status FROM contacts c JOIN subjects s ON s.id = c.subject_id"
            " WHERE s.name = '张三'"
        )
    )
    assert rows == [{"status": "abnormal"}]  # never a normal report that was not sent


def test_a_report_sent_before_the_one_on_record_does_not_replace_it(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """Handled out of order (a late or re-handled message): the later report stays current,
    the earlier one is kept under it, and nobody is alerted about a state already past."""
    later = chat("lianghong", "张三 36.5", at=MORNING + dt.timedelta(minutes=10))
    earlier = chat("lianghong", "张三 37.9 咳嗽")
    assert earlier.outcome == "ok" and "以新的为准" in earlier.reply
    assert "已通知" not in earlier.reply and alerts(loaded_db) == []
    assert current(loaded_db, "张三")["temperature"] == 36.5
    kept = next(loaded_db.query("SELECT * FROM contacts WHERE inbox_id = ?", [earlier.inbox_id]))
    on_record = current(loaded_db, "张三")
    assert (kept["current"], kept["replaced_by"], on_record["inbox_id"]) == (
        0,
        on_record["id"],
        later.inbox_id,
    )


def test_a_failed_message_handled_again_after_a_newer_report_keeps_the_newer(
    chat: Chat, loaded_db: sqlite_utils.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_handling(monkeypatch)
    failed = chat("lianghong", "张三 37.9 咳嗽")
    monkeypatch.undo()
    chat("lianghong", "张三 36.5", at=MORNING + dt.timedelta(minutes=10))  # measured again
    handled = rehandle(Context(db=loaded_db, config=config), failed.inbox_id)
    assert handled is not None and handled.outcome == "ok" and not handled.alerts
    assert current(loaded_db, "张三")["temperature"] == 36.5
    assert alerts(loaded_db) == []


def corrections(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    return [
        (row["person"], row["text"])
        for row in db.query("SELECT person, text FROM outbox WHERE kind = 'correction' ORDER BY id")
    ]


def test_a_correction_voids_the_fever_alert_for_everyone_who_got_it(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    """DESIGN §2: 张三 37.8 alerted the secretary and the medic; 更正 张三 36.4 tells both,
    once, what is on record now."""
    chat("lianghong", "张三 37.8")
    alerted = {person for kind, person in alerts(loaded_db)}
    reply = chat("lianghong", "更正 张三 36.4", at=MORNING + dt.timedelta(minutes=20)).reply
    told = corrections(loaded_db)
    assert {person for person, _ in told} == alerted == {"陈志刚", "黄永红"}
    assert all("张三" in text and "36.4℃ 正常" in text and "异常" in text for _, text in told)
    assert "发送更正" in reply
    chat("lianghong", "张三 36.5", at=MORNING + dt.timedelta(minutes=30))
    assert len(corrections(loaded_db)) == 2  # once: the alert was already corrected


@pytest.mark.parametrize(
    ("first", "then", "voided"),
    [
        ("张三 37.8", "张三 38.2", 0),  # still abnormal: the alert stands
        ("张三 36.5", "张三 36.6", 0),  # nothing was alerted
        ("王五 未联系上", "王五 36.5", 1),  # reached after all: the secretary hears it
        ("王五 不在家", "王五 36.5 在家", 2),  # back home: secretary and monitor
    ],
)
def test_only_a_report_that_removes_an_alerted_status_sends_corrections(
    chat: Chat, loaded_db: sqlite_utils.Database, first: str, then: str, voided: int
) -> None:
    chat("lianghong", first)
    chat("lianghong", then, at=MORNING + dt.timedelta(minutes=10))
    assert len(corrections(loaded_db)) == voided


@pytest.mark.parametrize(
    ("first", "correction", "on_record", "voided_word"),
    [
        # the reading was mistyped; the cough is still there and the medic hears the fever went
        ("张三 37.8 咳嗽", "更正 张三 36.4", ("abnormal", 36.4, "咳嗽"), "发热"),
        ("张三 37.8 咳嗽 乏力", "更正 张三 36.6度", ("abnormal", 36.6, "咳嗽、乏力"), "发热"),
        ("张三 36.5 咳嗽", "更正 张三 37.9", ("abnormal", 37.9, "发热、咳嗽"), None),
        # saying more than a reading replaces the whole report
        ("张三 37.8 咳嗽", "更正 张三 36.4 正常", ("normal", 36.4, ""), "异常"),
        ("张三 37.8 咳嗽", "更正 张三 36.4 无症状", ("normal", 36.4, ""), "异常"),
        ("张三 37.8 咳嗽", "更正 张三 36.4 乏力", ("abnormal", 36.4, "乏力"), "发热"),
        # a fever alone corrected to a normal reading is normal
        ("张三 37.8", "更正 张三 36.4", ("normal", 36.4, ""), "异常"),
        # not a correction: a later report says what is true now
        ("张三 37.8 咳嗽", "张三 36.4", ("normal", 36.4, ""), "异常"),
    ],
)
def test_a_correction_of_the_reading_alone_keeps_the_symptoms(
    chat: Chat,
    loaded_db: sqlite_utils.Database,
    first: str,
    correction: str,
    on_record: tuple,
    voided_word: str | None,
) -> None:
    chat("lianghong", first)
    chat("lianghong", correction, at=MORNING + dt.timedelta(minutes=10))
    row = current(loaded_db, "张三")
    assert row is not None
    assert (row["status"], row["temperature"], row["symptoms"]) == on_record
    told = corrections(loaded_db)
    if voided_word is None:
        assert told == []
    else:
        assert {person for person, _ in told} == {"陈志刚", "黄永红"}
        assert all(f"此前通知的“{voided_word}”" in text for _, text in told)


def test_undo_of_an_alerting_report_sends_corrections(
    chat: Chat, loaded_db: sqlite_utils.Database
) -> None:
    chat("lianghong", "王五 未联系上")
    reply = chat("lianghong", "撤销", at=MORNING + dt.timedelta(minutes=5)).reply
    [(person, text)] = corrections(loaded_db)
    assert person == "陈志刚" and "王五 暂无上报（已撤销）" in text and "联系不上" in text
    assert "发送更正" in reply
