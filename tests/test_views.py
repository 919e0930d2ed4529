"""The secretary view: the day's table, filters, one person's file, needs, Excel, bad links."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
import sqlite_utils
from flask import Flask
from flask.testing import FlaskClient

from bot import create_app
from bot.config import OLD_DEFAULT_KEY, Config
from bot.links import forget_stored_key, link_key, view_token
from bot.web.sim import set_sim_now
from storage.contacts import NewContact, record_contacts
from storage.needs import add_need, close_need
from tests.conftest import NOW, TZ, stop_runaway_queries

DAY = NOW.date()
AT_1030 = dt.datetime(2026, 3, 2, 10, 30, tzinfo=TZ)


def subject_id(db: sqlite_utils.Database, name: str) -> int:
    return next(db.query("SELECT id FROM subjects WHERE name = ?", [name]))["id"]


def report(
    db: sqlite_utils.Database,
    name: str,
    status: str,
    temperature: float | None = None,
    symptoms: tuple[str, ...] = (),
    slot: str = "morning",
    day: dt.date = DAY,
) -> None:
    record_contacts(
        db,
        [NewContact(subject_id(db, name), temperature, status, symptoms)],
        day=day,
        slot=slot,
        member_id=4,
        at=dt.datetime.combine(day, dt.time(8, 40), tzinfo=TZ),
        inbox_id=None,
        actor="test",
    )


@pytest.fixture
def reported(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """The morning of 2026-03-02 with each status once; everyone else has not reported."""
    report(loaded_db, "张三", "abnormal", 38.2, ("发热", "咳嗽"))
    report(loaded_db, "李四", "normal", 36.6)
    report(loaded_db, "宋佳", "unreachable")
    report(loaded_db, "傅强", "absent")
    report(loaded_db, "张三", "normal", 36.4, day=DAY - dt.timedelta(days=1))
    return loaded_db


@pytest.fixture
def app(reported: sqlite_utils.Database, db_path: Path, config: Config) -> Iterator[Flask]:
    set_sim_now(reported, config, AT_1030)
    app = create_app({"GRIDWATCH": config, "DB_PATH": str(db_path), "SCHEDULER": False})
    yield app
    app.extensions["gridwatch_pool"].close_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def sign(db: sqlite_utils.Database, unit: str, issued: dt.datetime = AT_1030) -> str:
    """A link token signed with the deployment's key (the one kept with the database)."""
    return view_token(link_key(db, Config()), unit, DAY, issued)


@pytest.fixture
def token(reported: sqlite_utils.Database) -> str:
    return sign(reported, "HX")


def row_of(page: str, db: sqlite_utils.Database, name: str) -> str:
    match = re.search(rf'<tr id="subject-{subject_id(db, name)}".*?</tr>', page, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def cell_status(row: str, slot: str) -> str:
    match = re.search(rf'data-slot="{slot}" data-status="(\w+)"', row)
    assert match
    return match.group(1)


def test_day_table_colours_each_status(
    client: FlaskClient, token: str, reported: sqlite_utils.Database
) -> None:
    response = client.get(f"/view/{token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "河西村 · 3月2日（周一）监测日报" in page
    zhang = row_of(page, reported, "张三")
    assert "row-abnormal" in zhang and cell_status(zhang, "morning") == "abnormal"
    assert "38.2℃" in zhang and "发热、咳嗽" in zhang
    assert cell_status(row_of(page, reported, "李四"), "morning") == "normal"
    assert cell_status(row_of(page, reported, "宋佳"), "morning") == "unreachable"
    assert cell_status(row_of(page, reported, "傅强"), "morning") == "absent"
    assert cell_status(row_of(page, reported, "王五"), "morning") == "missing"  # after 10:00
    assert cell_status(row_of(page, reported, "王五"), "noon") == "pending"
    assert "何平" not in page  # released: his last day was yesterday


def test_missing_only_once_the_deadline_has_passed(
    client: FlaskClient, reported: sqlite_utils.Database, config: Config
) -> None:
    at_0900 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
    set_sim_now(reported, config, at_0900)
    page = client.get(f"/view/{sign(reported, 'HX', at_0900)}").get_data(as_text=True)
    assert cell_status(row_of(page, reported, "王五"), "morning") == "pending"


@pytest.mark.parametrize(
    "query, shown, hidden",
    [
        ("grid=HX02", ["傅强", "唐伟"], ["张三", "宋佳"]),
        ("category=涉鄂人员", ["张三", "高远"], ["李四", "傅强"]),
        ("status=abnormal", ["张三"], ["李四", "宋佳"]),
        ("status=unreachable&grid=HX01", ["宋佳"], ["张三", "傅强"]),
    ],
)
def test_filters(
    client: FlaskClient, token: str, query: str, shown: list[str], hidden: list[str]
) -> None:
    page = client.get(f"/view/{token}?{query}").get_data(as_text=True)
    table = page[page.index('id="day-table"') : page.index('id="needs"')]
    for name in shown:
        assert f">{name}</a>" in table
    for name in hidden:
        assert f">{name}</a>" not in table


@pytest.mark.parametrize(
    "query, message",
    [("grid=NOPE", "NOPE"), ("category=外星人", "外星人"), ("status=<b>x</b>", "&lt;b&gt;")],
)
def test_bad_filters_get_a_clear_page(
    client: FlaskClient, token: str, query: str, message: str
) -> None:
    response = client.get(f"/view/{token}?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "筛选条件有误" in page and message in page and "<b>x" not in page


def test_phones_are_masked_everywhere(
    client: FlaskClient, token: str, reported: sqlite_utils.Database
) -> None:
    pages = [
        client.get(f"/view/{token}").get_data(as_text=True),
        client.get(f"/view/{token}/subject/{subject_id(reported, '张三')}").get_data(as_text=True),
    ]
    for page in pages:
        assert "139****0101" in page
        assert not re.search(r"1[38]\d{9}", page)


@pytest.fixture
def other_village(reported: sqlite_utils.Database) -> int:
    """东坝村 in the same town, with one subject who has a report today."""
    reported["units"].insert_all(
        [
            {"code": "DB", "name": "东坝村", "level": "village", "parent": "CG"},
            {"code": "DB01", "name": "东坝村第一网格", "level": "grid", "parent": "DB"},
        ]
    )
    subject = (
        reported["subjects"]
        .insert(
            {
                "name": "赵六",
                "phone": "13900000999",
                "category": "涉鄂人员",
                "unit": "DB01",
                "start_date": "2026-03-01",
                "days": 14,
            }
        )
        .last_pk
    )
    report(reported, "赵六", "abnormal", 39.0, ("发热",))
    return subject


def test_a_village_link_shows_nothing_of_another(
    client: FlaskClient, token: str, other_village: int
) -> None:
    page = client.get(f"/view/{token}").get_data(as_text=True)
    assert "赵六" not in page and "东坝村" not in page
    response = client.get(f"/view/{token}/subject/{other_village}")
    assert response.status_code == 404 and "赵六" not in response.get_data(as_text=True)
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/view/{token}/ledger.xlsx").data))
    assert "赵六" not in [row[3] for row in book.active.iter_rows(values_only=True)]
    assert client.get(f"/view/{token}?grid=DB01").status_code == 400


def test_a_town_link_covers_its_villages(
    client: FlaskClient, reported: sqlite_utils.Database, other_village: int
) -> None:
    town = sign(reported, "CG")
    page = client.get(f"/view/{town}").get_data(as_text=True)
    assert "城关镇" in page and ">赵六</a>" in page and ">张三</a>" in page
    assert client.get(f"/view/{town}/subject/{other_village}").status_code == 200


SCOPE = [
    # the link's unit, a subject (and their grid), whether the link opens that person's file
    ("HX01", "张三", True),  # HX01
    ("HX01", "傅强", False),  # HX02: a sibling grid
    ("HX01", "赵六", False),  # DB01: another village
    ("HX", "傅强", True),
    ("HX", "赵六", False),
    ("CG", "赵六", True),  # the town covers both villages
    ("DB", "张三", False),
]


@pytest.mark.parametrize(("unit", "name", "opens"), SCOPE, ids=[f"{u}-{n}" for u, n, _ in SCOPE])
def test_a_link_opens_only_the_files_of_its_unit_tree(
    client: FlaskClient,
    reported: sqlite_utils.Database,
    other_village: int,
    unit: str,
    name: str,
    opens: bool,
) -> None:
    response = client.get(f"/view/{sign(reported, unit)}/subject/{subject_id(reported, name)}")
    page = response.get_data(as_text=True)
    if opens:
        assert response.status_code == 200 and f"{name} · 一人一档" in page
    else:
        assert response.status_code == 404 and name not in page


@pytest.mark.parametrize(
    ("unit", "names"),
    [
        ("HX01", {"张三", "李四", "宋佳"}),
        ("HX", {"张三", "李四", "宋佳", "傅强"}),
        ("DB", {"赵六"}),
    ],
)
def test_the_excel_ledger_holds_only_the_links_unit_tree_and_date(
    client: FlaskClient,
    reported: sqlite_utils.Database,
    other_village: int,
    unit: str,
    names: set[str],
) -> None:
    data = client.get(f"/view/{sign(reported, unit)}/ledger.xlsx").data
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(2, values_only=True))
    assert {row[3] for row in rows} == names
    assert {row[0] for row in rows} == {"2026-03-02"}  # not 张三's report of the day before


@pytest.mark.parametrize("grid", ["DB01", "HX02"])
def test_the_excel_ledger_refuses_a_grid_outside_the_link(
    client: FlaskClient, reported: sqlite_utils.Database, other_village: int, grid: str
) -> None:
    response = client.get(f"/view/{sign(reported, 'HX01')}/ledger.xlsx?grid={grid}")
    assert response.status_code == 400 and "筛选条件有误" in response.get_data(as_text=True)


def test_without_any_key_a_link_gets_a_clear_page(
    client: FlaskClient, reported: sqlite_utils.Database, db_path: Path
) -> None:
    token = sign(reported, "HX")
    reported.execute("DELETE FROM settings WHERE key = 'secret_key'")
    forget_stored_key(db_path)
    response = client.get(f"/view/{token}")
    assert response.status_code == 503 and "签名密钥" in response.text
    assert "河西村" not in response.text


def test_a_configured_key_signs_instead_of_the_stored_one(
    reported: sqlite_utils.Database, db_path: Path
) -> None:
    key = "the-key-in-gridwatch-toml-0123456789"
    set_sim_now(reported, Config(), AT_1030)
    app = create_app(
        {"GRIDWATCH": Config(secret_key=key), "DB_PATH": str(db_path), "SCHEDULER": False}
    )
    client = app.test_client()
    try:
        assert client.get(f"/view/{view_token(key, 'HX', DAY, AT_1030)}").status_code == 200
        assert client.get(f"/view/{sign(reported, 'HX')}").status_code == 403
    finally:
        app.extensions["gridwatch_pool"].close_all()


@pytest.mark.parametrize(
    "make_token, status, message",
    [
        (lambda db: sign(db, "HX", AT_1030 - dt.timedelta(days=8)), 403, "过期"),
        (lambda db: sign(db, "HX")[:-4] + "AAAA", 403, "无效"),
        (lambda db: "not-a-token", 403, "无效"),
        (lambda db: sign(db, "NOPE"), 404, "单位"),
        # what an attacker who read the code makes: the whole county, valid for years
        (lambda db: view_token(OLD_DEFAULT_KEY, "COUNTY", DAY, AT_1030), 403, "无效"),
        (lambda db: view_token(OLD_DEFAULT_KEY, "HX", DAY, AT_1030), 403, "无效"),
        (lambda db: sign(db, "HX", AT_1030 + dt.timedelta(days=3650)), 403, "签发时间"),
        (lambda db: sign(db, "HX", AT_1030 + dt.timedelta(minutes=2)), 403, "签发时间"),
    ],
    ids=[
        "expired",
        "tampered",
        "garbage",
        "unknown-unit",
        "old-default-key-county",
        "old-default-key-village",
        "issued-ten-years-ahead",
        "issued-two-minutes-ahead",
    ],
)
def test_bad_links_get_a_clear_page(
    client: FlaskClient,
    reported: sqlite_utils.Database,
    make_token: Callable[[sqlite_utils.Database], str],
    status: int,
    message: str,
) -> None:
    bad = make_token(reported)
    for path in (f"/view/{bad}", f"/view/{bad}/subject/1", f"/view/{bad}/ledger.xlsx"):
        response = client.get(path)
        assert response.status_code == status
        page = response.get_data(as_text=True)
        assert message in page and "Traceback" not in page


def test_subject_file_has_every_contact_and_the_chart(
    client: FlaskClient, token: str, reported: sqlite_utils.Database
) -> None:
    response = client.get(f"/view/{token}/subject/{subject_id(reported, '张三')}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "张三 · 一人一档" in page and "涉鄂人员" in page
    assert "<svg" in page and 'class="fever-line"' in page and "发热线 37.3℃" in page
    history = page[page.index('id="history"') :]
    assert history.index("3月2日") < history.index("3月1日")  # newest first
    assert "38.2℃" in history and "36.4℃" in history and "梁红" in history


@pytest.mark.parametrize("subject", ["abc", "99999", "1.5", "-3"])
def test_unknown_subjects_get_a_clear_page(client: FlaskClient, token: str, subject: str) -> None:
    response = client.get(f"/view/{token}/subject/{subject}")
    assert response.status_code == 404
    assert "找不到该监测对象" in response.get_data(as_text=True)


def test_excel_ledger_of_the_day(client: FlaskClient, token: str) -> None:
    response = client.get(f"/view/{token}/ledger.xlsx")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    disposition = response.headers["Content-Disposition"]
    assert "attachment" in disposition and "ledger-2026-03-02.xlsx" in disposition
    assert "%E6%B2%B3%E8%A5%BF%E6%9D%91" in disposition  # 河西村, UTF-8 encoded
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("日期", "时段", "单位", "监测对象")
    assert sheet.freeze_panes == "A2"
    assert len(rows) == 5  # today's four reports, not yesterday's
    zhang = next(r for r in rows if r[3] == "张三")
    assert zhang[1] == "早" and zhang[6] == 38.2 and zhang[7] == "异常" and zhang[8] == "发热、咳嗽"
    assert sheet["G2"].number_format == "0.0"
    assert sheet.column_dimensions["C"].width >= 16  # 河西村第一网格 fits


def test_excel_follows_the_filters(client: FlaskClient, token: str) -> None:
    data = client.get(f"/view/{token}/ledger.xlsx?grid=HX02").data
    names = [r[3] for r in openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(2)]
    assert [cell.value for cell in names] == ["傅强"]


def test_excel_keeps_a_formula_like_name_as_text(
    client: FlaskClient, token: str, reported: sqlite_utils.Database
) -> None:
    name = '=HYPERLINK("http://x","y")'
    reported.execute("UPDATE subjects SET name = ? WHERE name = '张三'", [name])
    reported.execute("UPDATE people SET name = '@梁红' WHERE name = '梁红'")
    data = client.get(f"/view/{token}/ledger.xlsx").data
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    row = next(r for r in sheet.iter_rows(min_row=2) if r[3].value == name)
    assert (row[3].data_type, row[5].value, row[5].data_type) == ("s", "@梁红", "s")


def test_healthz_and_the_view_answer_on_a_unit_cycle_stored_by_hand(
    client: FlaskClient,
    app: Flask,
    token: str,
    reported: sqlite_utils.Database,
    config: Config,
) -> None:
    reported.execute("UPDATE units SET parent = 'HX01' WHERE code = 'HX'")
    reported.execute("UPDATE units SET parent = 'KC' WHERE code = 'KC'")
    with app.app_context():  # the connection this thread's requests use
        stop_runaway_queries(app.extensions["gridwatch_pool"].get().conn)
    assert client.get("/healthz").status_code == 200
    page = client.get(f"/view/{token}")
    assert page.status_code == 200 and "张三" in page.get_data(as_text=True)
    assert client.get(f"/view/{token}/ledger.xlsx").status_code == 200
    county = sign(reported, "KC")
    assert client.get(f"/view/{county}").status_code == 200


def test_needs_ledger_shows_open_and_closed(
    client: FlaskClient, token: str, reported: sqlite_utils.Database
) -> None:
    first = add_need(reported, subject_id(reported, "张三"), "买菜", 4, NOW)
    add_need(reported, subject_id(reported, "李四"), "需要买降压药", 4, NOW)
    close_need(reported, first["id"], 1, NOW)
    page = client.get(f"/view/{token}").get_data(as_text=True)
    needs = page[page.index('id="needs"') :]
    assert "待办 1 件，共 2 件" in needs
    assert needs.index("需要买降压药") < needs.index("买菜")  # open first
    assert "已办结" in needs and "就医" in needs


def test_pages_are_private(client: FlaskClient, token: str) -> None:
    response = client.get(f"/view/{token}")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]
