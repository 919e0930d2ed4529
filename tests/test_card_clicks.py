"""WeCom's alert card end to end (DESIGN §5, §11): a fever's alert goes out as a template_card
with the buttons 收到 / 已处置; a click comes back as a template_card_event, encrypted with
wechatpy's real crypto, and is recorded as `已处置 N` typed in chat would be: once, whatever
WeChat retries or the member clicks again, and the alert then never escalates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from flask import Flask
from pytest_httpserver import HTTPServer

from bot.wechat.callback import CallbackRoute
from handlers.pipeline import UNBOUND_REPLY
from schedules.runner import run_due
from tests.conftest import TZ
from tests.fake_wechat import WORK, FakeWeChat, config_for, make_app
from tests.test_channel_cards import check_template_card
from tests.test_wechat_callback import CREATED, inner_xml, open_reply, wecom_request

SEND = "/cgi-bin/message/send"
MEMBER, SECRETARY, MEDIC, MONITOR = "lianghong", "chenzhigang", "huangyonghong", "liumin"


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeWeChat:
    return FakeWeChat(httpserver)


@pytest.fixture
def app(loaded_db: sqlite_utils.Database, db_path: Path, fake: FakeWeChat) -> Flask:
    return make_app(db_path, config_for(WORK, fake.base))


def post(app: Flask, xml: str) -> Any:
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert answer.status_code == 200, answer.get_data()
    app.extensions["gridwatch_wechat"].drain()  # what follows the reply (the API's sends)
    app.extensions.pop("gridwatch_wechat")  # drained pools take no more work: a fresh runner
    route = app.wsgi_app
    while not isinstance(route, CallbackRoute):
        route = route.wsgi_app  # type: ignore[attr-defined]
    route.runner = None
    return answer


def click_xml(sender: str, key: str, task_id: str, created: int) -> str:
    """A template_card_event as WeCom documents it (模板卡片事件推送)."""
    body = (
        "<Event><![CDATA[template_card_event]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
        "<CardType><![CDATA[button_interaction]]></CardType>"
        "<ResponseCode><![CDATA[RESPONSE_CODE_1]]></ResponseCode>"
        "<SelectedItems></SelectedItems>"
    )
    return inner_xml(sender, "event", body, None, created)


def fever(app: Flask, fake: FakeWeChat) -> tuple[int, dict[str, dict]]:
    """张三's fever, reported at 08:41: its alert number and each recipient's card."""
    xml = inner_xml(MEMBER, "text", "<Content>张三 38.6 发烧</Content>", 71, CREATED)
    answer = post(app, xml)
    assert "已记录" in open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")
    cards = {c["touser"]: c for c in fake.sent(SEND) if c["msgtype"] == "template_card"}
    assert set(cards) == {SECRETARY, MEDIC}
    for call in cards.values():
        check_template_card(call["template_card"])
        assert "/view/" in call["template_card"]["card_action"]["url"]
    number = int(cards[SECRETARY]["template_card"]["button_list"][1]["key"].split(":")[2])
    return number, {to: call["template_card"] for to, call in cards.items()}


def key_of(card: dict, text: str) -> str:
    return next(b["key"] for b in card["button_list"] if b["text"] == text)


def acks(db: sqlite_utils.Database) -> list[tuple]:
    return db.execute(
        "SELECT k.alert_id, p.wechat_id, k.action FROM alert_acks k"
        " JOIN people p ON p.id = k.person_id ORDER BY k.id"
    ).fetchall()


def replies_to(fake: FakeWeChat, who: str) -> list[str]:
    return [
        c["text"]["content"]
        for c in fake.sent(SEND)
        if c["msgtype"] == "text" and c["touser"] == who
    ]


def test_a_click_is_recorded_once_through_retries_and_a_second_click(
    app: Flask, fake: FakeWeChat, loaded_db: sqlite_utils.Database
) -> None:
    number, cards = fever(app, fake)
    card = cards[SECRETARY]
    xml = click_xml(SECRETARY, key_of(card, "已处置"), card["task_id"], CREATED + 60)
    for _ in range(3):  # WeChat's retries: the same event three times
        answer = post(app, xml)
        assert answer.status_code == 200
        root = open_reply(WORK, answer.get_data(as_text=True))
        assert root.findtext("MsgType") == "update_button"
        assert root.findtext("Button/ReplaceName") == "已处置·陈志刚"
        assert root.findtext("ToUserName") == SECRETARY
    assert acks(loaded_db) == [(number, SECRETARY, "handled")]
    events = loaded_db.execute(
        "SELECT type, text, outcome FROM inbox WHERE type = 'template_card_event'"
    ).fetchall()
    assert events == [("template_card_event", f"ack:handled:{number}", "command")]
    # the answer chat would give, once, through the API (a card event takes no passive text)
    [reply] = replies_to(fake, SECRETARY)
    assert f"已记录编号 {number}（张三）已处置" in reply
    # clicked again (another moment): the plain answer, nothing recorded twice
    answer = post(app, click_xml(SECRETARY, key_of(card, "已处置"), card["task_id"], CREATED + 90))
    root = open_reply(WORK, answer.get_data(as_text=True))
    assert root.findtext("Button/ReplaceName") == "已处置·陈志刚"
    assert acks(loaded_db) == [(number, SECRETARY, "handled")]
    assert "无需再回复" in replies_to(fake, SECRETARY)[-1]
    # the medic's 收到 on the handled alert: told it is handled, their card follows
    medic = cards[MEDIC]
    answer = post(app, click_xml(MEDIC, key_of(medic, "收到"), medic["task_id"], CREATED + 95))
    assert open_reply(WORK, answer.get_data(as_text=True)).findtext("Button/ReplaceName")
    assert acks(loaded_db) == [(number, SECRETARY, "handled")]
    assert "已由陈志刚" in replies_to(fake, MEDIC)[-1]
    statuses = loaded_db.execute(
        "SELECT DISTINCT status FROM outbox WHERE kind = 'reply' AND recipient != ?", [MEMBER]
    ).fetchall()
    assert statuses == [("sent",)]


def test_received_keeps_the_buttons_and_an_acknowledged_alert_never_escalates(
    app: Flask, fake: FakeWeChat, loaded_db: sqlite_utils.Database, config: Any
) -> None:
    number, cards = fever(app, fake)
    # a second fever, nobody clicks: it escalates, so the tick below is one that would
    xml = inner_xml(MEMBER, "text", "<Content>李四 38.9 发烧</Content>", 72, CREATED + 5)
    post(app, xml)
    card = cards[MEDIC]
    answer = post(app, click_xml(MEDIC, key_of(card, "收到"), card["task_id"], CREATED + 60))
    assert answer.get_data() == b"success"  # 已处置 stays to be clicked
    assert acks(loaded_db) == [(number, MEDIC, "received")]
    assert f"已确认收到编号 {number}" in replies_to(fake, MEDIC)[-1]
    raised = dt.datetime.fromtimestamp(CREATED, TZ)
    run_due(loaded_db, config, raised + dt.timedelta(minutes=config.escalate_after + 2))
    escalated = loaded_db.execute(
        "SELECT send_key, recipient FROM outbox WHERE kind = 'escalation'"
    ).fetchall()
    assert escalated and all(f"alert:{number}/" not in key for key, _ in escalated)
    assert {to for _, to in escalated} == {MONITOR}


@pytest.mark.parametrize(
    ("sender", "key", "expected"),
    [
        ("stranger", "ack:handled:{n}", UNBOUND_REPLY),  # learns only how to bind
        (MEMBER, "ack:handled:{n}", "“已处置”仅限"),  # a member may not acknowledge
        (SECRETARY, "ack:handled:9999", "没有编号为 9999 的提醒"),
        (SECRETARY, "something:else", "这个按钮已失效"),
    ],
)
def test_a_click_not_allowed_gets_the_plain_answer_and_records_nothing(
    app: Flask,
    fake: FakeWeChat,
    loaded_db: sqlite_utils.Database,
    sender: str,
    key: str,
    expected: str,
) -> None:
    number, cards = fever(app, fake)
    task = cards[SECRETARY]["task_id"]
    answer = post(app, click_xml(sender, key.format(n=number), task, CREATED + 60))
    assert answer.status_code == 200 and answer.get_data() == b"success"
    assert acks(loaded_db) == []
    [reply] = replies_to(fake, sender)
    assert reply.startswith(expected) if expected == UNBOUND_REPLY else expected in reply
    assert reply == UNBOUND_REPLY or sender != "stranger"
    (raw,) = loaded_db.execute(
        "SELECT raw FROM inbox WHERE type = 'template_card_event'"
    ).fetchone()
    assert "<TaskId>" in raw and "RESPONSE_CODE_1" in raw  # the whole event, kept raw


def test_an_escalation_on_work_is_a_card_its_monitor_can_click(
    app: Flask, fake: FakeWeChat, loaded_db: sqlite_utils.Database
) -> None:
    number, _cards = fever(app, fake)
    config = config_for(WORK, fake.base)
    raised = dt.datetime.fromtimestamp(CREATED, TZ)
    run_due(loaded_db, config, raised + dt.timedelta(minutes=config.escalate_after + 2))
    [call] = [
        c for c in fake.sent(SEND) if c["msgtype"] == "template_card" and c["touser"] == MONITOR
    ]
    card = call["template_card"]
    check_template_card(card)
    assert (
        card["main_title"]["title"] == "督办提醒" and f"编号 {number}" in card["main_title"]["desc"]
    )
    assert "张三" in card["sub_title_text"] and "/view/" in card["card_action"]["url"]
    answer = post(app, click_xml(MONITOR, key_of(card, "已处置"), card["task_id"], CREATED + 2000))
    root = open_reply(WORK, answer.get_data(as_text=True))
    assert root.findtext("Button/ReplaceName") == "已处置·刘敏"
    assert acks(loaded_db) == [(number, MONITOR, "handled")]
