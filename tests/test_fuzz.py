"""Fuzz targets (hypothesis) for every door bad input comes through (DESIGN §10): the /wechat
callback (work and mp), chat text from every role, roster CSV files."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.context import Context
from bot.wechat.crypto import sign
from handlers.pipeline import Incoming, handle_message
from storage.roster import import_roster
from storage.roster_file import RosterFileError
from tests.conftest import NOW, TZ
from tests.fake_wechat import MP, WORK, config_for, make_app
from tests.test_wechat_callback import CREATED, wecom_request

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Dump = Callable[[sqlite_utils.Database], str]

TAGS = ["xml", "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId",
        "AgentID", "Event", "Recognition", "Encrypt", "x"]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "text",
            "event",
            "voice",
            "image",
            "subscribe",
            "lianghong",
            "stranger",
            "1772412060",
            "123",
            "-1",
            "张三 36.5",
            "帮助",
            "",
            "]]>",
        ]
    ),  # fmt: skip
    st.text(max_size=30),
)


@st.composite
def xmlish(draw: st.DrawFn) -> str:
    """Documents that look like WeChat's: known and unknown tags, CDATA or not, sometimes
    unbalanced, sometimes with a DOCTYPE or an entity."""
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        tag, value = draw(st.sampled_from(TAGS)), draw(VALUES)
        if draw(st.booleans()):
            value = f"<![CDATA[{value}]]>"
        else:
            value = value.replace("&", "&amp;").replace("<", "&lt;")
        parts.append(f"<{tag}>{value}</{tag}>")
    body = "".join(parts)
    prefix = draw(st.sampled_from(["", "", '<?xml version="1.0"?>', "<!DOCTYPE xml>", "&e;"]))
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return f"{prefix}<xml>{body}</xml>"


@pytest.fixture
def clients(loaded_db: sqlite_utils.Database, db_path: Path) -> dict[str, FlaskClient]:
    return {
        "work": make_app(db_path, config_for(WORK)).test_client(),
        "mp": make_app(db_path, config_for(MP)).test_client(),
    }


def inbox_count(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]


@FUZZ
@given(kind=st.sampled_from(["work", "mp"]), body=st.binary(max_size=2000), query=st.dictionaries(
    st.sampled_from(["msg_signature", "signature", "timestamp", "nonce", "encrypt_type",
                     "openid"]), st.text(max_size=50), max_size=6))  # fmt: skip
def test_arbitrary_bytes_are_refused_without_a_change(
    clients: dict[str, FlaskClient],
    loaded_db: sqlite_utils.Database,
    dump_db: Dump,
    kind: str,
    body: bytes,
    query: dict[str, str],
) -> None:
    """Any bytes with any query: a 4xx (never a 5xx), and the database unchanged."""
    before = dump_db(loaded_db)
    answer = clients[kind].post("/wechat", query_string=query, data=body)
    assert 400 <= answer.status_code < 500
    assert dump_db(loaded_db) == before


@FUZZ
@given(kind=st.sampled_from(["work", "mp"]), inner=xmlish(), encrypted=st.booleans())
def test_signed_xmlish_documents_never_fail_and_store_only_messages(
    clients: dict[str, FlaskClient],
    loaded_db: sqlite_utils.Database,
    kind: str,
    inner: str,
    encrypted: bool,
) -> None:
    """XML-ish documents correctly signed (encrypted for WeCom and the mp safe mode, plain
    for the mp plaintext mode) get past the signature: the answer is a 200 or a 4xx, never
    a 5xx; a 4xx stores nothing; at most one inbox row per post, never with an error."""
    settings_ = WORK if kind == "work" else MP
    if kind == "work" or encrypted:
        query, body = wecom_request(settings_, inner)
    else:
        query = {"timestamp": str(CREATED), "nonce": "42"}
        query["signature"] = sign(MP.token, query["timestamp"], query["nonce"])
        body = inner
    before = inbox_count(loaded_db)
    answer = clients[kind].post("/wechat", query_string=query, data=body.encode())
    assert answer.status_code == 200 or 400 <= answer.status_code < 500
    after = inbox_count(loaded_db)
    assert after - before in ((0, 1) if answer.status_code == 200 else (0,))
    errors = loaded_db.execute("SELECT COUNT(*) FROM inbox WHERE outcome = 'error'").fetchone()
    assert errors == (0,)


ROLES = {
    "member": "lianghong",
    "secretary": "chenzhigang",
    "monitor": "liumin",
    "medic": "huangyonghong",
    "unbound": "stranger",
}
WORDS = ["帮助", "名单", "更正", "撤销", "需求", "汇总", "异常", "未报", "查", "解除", "延长",
         "办结", "绑定", "全部正常", "张三", "36.5", "早", "晚", "7天", "-1", "\n",
         "，"]  # fmt: skip
CHAT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), max_size=8).map(" ".join),
)


@FUZZ
@given(role=st.sampled_from(sorted(ROLES)), text=CHAT, minutes=st.integers(0, 24 * 60 - 1))
def test_any_text_from_any_role_never_fails(
    loaded_db: sqlite_utils.Database, config: Config, role: str, text: str, minutes: int
) -> None:
    """Any text (commands with garbage arguments included), from each role, at any time of
    the day: an answer, never the 'error' outcome."""
    at = dt.datetime.combine(NOW.date(), dt.time(), tzinfo=TZ) + dt.timedelta(minutes=minutes)
    message = Incoming(channel="console", sender=ROLES[role], text=text, at=at, received_at=at)
    handled = handle_message(Context(db=loaded_db, config=config), message)
    assert handled.outcome != "error"
    assert handled.reply or role != "unbound"


@FUZZ
@given(
    sheet=st.sampled_from(["units", "people", "subjects"]),
    content=st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda t: t.encode("utf-8")),
        st.lists(st.lists(st.text(max_size=12), max_size=8), max_size=6).map(
            lambda rows: "\n".join(",".join(row) for row in rows).encode("gbk", "replace")
        ),
    ),
)
def test_any_roster_csv_is_imported_or_reported(
    loaded_db: sqlite_utils.Database,
    roster_dir: Path,
    tmp_path: Path,
    dump_db: Dump,
    config: Config,
    sheet: str,
    content: bytes,
) -> None:
    """One CSV of the demo roster replaced by arbitrary bytes: the import either applies or
    lists errors (nothing changed then); it raises nothing but RosterFileError."""
    folder = tmp_path / "fuzzed"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(roster_dir, folder)
    (folder / f"{sheet}.csv").write_bytes(content)
    before = dump_db(loaded_db)
    try:
        report = import_roster(
            loaded_db, folder, now=NOW, categories=config.categories, period=config.period_days
        )
    except RosterFileError:
        report = None
    if report is None or report.errors:
        assert dump_db(loaded_db) == before
