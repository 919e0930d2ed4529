"""The member's page (DESIGN §8): one member, one day, behind a signed link; a tap reports
through the same pipeline as chat (channel web), and nothing of anyone else shows."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlite_utils
from flask.testing import FlaskClient

from bot.config import Config
from bot.links import link_key, member_token, view_token
from bot.web.member import compose
from bot.web.sim import set_sim_now
from schedules.runner import run_due
from storage.db import transaction
from tests.conftest import TZ
from tests.fake_wechat import make_app

DAY = dt.date(2026, 3, 2)
CONFIG = Config(public_url="http://127.0.0.1:5000", public_url_set=True)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


@pytest.fixture
def client(loaded_db: sqlite_utils.Database, db_path: Path) -> FlaskClient:
    run_due(loaded_db, CONFIG, at(8))  # the morning prompts, with their links
    with transaction(loaded_db):
        set_sim_now(loaded_db, CONFIG, at(8, 30))
    return make_app(db_path, CONFIG).test_client()


def person_id(db: sqlite_utils.Database, name: str) -> int:
    return db.execute("SELECT id FROM people WHERE name = ?", [name]).fetchone()[0]


def prompt_of(db: sqlite_utils.Database, wechat_id: str) -> dict:
    return next(
        db.query("SELECT * FROM outbox WHERE kind = 'prompt' AND recipient = ?", [wechat_id])
    )


def link_in(text: str) -> str:
    return re.search(r"逐人填报：http://127\.0\.0\.1:5000(/me/\S+)", text)[1]  # type: ignore[index]


def token_for(db: sqlite_utils.Database, name: str, **more: object) -> str:
    args = {"day": DAY, "issued": at(8), "message": None} | more
    return member_token(link_key(db, CONFIG), person_id(db, name), **args)  # type: ignore[arg-type]


def text_of(html: bytes) -> str:
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html.decode()))


def form_of(html: bytes, subject: str) -> dict[str, str]:
    section = re.search(
        rf'<section class="panel subject" id="s\d+" data-subject="{subject}">(.*?)</section>',
        html.decode(),
        re.S,
    )
    assert section, subject
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', section[1]))


def test_the_prompt_link_opens_the_members_day_and_the_prompt_whole(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    prompt = prompt_of(loaded_db, "lianghong")
    page = client.get(link_in(prompt["text"]))
    assert page.status_code == 200
    words = text_of(page.data)
    for line in prompt["text"].splitlines()[:-1]:
        assert line in words
    mine = {
        r[0]
        for r in loaded_db.execute(
            "SELECT s.name FROM subjects s JOIN assignments a ON a.subject_id = s.id"
            " JOIN people p ON p.id = a.person_id WHERE p.name = '梁红'"
        )
    }
    others = {r[0] for r in loaded_db.execute("SELECT name FROM subjects")} - mine
    shown = set(re.findall(r'data-subject="([^"]+)"', page.data.decode()))
    assert shown == mine
    assert not [name for name in others if name in words]  # nobody else's subjects
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert 'name="viewport"' in page.data.decode()


def test_another_members_message_is_not_shown(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    theirs = prompt_of(loaded_db, "hanbing")
    token = token_for(loaded_db, "梁红", message=theirs["id"])
    page = client.get(f"/me/{token}")
    assert page.status_code == 200
    assert "消息全文" not in text_of(page.data)


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("future", 403),
        ("wrong-key", 403),
        ("expired", 403),
        ("a-view-token", 403),
        ("not-a-member", 404),
        ("tampered", 403),
    ],
)
def test_refused_links(
    client: FlaskClient, loaded_db: sqlite_utils.Database, how: str, status: int
) -> None:
    key = link_key(loaded_db, CONFIG)
    member = person_id(loaded_db, "梁红")
    token = {
        "future": lambda: member_token(key, member, DAY, at(9)),
        "wrong-key": lambda: member_token("another-deployment-key-0123", member, DAY, at(8)),
        "expired": lambda: member_token(key, member, DAY, at(8) - dt.timedelta(days=8)),
        "a-view-token": lambda: view_token(key, "HX", DAY, at(8)),
        "not-a-member": lambda: member_token(key, person_id(loaded_db, "陈志刚"), DAY, at(8)),
        "tampered": lambda: member_token(key, member, DAY, at(8))[:-2] + "xx",
    }[how]()
    page = client.get(f"/me/{token}")
    assert page.status_code == status
    assert "Traceback" not in page.data.decode()


@pytest.mark.parametrize(
    ("choice", "temperature", "symptoms", "text", "status"),
    [
        ("normal", "36.5", [], "张三 36.5 正常", "normal"),
        ("normal", "", [], "张三 正常", "normal"),
        ("symptoms", "37.6", ["咳嗽", "乏力"], "张三 37.6 咳嗽 乏力", "abnormal"),
        ("symptoms", "", ["腹泻"], "张三 腹泻", "abnormal"),
        ("unreachable", "", [], "张三 联系不上", "unreachable"),
        ("absent", "", [], "张三 外出", "absent"),
    ],
)
def test_a_tap_is_a_chat_report(
    client: FlaskClient,
    loaded_db: sqlite_utils.Database,
    choice: str,
    temperature: str,
    symptoms: list[str],
    text: str,
    status: str,
) -> None:
    assert compose("张三", choice, temperature, symptoms) == text
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    form = form_of(client.get(url).data, "张三")
    answer = client.post(
        url,
        data={**form, "choice": choice, "temperature": temperature, "symptom": symptoms},
    )
    assert answer.status_code == 303
    inbox = next(loaded_db.query("SELECT * FROM inbox ORDER BY id DESC LIMIT 1"))
    assert (inbox["channel"], inbox["sender"], inbox["text"]) == ("web", "lianghong", text)
    contact = next(
        loaded_db.query(
            "SELECT c.* FROM contacts c JOIN subjects s ON s.id = c.subject_id"
            " WHERE s.name = '张三' AND c.current = 1"
        )
    )
    assert (contact["slot"], contact["status"]) == ("morning", status)
    reply = next(
        loaded_db.query("SELECT * FROM outbox WHERE inbox_id = ? AND kind = 'reply'", [inbox["id"]])
    )
    assert reply["status"] == "sent" and reply["text"] == inbox["reply"]
    page = client.get(answer.headers["Location"])
    assert inbox["reply"].splitlines()[0] in text_of(page.data)
    alerts = loaded_db.execute(
        "SELECT DISTINCT status FROM outbox WHERE inbox_id = ? AND kind LIKE '%alert'",
        [inbox["id"]],
    ).fetchall()
    assert alerts == ([] if status == "normal" else [("sent",)])  # at once (console)


def test_a_second_submit_of_the_same_form_is_one_report(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    form = form_of(client.get(url).data, "张三") | {"choice": "normal", "temperature": "36.6"}
    first = client.post(url, data=form)
    again = client.post(url, data=form)
    assert first.headers["Location"] == again.headers["Location"]
    assert loaded_db.execute("SELECT count(*) FROM inbox WHERE channel = 'web'").fetchone()[0] == 1


def test_a_different_answer_on_the_same_form_is_recorded_too(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    """正常 tapped by mistake, then 有症状 on the same form: the fever is not lost."""
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    form = form_of(client.get(url).data, "张三")
    client.post(url, data=form | {"choice": "normal", "temperature": "36.5"})
    client.post(url, data=form | {"choice": "symptoms", "temperature": "38.9", "symptom": "咳嗽"})
    row = loaded_db.execute(
        "SELECT c.temperature, c.status FROM contacts c JOIN subjects s ON s.id = c.subject_id"
        " WHERE s.name = '张三' AND c.current = 1"
    ).fetchone()
    assert tuple(row) == (38.9, "abnormal")


def test_a_huge_form_is_refused_unread(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    answer = client.post(url, data={"choice": "normal", "note": "x" * (200 * 1024)})
    assert answer.status_code == 413
    assert loaded_db.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"token": ""}, 403),  # the token is not in the form: not from our page
        ({"subject": "other"}, 404),  # someone else's subject
        ({"origin": "https://evil.example"}, 403),
    ],
)
def test_forged_submissions_are_refused(
    client: FlaskClient, loaded_db: sqlite_utils.Database, change: dict, status: int
) -> None:
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    form = form_of(client.get(url).data, "张三") | {"choice": "normal"}
    headers = {}
    if "origin" in change:
        headers["Origin"] = change.pop("origin")
    if change.get("subject") == "other":
        theirs = loaded_db.execute(
            "SELECT a.subject_id FROM assignments a JOIN people p ON p.id = a.person_id"
            " WHERE p.name = '韩冰'"
        ).fetchone()[0]
        change = {"subject": str(theirs)}
    answer = client.post(url, data=form | change, headers=headers)
    assert answer.status_code == status
    assert loaded_db.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0
    assert client.get(url.replace("/me/", "/me/") + "?x").status_code == 200
    assert client.put(url).status_code == 405


def test_bad_input_is_asked_again_not_recorded(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    form = form_of(client.get(url).data, "张三")
    for change, words in [
        ({"choice": "normal", "temperature": "36.5 李四 38"}, "体温请填 34.0–42.5"),
        ({"choice": "normal", "temperature": "10"}, "体温请填 34.0–42.5"),
        ({"choice": "normal", "temperature": "99.9"}, "体温请填 34.0–42.5"),
        ({"choice": "symptoms"}, "请勾选症状"),
        ({"choice": "dance"}, "请选择情况"),
    ]:
        answer = client.post(url, data=form | change)
        assert answer.status_code == 303
        assert words in text_of(client.get(answer.headers["Location"]).data)
    assert loaded_db.execute("SELECT count(*) FROM inbox").fetchone()[0] == 0


def test_a_past_day_is_read_only(client: FlaskClient, loaded_db: sqlite_utils.Database) -> None:
    with transaction(loaded_db):
        set_sim_now(loaded_db, CONFIG, at(8, 30, DAY + dt.timedelta(days=1)))
    url = link_in(prompt_of(loaded_db, "lianghong")["text"])
    html = client.get(url).data
    assert "只能查看" in text_of(html) and "<form" not in html.decode()
    token = url.rsplit("/", 1)[1]
    answer = client.post(url, data={"token": token, "subject": "1", "choice": "normal"})
    assert answer.status_code == 409


def test_another_members_reply_is_not_shown(
    client: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    theirs = link_in(prompt_of(loaded_db, "hanbing")["text"])
    name = loaded_db.execute(
        "SELECT s.name FROM subjects s JOIN assignments a ON a.subject_id = s.id"
        " JOIN people p ON p.id = a.person_id WHERE p.name = '韩冰' LIMIT 1"
    ).fetchone()[0]
    form = form_of(client.get(theirs).data, name) | {"choice": "normal", "temperature": "36.4"}
    done = client.post(theirs, data=form).headers["Location"].split("?")[1].split("#")[0]
    mine = link_in(prompt_of(loaded_db, "lianghong")["text"])
    assert "已提交" not in text_of(client.get(f"{mine}?{done}").data)


def test_migrations_rerun_from_version_4(db: sqlite_utils.Database) -> None:
    from storage.db import migrate, schema_version
    from storage.migrations import MIGRATIONS

    db.execute("PRAGMA user_version = 4")
    migrate(db)
    assert schema_version(db) == len(MIGRATIONS)
    assert "card" in db["outbox"].columns_dict
