"""Scheduled messages as WeChat shows them: Official Account templates of three short fields
and WeCom textcards, each opening the signed page with the whole message (DESIGN §5, §8).

The schedule runs against the local fake WeChat API; every link is opened over real HTTP
against the Flask app serving the same database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug.serving import make_server

from bot.channels import cards, deliver_pending
from bot.channels.api import ApiClient
from bot.channels.cards import Card, card_for, one_line, template_body, textcard
from bot.channels.work import PER_MEMBER_PER_HOUR, WorkChannel
from bot.config import Config, Template
from bot.web.sim import set_sim_now
from handlers.acks import read_button_key
from schedules.runner import run_due
from storage.db import transaction
from storage.outbox import queue_message
from tests.conftest import TZ
from tests.fake_wechat import MP, WORK, FakeWeChat, config_for, make_app

TEMPLATE = "/cgi-bin/message/template/send"
SEND = "/cgi-bin/message/send"
DAY = dt.date(2026, 3, 2)
TEMPLATES = {
    "prompt": Template("TPL_PROMPT"),
    "reminder": Template("TPL_PROMPT"),
    "missed_alert": Template("TPL_ALERT", "thing4", "time5", "thing6"),
    "digest": Template("TPL_DIGEST"),
}


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour, minute), tzinfo=TZ)


@pytest.fixture
def fake(httpserver: HTTPServer) -> FakeWeChat:
    return FakeWeChat(httpserver)


@pytest.fixture
def site(db_path: Path) -> Iterator[tuple[str, list]]:
    """A port for the app, served once a test has its config: (base, [set config])."""
    holder: list = []
    server = make_server("127.0.0.1", 0, lambda env, start: holder[0](env, start), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", holder
    server.shutdown()
    server.server_close()


def serve(site: tuple[str, list], db_path: Path, config: Config) -> None:
    site[1][:] = [make_app(db_path, config)]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def page_text(html: str) -> str:
    """The page's words, unescaped, without tags."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def check_fields(values: list[str]) -> None:
    for value in values:
        assert 0 < len(value) <= cards.FIELD_CHARS, value
        assert "\n" not in value and "\r" not in value, value


# -- the three fields ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_one_line_fits_any_text(text: str) -> None:
    line = one_line(text)
    assert len(line) <= cards.FIELD_CHARS
    assert not re.search(r"\s{2,}|[\n\r\t\v\f\x1c-\x1f\x85\u2028\u2029]", line)
    assert line == line.strip()


@settings(max_examples=100, deadline=None)
@given(
    title=st.text(min_size=0, max_size=80),
    summary=st.text(min_size=0, max_size=200),
    text=st.text(min_size=1, max_size=500),
    kind=st.sampled_from(sorted(cards.KIND_TITLES)),
)
def test_every_field_fits_whatever_the_job_said(
    title: str, summary: str, text: str, kind: str
) -> None:
    row = {
        "id": 7,
        "kind": kind,
        "text": text,
        "at": at(8).isoformat(),
        "recipient": "o1",
        "person_id": None,
        "card": None,
    }
    if title or summary:
        row["card"] = json.dumps({"title": title, "summary": summary}, ensure_ascii=False)
    card = card_for(None, Config(), row, at(8))  # type: ignore[arg-type]
    check_fields([card.title, card.time, card.summary])
    body = template_body(row, Template("T"), card)
    check_fields([field["value"] for field in body["data"].values()])


def test_long_names_and_many_subjects_still_fit(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat
) -> None:
    """A village with a long name and a member with 120 subjects: every field ≤ 20."""
    with transaction(loaded_db):
        loaded_db.execute("UPDATE units SET name = ? WHERE code = 'HX'", ["河西街道第二社区" * 4])
        person = loaded_db.execute("SELECT id FROM people WHERE name = '梁红'").fetchone()[0]
        for n in range(120):
            subject = loaded_db.execute(
                "INSERT INTO subjects (name, category, unit, start_date, days)"
                " VALUES (?, '外地返回人员', 'HX01', '2026-03-01', 14)",
                [f"欧阳长名字{n:03d}"],
            ).lastrowid
            loaded_db.execute(
                "INSERT INTO assignments (subject_id, person_id) VALUES (?, ?)", [subject, person]
            )
    config = config_for(MP, fake.base, templates=TEMPLATES)
    for moment in (at(8), at(9, 30), at(10), at(10, 30)):
        run_due(loaded_db, config, moment)
    sent = fake.sent(TEMPLATE)
    assert {body["template_id"] for body in sent} == {"TPL_PROMPT", "TPL_ALERT", "TPL_DIGEST"}
    for body in sent:
        check_fields([field["value"] for field in body["data"].values()])
    digest = next(
        b for b in sent if b["template_id"] == "TPL_DIGEST" and b["touser"] == "chenzhigang"
    )
    assert digest["data"]["thing1"]["value"].endswith("…")  # the village's long name, cut


# -- mp: templates that open the whole message ------------------------------------------------


def test_mp_prompt_and_digest_are_templates_opening_the_whole_text(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat, db_path: Path, site: tuple[str, list]
) -> None:
    base = site[0]
    config = dataclasses.replace(
        config_for(MP, fake.base, templates=TEMPLATES), public_url=base, public_url_set=True
    )
    serve(site, db_path, config)
    run_due(loaded_db, config, at(8))
    prompts = fake.sent(TEMPLATE)
    assert len(prompts) == 6  # six members with subjects
    lianghong = next(b for b in prompts if b["touser"] == "lianghong")
    assert lianghong["template_id"] == "TPL_PROMPT"
    assert lianghong["data"] == {
        "thing1": {"value": "早间联系提醒"},
        "time2": {"value": "3月2日 08:00"},
        "thing3": {"value": f"{count_subjects(loaded_db, '梁红')}人待联系"},
    }
    assert "first" not in lianghong["data"] and "remark" not in lianghong["data"]
    assert lianghong["url"].startswith(f"{base}/me/")
    # the page, opened while the link is fresh, shows the prompt whole
    set_sim_now(loaded_db, config, at(8, 5))
    loaded_db.conn.commit()
    status, html = fetch(lianghong["url"])
    assert status == 200
    prompt = loaded_db.execute(
        "SELECT text FROM outbox WHERE kind = 'prompt' AND recipient = 'lianghong'"
    ).fetchone()[0]
    words = page_text(html)
    for line in prompt.splitlines():
        if not line.startswith("逐人填报："):
            assert line in words
    assert "张三" in words and "正常" in words  # the subjects and the tap form

    run_due(loaded_db, config, at(10, 30))
    digests = [
        b
        for b in fake.sent(TEMPLATE)
        if b["template_id"] == "TPL_DIGEST" and b["touser"] == "chenzhigang"
    ]
    assert len(digests) == 1
    fields = digests[0]["data"]
    assert fields["thing1"] == {"value": "河西村上午汇总"}
    assert fields["time2"] == {"value": "3月2日 10:30"}
    assert re.fullmatch(r"异常\d+人( 联系不上\d+人)? 未报\d+人", fields["thing3"]["value"])
    assert digests[0]["url"].startswith(f"{base}/view/")
    set_sim_now(loaded_db, config, at(10, 35))
    loaded_db.conn.commit()
    status, html = fetch(digests[0]["url"])
    assert status == 200
    digest = loaded_db.execute(
        "SELECT text FROM outbox WHERE kind = 'digest' AND recipient = 'chenzhigang'"
    ).fetchone()[0]
    words = page_text(html)
    assert "消息全文" in words
    for line in digest.splitlines():
        assert line in words


def count_subjects(db: sqlite_utils.Database, member: str) -> int:
    return db.execute(
        "SELECT count(*) FROM assignments a JOIN people p ON p.id = a.person_id WHERE p.name = ?",
        [member],
    ).fetchone()[0]


def test_a_kind_without_a_template_stays_customer_service(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat
) -> None:
    from bot.channels.mp import record_inbound

    record_inbound(loaded_db, "lianghong", at(7))
    config = config_for(MP, fake.base, templates={"digest": "TPL_DIGEST"})
    run_due(loaded_db, config, at(8))
    assert fake.sent(TEMPLATE) == []
    [custom] = [b for b in fake.sent("/cgi-bin/message/custom/send") if b["touser"] == "lianghong"]
    assert custom["text"]["content"].startswith("【早间联系】")


def test_prompts_carry_the_member_page_link_only_when_a_public_url_is_set(
    loaded_db: sqlite_utils.Database,
) -> None:
    run_due(loaded_db, Config(), at(8))
    texts = [r[0] for r in loaded_db.execute("SELECT text FROM outbox WHERE kind = 'prompt'")]
    assert texts and not any("逐人填报" in t for t in texts)
    config = Config(public_url="https://gw.example.cn", public_url_set=True)
    run_due(loaded_db, config, at(9, 30))
    rows = list(loaded_db.query("SELECT id, text FROM outbox WHERE kind = 'reminder'"))
    assert rows
    for row in rows:
        last = row["text"].splitlines()[-1]
        assert last.startswith("逐人填报：https://gw.example.cn/me/")


# -- WeCom: textcards, the hour's limit, duplicate checks -------------------------------------


def work_channel(fake: FakeWeChat, **more: object) -> tuple[Config, WorkChannel]:
    config = dataclasses.replace(config_for(WORK, fake.base), **more)
    return config, WorkChannel(config, ApiClient(config.channel, sleep=lambda _s: None))


def test_work_digest_is_a_textcard_with_its_link(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat, db_path: Path, site: tuple[str, list]
) -> None:
    base = site[0]
    config, _channel = work_channel(fake, public_url=base, public_url_set=True)
    serve(site, db_path, config)
    run_due(loaded_db, config, at(8))
    run_due(loaded_db, config, at(10, 30))
    calls = fake.sent(SEND)
    prompts = [c for c in calls if c["msgtype"] == "text" and "早间联系" in c["text"]["content"]]
    assert prompts and all("逐人填报：" in c["text"]["content"] for c in prompts)
    [card] = [c for c in calls if c["msgtype"] == "textcard" and c["touser"] == "chenzhigang"]
    body = card["textcard"]
    assert body["title"] == "河西村上午汇总" and body["btntxt"] == "详情"
    assert len(body["title"].encode()) <= cards.CARD_TITLE_BYTES
    assert len(body["description"].encode()) <= cards.CARD_DESCRIPTION_BYTES
    assert "3月2日 10:30" in body["description"]
    assert body["url"].startswith(f"{base}/view/")
    set_sim_now(loaded_db, config, at(10, 40))
    loaded_db.conn.commit()
    status, html = fetch(body["url"])
    assert status == 200
    digest = loaded_db.execute(
        "SELECT text FROM outbox WHERE kind = 'digest' AND recipient = 'chenzhigang'"
    ).fetchone()[0]
    words = page_text(html)
    assert all(line in words for line in digest.splitlines())


@settings(max_examples=100, deadline=None)
@given(title=st.text(max_size=200), time=st.text(max_size=60), summary=st.text(max_size=400))
def test_every_textcard_is_well_formed(title: str, time: str, summary: str) -> None:
    body = textcard(Card(title, time, summary, "https://gw.example.cn/view/x"))
    assert len(body["title"].encode()) <= cards.CARD_TITLE_BYTES
    assert len(body["description"].encode()) <= cards.CARD_DESCRIPTION_BYTES
    assert body["url"] == "https://gw.example.cn/view/x" and body["btntxt"] == "详情"


def check_template_card(body: dict) -> None:
    """A button_interaction template_card as WeCom documents it (发送应用消息 → 模板卡片消息):
    its required keys, the task_id's characters and length, the buttons' count, text and keys,
    the titles' lengths, a card_action that opens a url."""
    assert body["card_type"] == "button_interaction"
    assert re.fullmatch(r"[A-Za-z0-9_\-@]{1,128}", body["task_id"])
    assert len(body["task_id"].encode()) <= cards.TASK_ID_BYTES
    title = body["main_title"]
    assert set(title) <= {"title", "desc"} and title["title"]
    assert len(title["title"]) <= cards.MAIN_TITLE_CHARS
    assert len(title.get("desc", "")) <= cards.MAIN_DESC_CHARS
    assert len(body.get("sub_title_text", "")) <= cards.SUB_TITLE_CHARS
    buttons = body["button_list"]
    assert 1 <= len(buttons) <= cards.BUTTONS_MAX
    keys = [b["key"] for b in buttons]
    assert len(set(keys)) == len(keys)  # 不可重复
    for button in buttons:
        assert button["type"] == 0 and 1 <= button["style"] <= 4
        assert 1 <= len(button["text"]) <= cards.BUTTON_TEXT_CHARS
        assert 1 <= len(button["key"].encode()) <= cards.BUTTON_KEY_BYTES
        assert read_button_key(button["key"]) is not None
    if "card_action" in body:
        assert body["card_action"]["type"] == 1 and body["card_action"]["url"].startswith("http")
    for text in (title["title"], title.get("desc", ""), body.get("sub_title_text", "")):
        assert "\n" not in text


def test_a_fever_alert_is_a_template_card_with_buttons_and_its_page(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat, say: object
) -> None:
    config, channel = work_channel(fake)
    say("lianghong", "张三 38.5 咳嗽", at=at(8, 40))  # type: ignore[operator]
    number = loaded_db.execute("SELECT id FROM alerts").fetchone()[0]
    deliver_pending(loaded_db, channel, at(8, 41))
    sent = [c for c in fake.sent(SEND) if c["msgtype"] == "template_card"]
    rows = loaded_db.execute(
        "SELECT id, recipient, status FROM outbox WHERE kind = 'abnormal_alert' ORDER BY id"
    ).fetchall()
    assert len(sent) == len(rows) >= 2 and {r[2] for r in rows} == {"sent"}
    assert [c["touser"] for c in sent] == [r[1] for r in rows]  # one call a row
    for call in sent:
        body = call["template_card"]
        check_template_card(body)
        assert body["main_title"]["title"] == "异常预警"
        assert f"编号 {number}" in body["main_title"]["desc"]
        assert body["sub_title_text"] == "张三 38.5℃ 发热、咳嗽"
        assert "/view/" in body["card_action"]["url"]
        assert [(b["text"], b["key"]) for b in body["button_list"]] == [
            ("收到", f"ack:received:{number}"),
            ("已处置", f"ack:handled:{number}"),
        ]
        assert "enable_duplicate_check" not in call
    task_ids = [c["template_card"]["task_id"] for c in sent]
    assert len(set(task_ids)) == len(task_ids)  # unique per outbox row
    assert all(
        t.startswith(f"gw-alert{number}-row{r[0]}-") for t, r in zip(task_ids, rows, strict=True)
    )


def test_grouped_unreachable_alerts_stay_text_and_a_single_one_has_buttons(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat, say: object
) -> None:
    config, channel = work_channel(fake)
    say("lianghong", "张三 联系不上，李四 联系不上", at=at(8, 40))  # type: ignore[operator]
    say("lianghong", "王五 联系不上", at=at(8, 42))  # type: ignore[operator]
    deliver_pending(loaded_db, channel, at(8, 43))
    kinds = [c["msgtype"] for c in fake.sent(SEND)]
    assert "text" in kinds and "template_card" in kinds
    for call in fake.sent(SEND):
        if call["msgtype"] == "template_card":
            check_template_card(call["template_card"])
            assert call["template_card"]["main_title"]["title"] == "联系不上预警"
        else:
            assert "方括号内为提醒编号" in call["text"]["content"]


@settings(max_examples=100, deadline=None)
@given(
    title=st.text(max_size=200),
    time=st.text(max_size=60),
    summary=st.text(max_size=400),
    number=st.integers(min_value=1, max_value=999_999_999),
    row=st.integers(min_value=1, max_value=10**12),
)
def test_every_template_card_is_well_formed(
    title: str, time: str, summary: str, number: int, row: int
) -> None:
    task = cards.task_id_for({"id": row, "at": "2026-03-02T08:40:00+08:00"}, number)
    body = cards.button_card(
        Card(title or "异常预警", time, summary, "https://gw.example.cn/v/x"), number, task
    )
    check_template_card(body)
    assert body["task_id"] == task


def test_duplicate_check_on_scheduled_sends_only(
    loaded_db: sqlite_utils.Database, fake: FakeWeChat
) -> None:
    config, channel = work_channel(fake)
    run_due(loaded_db, config, at(8))
    queue_message(
        loaded_db, at=at(8, 1), person={"wechat_id": "lianghong"}, kind="reply", text="好的"
    )
    deliver_pending(loaded_db, channel, at(8, 2))
    calls = fake.sent(SEND)
    scheduled = [c for c in calls if "早间联系" in c["text"]["content"]]
    other = [c for c in calls if c["text"]["content"] == "好的"]
    assert scheduled and other
    assert all(
        c["enable_duplicate_check"] == 1 and c["duplicate_check_interval"] == 1800
        for c in scheduled
    )
    assert all(
        "enable_duplicate_check" not in c and "duplicate_check_interval" not in c for c in other
    )


def test_a_thousand_messages_an_hour_then_the_next_waits(
    db: sqlite_utils.Database, fake: FakeWeChat
) -> None:
    """25 messages a minute for 40 minutes reach WeCom; the 1,001st in the hour waits,
    queued, until the first of them is an hour old, and goes then."""
    _config, channel = work_channel(fake)
    start = at(8, 1)
    person = {"wechat_id": "lianghong", "name": "梁红"}
    for minute in range(40):
        moment = start + dt.timedelta(minutes=minute)
        for n in range(25):
            queue_message(
                db, at=moment, person=person, kind="reminder", text=f"第{minute}分第{n}条"
            )
        deliver_pending(db, channel, moment)
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_HOUR
    last = start + dt.timedelta(minutes=41)
    queue_message(db, at=last, person=person, kind="reminder", text="第1001条")
    deliver_pending(db, channel, last)
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_HOUR
    status, later = db.execute(
        "SELECT status, next_attempt_at FROM outbox WHERE text = '第1001条'"
    ).fetchone()
    assert status == "queued"
    assert dt.datetime.fromisoformat(later) == start + dt.timedelta(hours=1, seconds=1)
    deliver_pending(db, channel, start + dt.timedelta(minutes=59))  # not yet
    assert len(fake.sent(SEND)) == PER_MEMBER_PER_HOUR
    deliver_pending(db, channel, start + dt.timedelta(hours=1, seconds=1))
    assert fake.sent(SEND)[-1]["text"]["content"] == "第1001条"
    assert db.execute("SELECT count(*) FROM outbox WHERE status != 'sent'").fetchone()[0] == 0


# -- setup errors name the missing step -------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_", "errcode", "words"),
    [
        (WORK, 60020, "企业可信IP"),
        (WORK, 48001, "可见范围"),
        (MP, 48001, "认证服务号"),
        (MP, 40164, "IP白名单"),
    ],
    ids=["work-60020", "work-48001", "mp-48001", "mp-40164"],
)
def test_setup_errors_log_the_missing_step(
    db: sqlite_utils.Database,
    fake: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    settings_: object,
    errcode: int,
    words: str,
) -> None:
    from bot.channels import api

    monkeypatch.setattr(api, "_setup_logged", {})
    config = config_for(settings_, fake.base, templates={"prompt": "TPL"})  # type: ignore[arg-type]
    path = SEND if config.channel.kind == "work" else TEMPLATE
    fake.script(path, {"errcode": errcode, "errmsg": "refused"}, {"errcode": errcode})
    for n in range(2):
        queue_message(db, at=at(8), person={"wechat_id": f"u{n}"}, kind="prompt", text=f"x{n}")
    from bot.channels import channel_for

    with caplog.at_level("ERROR", logger="gridwatch.channel"):
        deliver_pending(db, channel_for(config), at(8))
    lines = [r.getMessage() for r in caplog.records if r.name == "gridwatch.channel"]
    assert len(lines) == 1  # once, not once a message
    assert str(errcode) in lines[0] and words in lines[0]
    assert db.execute("SELECT DISTINCT status FROM outbox").fetchall() == [("failed",)]
