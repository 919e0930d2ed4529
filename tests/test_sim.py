"""The chat simulator: the roster, chats through the real pipeline, the clock control."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from flask import Flask
from flask.testing import FlaskClient

from bot import create_app
from bot.config import ChannelSettings, Config
from bot.web.sim import job_label, set_sim_now, sim_now
from tests.conftest import NOW, TZ

LIANGHONG, CHEN = 4, 1  # ids in the demo roster: member 梁红, secretary 陈志刚


@pytest.fixture
def app(loaded_db: sqlite_utils.Database, db_path: Path, config: Config) -> Iterator[Flask]:
    set_sim_now(loaded_db, config, NOW - dt.timedelta(minutes=1))
    app = create_app({"GRIDWATCH": config, "DB_PATH": str(db_path), "SCHEDULER": False})
    yield app
    app.extensions["gridwatch_pool"].close_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def send(client: FlaskClient, person: int, text: str) -> dict:
    response = client.post("/sim/api/send", json={"person": person, "text": text})
    assert response.status_code == 200, response.json
    return response.json


def chat(client: FlaskClient, person: int) -> list[dict]:
    response = client.get(f"/sim/api/chat/{person}")
    assert response.status_code == 200
    return response.json["messages"]


def test_page_lists_the_roster_by_role_and_unit(client: FlaskClient) -> None:
    page = client.get("/sim/").get_data(as_text=True)
    order = [page.index(group) for group in ("书记 · 河西村", "督查员 · 城关镇", "网格员 · 河西村")]
    assert order == sorted(order)
    assert "梁红" in page and "sim.js" in page
    assert "13800000011" not in page


def test_sim_without_trailing_slash_is_the_page(client: FlaskClient) -> None:
    response = client.get("/sim")  # the address of DESIGN §8, not a redirect to /sim/
    assert response.status_code == 200
    assert 'data-api="/sim/api"' in response.get_data(as_text=True)


def test_people_api_masks_phones_and_groups(client: FlaskClient) -> None:
    groups = client.get("/sim/api/people").json["groups"]
    assert [(g["role"], g["unit"]) for g in groups] == [
        ("secretary", "HX"),
        ("monitor", "CG"),
        ("medic", "HX"),
        ("member", "HX01"),
        ("member", "HX02"),
    ]
    liang = groups[3]["people"][0]
    assert liang["name"] == "梁红" and liang["roles"] == ["网格员"]
    assert liang["phone"] == "138****0011"


def test_a_report_goes_through_the_pipeline_at_the_sim_time(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    answer = send(client, LIANGHONG, "张三 36.5 正常，李四 36.8")
    assert answer["outcome"] == "ok" and "已记录" in answer["reply"]
    contact = next(loaded_db.query("SELECT * FROM contacts"))
    assert contact["slot"] == "morning" and contact["date"] == "2026-03-02"
    assert contact["reported_at"].startswith("2026-03-02T07:5")
    inbox = next(loaded_db.query("SELECT * FROM inbox"))
    assert inbox["channel"] == "console" and inbox["sender"] == "lianghong"
    messages = chat(client, LIANGHONG)
    assert [m["from"] for m in messages] == ["person", "bot"]
    assert messages[0]["text"] == "张三 36.5 正常，李四 36.8"
    assert messages[1]["kind"] == "reply" and messages[1]["status"] == "sent"


def test_an_abnormal_report_reaches_the_secretary_chat(client: FlaskClient) -> None:
    send(client, LIANGHONG, "王五 37.8 咳嗽")
    alerts = [m for m in chat(client, CHEN) if m["kind"] == "abnormal_alert"]
    assert len(alerts) == 1 and "王五" in alerts[0]["text"]
    assert alerts[0]["kind_label"] == "异常预警" and alerts[0]["status"] == "sent"


def test_chat_offers_examples_with_real_names(client: FlaskClient) -> None:
    member = client.get(f"/sim/api/chat/{LIANGHONG}").json
    assert member["person"]["role"] == "member"
    assert member["suggestions"][0] == "张三 36.5 正常"
    secretary = client.get(f"/sim/api/chat/{CHEN}").json
    assert "汇总" in secretary["suggestions"] and "查 张三" in secretary["suggestions"]


def test_next_event_runs_the_morning_prompt(client: FlaskClient) -> None:
    clock = client.get("/sim/api/clock").json
    assert clock["next"] == {
        "job": "prompt:morning",
        "label": "早联系提醒",
        "at": "2026-03-02T08:00:00+08:00",
    }
    answer = client.post("/sim/api/clock", json={"to": "next"}).json
    assert [r["job"] for r in answer["ran"]] == ["prompt:morning"]
    assert answer["now"] == "2026-03-02T08:00:00+08:00"
    assert answer["next"]["job"] == "review"  # 3/2 is a Monday: the weekly pack at 09:00
    prompts = [m for m in chat(client, LIANGHONG) if m["kind"] == "prompt"]
    assert len(prompts) == 1 and "张三" in prompts[0]["text"]
    assert prompts[0]["at"] == "2026-03-02T08:00:00+08:00"


def test_a_chosen_time_runs_every_job_on_its_own_time(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    answer = client.post("/sim/api/clock", json={"to": "2026-03-02T10:30"}).json
    jobs = [(r["job"], r["outcome"]) for r in answer["ran"]]
    assert jobs == [
        ("release", "ran"),  # 00:05, caught up on the first run of the day
        ("prompt:morning", "ran"),
        ("review", "ran"),
        ("reminder:morning", "ran"),
        ("deadline:morning", "ran"),
        ("digest:1", "ran"),
    ]  # none skipped as late, though 10:30 is beyond the grace time of 08:00
    digests = [m for m in chat(client, CHEN) if m["kind"] == "digest"]
    assert len(digests) == 1 and "/view/" in digests[0]["text"]
    assert digests[0]["at"] == "2026-03-02T10:30:00+08:00"
    missed = loaded_db.execute("SELECT count(*) FROM outbox WHERE kind = 'missed_alert'")
    assert missed.fetchone()[0] == 1


def test_the_clock_is_shared_through_the_database(
    client: FlaskClient, loaded_db: sqlite_utils.Database, config: Config
) -> None:
    client.post("/sim/api/clock", json={"to": "2026-03-02T12:00"})
    assert abs(sim_now(loaded_db, config) - dt.datetime(2026, 3, 2, 12, 0, tzinfo=TZ)) < (
        dt.timedelta(seconds=5)
    )


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/sim/api/send", None, 400, "JSON 对象"),
        ("/sim/api/send", "{not json", 400, "JSON 对象"),
        ("/sim/api/send", [1, 2], 400, "JSON 对象"),
        ("/sim/api/send", {"person": "abc", "text": "x"}, 400, "应是数字"),
        ("/sim/api/send", {"person": True, "text": "x"}, 400, "编号"),
        ("/sim/api/send", {"person": [4], "text": "x"}, 400, "编号"),
        ("/sim/api/send", {"person": 999, "text": "x"}, 404, "999"),
        ("/sim/api/send", {"person": 4}, 400, "不能为空"),
        ("/sim/api/send", {"person": 4, "text": "  "}, 400, "不能为空"),
        ("/sim/api/send", {"person": 4, "text": 36.5}, 400, "不能为空"),
        ("/sim/api/send", {"person": 4, "text": "好" * 10_001}, 400, "太长"),
        ("/sim/api/clock", {"to": "tomorrow"}, 400, "时间格式不对"),
        ("/sim/api/clock", {"to": 1030}, 400, "next"),
        ("/sim/api/clock", {"to": "2026-03-01T10:30"}, 400, "只能向前"),
        ("/sim/api/clock", {"to": "2026-05-01T10:30"}, 400, "31 天"),
        ("/sim/api/clock", "[]", 400, "JSON 对象"),
    ],
)
def test_bad_requests_get_clear_answers(
    client: FlaskClient, path: str, body: object, status: int, message: str
) -> None:
    if isinstance(body, str):
        response = client.post(path, data=body, content_type="application/json")
    elif body is None:
        response = client.post(path)
    else:
        response = client.post(path, json=body)
    assert response.status_code == status
    assert message in response.json["error"]


@pytest.mark.parametrize("person, status", [("abc", 400), ("999", 404), ("-1", 404)])
def test_unknown_chats(client: FlaskClient, person: str, status: int) -> None:
    response = client.get(f"/sim/api/chat/{person}")
    assert response.status_code == status
    assert response.json["error"]


def test_unbound_person_gets_the_binding_hint(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    person = (
        loaded_db["people"]
        .insert({"name": "新人", "phone": "13800000099", "roles": "member", "unit": "HX01"})
        .last_pk
    )
    answer = send(client, person, "张三 36.5")
    assert answer["outcome"] == "unbound" and "绑定" in answer["reply"]
    messages = chat(client, person)
    assert [m["from"] for m in messages] == ["person", "bot"]


def test_sim_exists_only_on_the_console_channel(
    loaded_db: sqlite_utils.Database, db_path: Path, config: Config
) -> None:
    work = dataclasses.replace(
        config, channel=ChannelSettings(kind="work", token="t", corp_id="c", agent_id="1")
    )
    app = create_app({"GRIDWATCH": work, "DB_PATH": str(db_path), "SCHEDULER": False})
    client = app.test_client()
    assert client.get("/sim/").status_code == 404
    response = client.post("/sim/api/send", json={"person": LIANGHONG, "text": "张三 36.5"})
    assert response.status_code == 404
    assert loaded_db["inbox"].count == 0
    app.extensions["gridwatch_pool"].close_all()


@pytest.mark.parametrize(
    "job, label",
    [
        ("prompt:morning", "早联系提醒"),
        ("reminder:noon", "中催报"),
        ("deadline:evening", "晚截止检查"),
        ("digest:2", "第2次汇总"),
        ("release", "到期解除"),
        ("something:else", "something:else"),
    ],
)
def test_job_labels(job: str, label: str) -> None:
    assert job_label(job) == label
