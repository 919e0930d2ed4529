"""关注 (DESIGN §11): a temperature rising under the fever line, in the digest and the file."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
import sqlite_utils
from flask import Flask
from flask.testing import FlaskClient

from bot import create_app
from bot.config import Config
from bot.links import link_key, view_token
from bot.web.sim import set_sim_now
from handlers.trend import rising
from schedules.digest import build_digest, digest_text
from tests.conftest import TZ
from tests.routine_helpers import report

NO_SCHEDULE = {"SCHEDULER": False}


@pytest.mark.parametrize(
    "temperatures, watched",
    [
        ([36.6, 36.8, 37.1], True),
        ([36.2, 36.5, 36.6, 36.8, 37.0], True),  # the last three count; 37.0 is the floor
        ([36.6, 36.8, 37.2], True),
        ([36.6, 36.8, 37.3], False),  # at the fever line: an abnormal report, not 关注
        ([36.6, 36.8, 36.9], False),  # under 37.0
        ([36.8, 36.8, 37.1], False),  # not up each time
        ([37.2, 37.0, 37.1], False),
        ([36.8, 37.1], False),  # two readings are no trend
        ([], False),
    ],
)
def test_rising(temperatures: list[float], watched: bool) -> None:
    assert rising(temperatures, 37.3) is watched


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=TZ)


@pytest.fixture
def view(db_path: Path) -> Iterator[Callable[[sqlite_utils.Database, dt.datetime], FlaskClient]]:
    """A client of the web app whose clock (the simulator's) stands at the given time."""
    apps: list[Flask] = []

    def open_at(db: sqlite_utils.Database, now: dt.datetime) -> FlaskClient:
        set_sim_now(db, Config(), now)
        apps.append(create_app({"GRIDWATCH": Config(), "DB_PATH": str(db_path)} | NO_SCHEDULE))
        return apps[-1].test_client()

    yield open_at
    for app in apps:
        app.extensions["gridwatch_pool"].close_all()


@pytest.fixture
def climbing(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """张三 36.7 (3/1 evening), 36.9 and 37.1 (3/2 morning and noon); 李四 flat at 37.1."""
    report(loaded_db, ["张三"], "evening", at(1, 18), "梁红", temperature=36.7)
    report(loaded_db, ["张三"], "morning", at(2, 8), "梁红", temperature=36.9)
    report(loaded_db, ["张三"], "noon", at(2, 12), "梁红", temperature=37.1)
    for slot, hour in (("morning", 8), ("noon", 12)):
        report(loaded_db, ["李四"], slot, at(2, hour), "梁红", temperature=37.1)
    return loaded_db


def test_the_digest_lists_a_rising_trend_as_watch(climbing: sqlite_utils.Database) -> None:
    digest = build_digest(climbing, Config(), "HX", dt.date(2026, 3, 2), 2, at(2, 21))
    assert digest["watch"] == [
        {
            "subject": "张三",
            "temperatures": [36.7, 36.9, 37.1],
            "date": "2026-03-02",
            "slot": "noon",
            "member": "梁红",
            "at": "2026-03-02T12:00:00+08:00",
        }
    ]
    assert digest["abnormal"] == []  # 关注 is no alarm
    text = digest_text(digest, "http://x")
    assert "关注 1 人（体温连续上升，未到发热线）：张三 36.7→36.9→37.1（中）" in text
    rollup = build_digest(climbing, Config(), "CG", dt.date(2026, 3, 2), 2, at(2, 21))
    assert [w["subject"] for w in rollup["watch"]] == ["张三"]


def test_the_first_report_does_not_see_the_later_reading(climbing: sqlite_utils.Database) -> None:
    digest = build_digest(climbing, Config(), "HX", dt.date(2026, 3, 2), 1, at(2, 21))
    assert digest["watch"] == []  # at 10:30 only 36.7 → 36.9 were known


def test_the_person_file_shows_watch(climbing: sqlite_utils.Database, view) -> None:
    client = view(climbing, at(2, 21))
    token = view_token(link_key(climbing, Config()), "HX", dt.date(2026, 3, 2), at(2, 10))
    ids = {r["name"]: r["id"] for r in climbing.query("SELECT id, name FROM subjects")}
    page = client.get(f"/view/{token}/subject/{ids['张三']}").get_data(as_text=True)
    assert 'id="watch"' in page and "36.7℃→36.9℃→37.1℃" in page
    page = client.get(f"/view/{token}/subject/{ids['李四']}").get_data(as_text=True)
    assert 'id="watch"' not in page


def test_the_view_and_excel_show_the_problem_ledger(
    say, loaded_db: sqlite_utils.Database, view
) -> None:
    say("lianghong", "需求 张三 买菜", at=at(2, 9))
    say("lianghong", "需求 李四 需要买降压药", at=at(2, 9))
    say("chenzhigang", "办结 1 已送菜", at=at(2, 11))
    client = view(loaded_db, at(2, 12))
    token = view_token(link_key(loaded_db, Config()), "HX", dt.date(2026, 3, 2), at(2, 10))
    page = client.get(f"/view/{token}").get_data(as_text=True)
    needs = page[page.index('id="needs"') :]
    assert "问题台账" in page and "村级 梁红" in needs and "已送菜" in needs
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/view/{token}/ledger.xlsx").data))
    sheet = book["问题台账"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:9] == ["编号", "监测对象", "类别", "需求", "登记时间", "层级"] + [
        "包干负责",
        "办结期限",
        "状态",
    ]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id[1][8] == "已办结" and by_id[1][12] == "已送菜"
    assert by_id[2][2] == "就医" and by_id[2][6] == "梁红" and by_id[2][8] == "待办"


def test_cha_shows_watch_in_chat(climbing: sqlite_utils.Database, say) -> None:
    assert "关注：体温连续上升 36.7→36.9→37.1℃" in say("chenzhigang", "查 张三", at=at(2, 13))
    assert "关注" not in say("chenzhigang", "查 李四", at=at(2, 13))


def test_the_view_lists_the_days_alerts_and_their_acknowledgements(
    say, loaded_db: sqlite_utils.Database, view
) -> None:
    say("lianghong", "张三 37.8 咳嗽", at=at(2, 8))
    say("lianghong", "王五 不在家", at=at(2, 9))
    say("huangyonghong", "已处置 1 已送发热门诊", at=at(2, 10))
    client = view(loaded_db, at(2, 12))
    token = view_token(link_key(loaded_db, Config()), "HX", dt.date(2026, 3, 2), at(2, 10))
    page = client.get(f"/view/{token}").get_data(as_text=True)
    alerts = page[page.index('id="alerts"') : page.index('id="needs"')]
    assert "2 条，未确认 1 条" in alerts
    assert "黄永红 10:00 已处置：已送发热门诊" in alerts
