"""/wechat through Flask's test client: verification, the three mp modes, WeCom, retries, hostile
input, binding, and the late reply that goes out through the API."""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer

from bot.config import ChannelSettings, Config
from bot.wechat.crypto import sign
from bot.wechat.message_xml import check_xml
from storage.invites import create_invite
from tests.conftest import NOW, TZ
from tests.fake_wechat import MP, WORK, FakeWeChat, config_for, make_app
from tests.test_wechat_xml import WECOM_VERIFY

CREATED = 1772412060  # 2026-03-02 08:41 Asia/Shanghai


def inner_xml(sender: str, msg_type: str, body: str, msg_id: int | None, created: int) -> str:
    msg = f"<MsgId>{msg_id}</MsgId>" if msg_id is not None else ""
    return (
        f"<xml><ToUserName><![CDATA[to]]></ToUserName><FromUserName><![CDATA[{sender}]]>"
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[{msg_type}]]>"
        f"</MsgType>{body}{msg}<AgentID>1000002</AgentID></xml>"
    )


def encrypt(settings: ChannelSettings, xml: str, receiver: str | None = None) -> str:
    if settings.kind == "work":
        from wechatpy.enterprise.crypto import PrpCrypto
    else:
        from wechatpy.crypto import PrpCrypto
    key = base64.b64decode(settings.aes_key + "=")
    receiver = receiver or (settings.corp_id if settings.kind == "work" else settings.app_id)
    return PrpCrypto(key).encrypt(xml, receiver).decode()


def wecom_request(
    settings: ChannelSettings, xml: str, receiver: str | None = None
) -> tuple[dict[str, str], str]:
    """What WeCom POSTs: the query (msg_signature, timestamp, nonce) and the envelope."""
    ciphertext = encrypt(settings, xml, receiver)
    timestamp, nonce = str(CREATED), "1372623149"
    query = {
        "msg_signature": sign(settings.token, timestamp, nonce, ciphertext),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    if settings.kind == "mp":
        query |= {"signature": sign(settings.token, timestamp, nonce), "encrypt_type": "aes"}
    body = (
        "<xml><ToUserName><![CDATA[x]]></ToUserName>"
        f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>"
    )
    return query, body


def open_reply(settings: ChannelSettings, text: str) -> Any:
    """Decrypt a passive reply the way WeChat does; return its <xml> root."""
    if settings.kind == "work":
        from wechatpy.enterprise.crypto import WeChatCrypto
    else:
        from wechatpy.crypto import WeChatCrypto
    receiver = settings.corp_id if settings.kind == "work" else settings.app_id
    crypto = WeChatCrypto(settings.token, settings.aes_key, receiver)
    root = check_xml(text)
    sig, stamp, nonce = (root.findtext(k) for k in ("MsgSignature", "TimeStamp", "Nonce"))
    assert sig == sign(settings.token, stamp, nonce, root.findtext("Encrypt"))
    return check_xml(crypto.decrypt_message(text, sig, stamp, nonce))


Post = Callable[..., Any]


@pytest.fixture
def post_work(work: FlaskClient) -> Post:
    def post(sender: str, text: str, msg_id: int | None = 1, **kw: Any) -> Any:
        xml = inner_xml(
            sender,
            kw.pop("msg_type", "text"),
            kw.pop("body", f"<Content><![CDATA[{text}]]></Content>"),
            msg_id,
            kw.pop("created", CREATED),
        )
        query, body = wecom_request(WORK, xml)
        return work.post("/wechat", query_string=query, data=body.encode())

    return post


def inbox(db: sqlite_utils.Database) -> list[dict]:
    return list(db.query("SELECT * FROM inbox ORDER BY id"))


# -- verification ---------------------------------------------------------------------


def test_wecom_url_verification_with_the_official_vector(work: FlaskClient) -> None:
    started = time.monotonic()
    answer = work.get("/wechat", query_string=WECOM_VERIFY)
    assert time.monotonic() - started < 1.0
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "1616140317555161061"


def test_mp_url_verification(mp: FlaskClient) -> None:
    query = {"timestamp": "1409735669", "nonce": "1320562132", "echostr": "4783209436"}
    query["signature"] = sign("spamtest", query["timestamp"], query["nonce"])
    answer = mp.get("/wechat", query_string=query)
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "4783209436")
    bad = mp.get("/wechat", query_string={**query, "signature": "0" * 40})
    assert bad.status_code == 403 and "4783209436" not in bad.get_data(as_text=True)


@pytest.mark.parametrize(
    "change", [{"msg_signature": "0" * 40}, {"timestamp": "1409659590"}, {"echostr": None}]
)
def test_wecom_verification_refused(work: FlaskClient, change: dict) -> None:
    query = {k: v for k, v in {**WECOM_VERIFY, **change}.items() if v is not None}
    assert work.get("/wechat", query_string=query).status_code in (400, 403)


def test_console_channel_has_no_callback(loaded_db: sqlite_utils.Database, db_path: Path) -> None:
    client = make_app(db_path, Config()).test_client()
    assert client.get("/wechat", query_string=WECOM_VERIFY).status_code == 404
    assert client.post("/wechat", query_string=WECOM_VERIFY, data=b"<xml/>").status_code == 404


def test_a_repeated_query_argument_counts_once_the_first_time(work: FlaskClient) -> None:
    """As Flask reads it: a second msg_signature appended to a good request changes nothing."""
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 3, CREATED)
    query, body = wecom_request(WORK, xml)
    path = "/wechat?" + "&".join(f"{k}={v}" for k, v in query.items()) + "&msg_signature=bogus"
    assert work.post(path, data=body.encode()).status_code == 200


@pytest.mark.parametrize("length", ["-1", "abc"])
def test_a_bad_content_length_is_refused(work: FlaskClient, length: str) -> None:
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 4, CREATED)
    query, body = wecom_request(WORK, xml)
    environ = {"CONTENT_LENGTH": length}
    answer = work.post("/wechat", query_string=query, data=body.encode(), environ_overrides=environ)
    assert answer.status_code == 400


# -- WeCom messages -------------------------------------------------------------------


def test_wecom_retries_are_recorded_once_with_the_same_reply(
    post_work: Post, loaded_db: sqlite_utils.Database
) -> None:
    replies = []
    for _ in range(3):
        answer = post_work("lianghong", "帮助", msg_id=777)
        assert answer.status_code == 200
        replies.append(open_reply(WORK, answer.get_data(as_text=True)))
    contents = {root.findtext("Content") for root in replies}
    assert len(contents) == 1 and "上报请这样写" in contents.pop()
    assert replies[0].findtext("ToUserName") == "lianghong"
    assert replies[0].findtext("FromUserName") == "to"
    rows = inbox(loaded_db)
    assert [(r["sender"], r["dedup_key"], r["text"]) for r in rows] == [
        ("lianghong", "work:msg:777", "帮助")
    ]
    assert loaded_db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1


def test_wecom_report_is_recorded_once(post_work: Post, loaded_db: sqlite_utils.Database) -> None:
    for _ in range(3):
        reply = open_reply(
            WORK, post_work("lianghong", "张三 36.5 正常", msg_id=9).get_data(as_text=True)
        )
        assert "已记录" in reply.findtext("Content")
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 1
    assert loaded_db.execute("SELECT at FROM inbox").fetchone()[0] == "2026-03-02T08:41:00+08:00"


def test_wecom_unknown_member_gets_how_to_bind(post_work: Post) -> None:
    reply = open_reply(WORK, post_work("stranger", "张三 36.5").get_data(as_text=True))
    assert "绑定" in reply.findtext("Content") and "张三" not in reply.findtext("Content")


@pytest.mark.parametrize(
    "msg_type, body, msg_id, expected",
    [
        ("event", "<Event><![CDATA[enter_agent]]></Event>", None, "欢迎"),
        ("event", "<Event><![CDATA[subscribe]]></Event>", None, "欢迎"),
        ("voice", "<MediaId>m</MediaId><Format>amr</Format>", 5, "未开启语音识别"),
        ("image", "<PicUrl>http://p</PicUrl><MediaId>m</MediaId>", 6, "只能处理文字和语音"),
        ("location", "<Location_X>23.1</Location_X><Label>河西村</Label>", 7, "只能处理文字和语音"),
        ("file", "<Title>a.xlsx</Title>", 8, "只能处理文字和语音"),
    ],
)
def test_wecom_other_types(
    post_work: Post,
    loaded_db: sqlite_utils.Database,
    msg_type: str,
    body: str,
    msg_id: int | None,
    expected: str,
) -> None:
    for _ in range(2):
        answer = post_work("lianghong", "", msg_id=msg_id, msg_type=msg_type, body=body)
        assert expected in open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")
    rows = inbox(loaded_db)
    assert (
        len(rows) == 1 and rows[0]["type"] == msg_type and body.split(">")[1][:5] in rows[0]["raw"]
    )


def test_wecom_other_events_are_acknowledged_and_not_stored(
    post_work: Post, loaded_db: sqlite_utils.Database
) -> None:
    answer = post_work("lianghong", "", msg_id=None, msg_type="event", body="<Event>view</Event>")
    assert answer.get_data(as_text=True) == "success"
    assert inbox(loaded_db) == []


# -- hostile input ----------------------------------------------------------------------


def hostile_cases() -> list[tuple[str, Callable[[], tuple[dict, bytes]], tuple[int, ...]]]:
    good_xml = inner_xml("lianghong", "text", "<Content>张三 36.5</Content>", 1, CREATED)

    def good() -> tuple[dict, bytes]:
        query, body = wecom_request(WORK, good_xml)
        return query, body.encode()

    def with_query(**change: str) -> Callable[[], tuple[dict, bytes]]:
        def make() -> tuple[dict, bytes]:
            query, body = good()
            return {k: v for k, v in {**query, **change}.items() if v}, body

        return make

    def with_body(transform: Callable[[bytes], bytes]) -> Callable[[], tuple[dict, bytes]]:
        def make() -> tuple[dict, bytes]:
            query, body = good()
            return query, transform(body)

        return make

    def signed(xml: str, receiver: str | None = None) -> Callable[[], tuple[dict, bytes]]:
        def make() -> tuple[dict, bytes]:
            query, body = wecom_request(WORK, xml, receiver)
            return query, body.encode()

        return make

    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;">]>'
        "<xml><ToUserName>x</ToUserName><Encrypt>&c;</Encrypt></xml>"
    )
    xxe = (
        '<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'
    )
    return [
        ("bad signature", with_query(msg_signature="0" * 40), (403,)),
        ("no signature", with_query(msg_signature=""), (400,)),
        ("other timestamp", with_query(timestamp="1"), (403,)),
        ("malformed XML", with_body(lambda b: b[:-7]), (400,)),
        ("not XML", with_body(lambda b: b"hello"), (400,)),
        ("empty", with_body(lambda b: b""), (400,)),
        ("XML bomb", with_body(lambda b: bomb.encode()), (400,)),
        ("external entity", with_body(lambda b: xxe.encode()), (400,)),
        ("too big", with_body(lambda b: b + b" " * 70_000), (413,)),
        ("not UTF-8", with_body(lambda b: b.replace(b"<xml>", "<xml>张".encode("gbk"))), (400,)),
        ("wrong CorpId", signed(good_xml, receiver="wx0000000000000000"), (403,)),
        ("inner bomb", signed(bomb.replace("Encrypt", "Content")), (400,)),
        ("inner garbage", signed("not xml at all"), (400,)),
        ("no MsgType", signed("<xml><FromUserName>a</FromUserName></xml>"), (400,)),
    ]


@pytest.mark.parametrize(
    "name, make, statuses", hostile_cases(), ids=[c[0] for c in hostile_cases()]
)
def test_hostile_posts_are_refused_and_change_nothing(
    work: FlaskClient,
    loaded_db: sqlite_utils.Database,
    dump_db: Callable[[sqlite_utils.Database], str],
    name: str,
    make: Callable[[], tuple[dict, bytes]],
    statuses: tuple[int, ...],
) -> None:
    before = dump_db(loaded_db)
    query, body = make()
    answer = work.post("/wechat", query_string=query, data=body)
    assert answer.status_code in statuses
    assert dump_db(loaded_db) == before


def test_control_characters_are_stripped_and_the_message_kept(
    post_work: Post, loaded_db: sqlite_utils.Database
) -> None:
    answer = post_work("lianghong", "张三\x0b 36.5\x01 正常\x1f")
    assert answer.status_code == 200
    assert inbox(loaded_db)[0]["text"] == "张三 36.5 正常"


# -- the Official Account ------------------------------------------------------------------


def mp_plain(client: FlaskClient, sender: str, text: str, msg_id: int) -> Any:
    query = {"timestamp": str(CREATED), "nonce": "42", "openid": sender}
    query["signature"] = sign("spamtest", query["timestamp"], query["nonce"])
    xml = inner_xml(sender, "text", f"<Content><![CDATA[{text}]]></Content>", msg_id, CREATED)
    return client.post("/wechat", query_string=query, data=xml.encode())


def test_mp_plaintext_mode(mp_plaintext: FlaskClient, loaded_db: sqlite_utils.Database) -> None:
    mp = mp_plaintext  # no EncodingAESKey set: WeChat's 明文模式
    for _ in range(3):
        answer = mp_plain(mp, "lianghong", "帮助", 11)
        assert answer.status_code == 200
        root = check_xml(answer.get_data(as_text=True))
        assert "上报请这样写" in root.findtext("Content")
    assert len(inbox(loaded_db)) == 1
    mp.application.extensions["gridwatch_wechat"].drain()  # after the reply
    window = loaded_db.execute("SELECT * FROM mp_windows").fetchall()
    assert window == [("lianghong", "2026-03-02T08:41:00+08:00", 0)]


def test_mp_plaintext_bad_signature(
    mp_plaintext: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    query = {"timestamp": str(CREATED), "nonce": "42", "signature": "f" * 40}
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 1, CREATED)
    answer = mp_plaintext.post("/wechat", query_string=query, data=xml.encode())
    assert answer.status_code == 403
    assert inbox(loaded_db) == []


def test_mp_safe_mode_and_binding(mp: FlaskClient, loaded_db: sqlite_utils.Database) -> None:
    person = loaded_db.execute("SELECT id FROM people WHERE name = '梁红'").fetchone()[0]
    loaded_db.execute("UPDATE people SET wechat_id = NULL WHERE id = ?", [person])
    code = create_invite(loaded_db, person, NOW)

    def say(text: str, msg_id: int) -> str:
        xml = inner_xml(
            "oOPENID123", "text", f"<Content><![CDATA[{text}]]></Content>", msg_id, CREATED
        )
        query, body = wecom_request(MP, xml)
        answer = mp.post("/wechat", query_string=query, data=body.encode())
        return open_reply(MP, answer.get_data(as_text=True)).findtext("Content")

    assert "绑定" in say("张三 36.5", 1)
    for _ in range(3):  # the retries of the binding message
        assert "绑定成功" in say(f"绑定 {code}", 2)
    assert loaded_db.execute("SELECT wechat_id FROM people WHERE id = ?", [person]).fetchone() == (
        "oOPENID123",
    )
    assert "已记录" in say("张三 36.5 正常", 3)
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 1


def test_mp_official_compatible_mode_message(
    mp: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    from tests.test_wechat_xml import MP_BODY, MP_POST

    answer = mp.post("/wechat", query_string=MP_POST, data=MP_BODY.encode())
    root = open_reply(MP, answer.get_data(as_text=True))
    assert "绑定" in root.findtext("Content")
    assert root.findtext("ToUserName") == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert inbox(loaded_db)[0]["dedup_key"] == "mp:msg:6054768590064713728"


# -- safe mode only, once an EncodingAESKey is set (DESIGN §5) ---------------------------------


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    tables = ("inbox", "outbox", "contacts", "needs", "audit")
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def logged_query() -> dict[str, str]:
    """What an access-log line of a genuine safe-mode callback gives away: its query."""
    xml = inner_xml("lianghong", "text", "<Content><![CDATA[帮助]]></Content>", 90, CREATED)
    return wecom_request(MP, xml)[0]


FORGED = [
    # who the forger pretends to be, what they send, and how they dress the query
    ("fever-report", "lianghong", "张三 39.5 发热 咳嗽", {}),
    ("secretary-command", "chenzhigang", "解除 张三", {}),
    ("need", "wuxiulan", "需求 张三 需要买药", {}),
    ("encrypt-type-raw", "lianghong", "张三 39.5", {"encrypt_type": "raw"}),
    ("encrypt-type-empty", "lianghong", "张三 39.5", {"encrypt_type": ""}),
]


@pytest.mark.parametrize(
    ("sender", "text", "dress"), [f[1:] for f in FORGED], ids=[f[0] for f in FORGED]
)
def test_a_plaintext_post_is_refused_once_an_aes_key_is_set(
    mp: FlaskClient, loaded_db: sqlite_utils.Database, sender: str, text: str, dress: dict
) -> None:
    """The plaintext signature covers token, timestamp and nonce, not the body: one copied
    from the access log is valid for any body. With an AES key set, none is accepted."""
    query = {k: v for k, v in logged_query().items() if k in ("signature", "timestamp", "nonce")}
    assert query["signature"] == sign(MP.token, query["timestamp"], query["nonce"])  # valid
    xml = inner_xml(sender, "text", f"<Content><![CDATA[{text}]]></Content>", 91, CREATED)
    before = counts(loaded_db)
    answer = mp.post("/wechat", query_string=query | dress, data=xml.encode())
    assert answer.status_code == 403
    assert "plaintext" in answer.text and text not in answer.text
    assert "gridwatch_wechat" not in mp.application.extensions  # the pipeline never ran
    assert counts(loaded_db) == before


def test_the_encrypted_callback_still_works_beside_the_refused_plaintext(
    mp: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    before = counts(loaded_db)
    plain = mp_plain(mp, "lianghong", "张三 36.5 正常", 92)
    assert plain.status_code == 403 and counts(loaded_db) == before
    xml = inner_xml(
        "lianghong", "text", "<Content><![CDATA[张三 36.5 正常]]></Content>", 92, CREATED
    )
    query, body = wecom_request(MP, xml)
    answer = mp.post("/wechat", query_string=query, data=body.encode())
    assert "已记录" in open_reply(MP, answer.text).findtext("Content")
    mp.application.extensions["gridwatch_wechat"].drain()
    after = counts(loaded_db)
    assert (after["inbox"], after["contacts"]) == (before["inbox"] + 1, before["contacts"] + 1)
    assert after["outbox"] == before["outbox"] + 1  # the reply


def test_compatible_mode_trusts_only_the_encrypted_part(
    mp: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    """兼容模式 sends the plaintext fields beside Encrypt; msg_signature covers only Encrypt,
    so the plaintext ones may be anything: only the decrypted message is read."""
    inner = inner_xml("lianghong", "text", "<Content><![CDATA[帮助]]></Content>", 93, CREATED)
    query, envelope = wecom_request(MP, inner)
    forged = (
        "<FromUserName><![CDATA[chenzhigang]]></FromUserName><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[张三 39.5 发热]]></Content><MsgId>94</MsgId>"
    )
    body = envelope.replace("<Encrypt>", forged + "<Encrypt>")
    answer = mp.post("/wechat", query_string=query, data=body.encode())
    assert "上报请这样写" in open_reply(MP, answer.text).findtext("Content")
    row = inbox(loaded_db)[-1]
    assert (row["sender"], row["text"], row["dedup_key"]) == ("lianghong", "帮助", "mp:msg:93")
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 0


def test_mp_subscribe_gets_a_welcome(mp: FlaskClient) -> None:
    xml = inner_xml("lianghong", "event", "<Event><![CDATA[subscribe]]></Event>", None, CREATED)
    query, body = wecom_request(MP, xml)
    root = open_reply(MP, mp.post("/wechat", query_string=query, data=body.encode()).text)
    assert "欢迎" in root.findtext("Content") and "上报请这样写" in root.findtext("Content")


# -- the 5-second rule ----------------------------------------------------------------------


@pytest.fixture
def busy_writer(db_path: Path) -> Iterator[Callable[[], None]]:
    """Another writer (a roster import, say) takes the database's write lock and keeps it
    0.3 s, past a reply budget of 0.01 s: the message waits for it in a worker thread."""
    fd = os.open(f"{db_path}-lock", os.O_RDWR | os.O_CREAT, 0o644)
    release = threading.Timer(0.3, fcntl.flock, (fd, fcntl.LOCK_UN))

    def start() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        release.start()

    yield start
    if release.ident is not None:  # started
        release.join()
    os.close(fd)


@pytest.fixture
def slow_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handed-off message, once stored, takes 0.3 s to handle: past a reply budget of
    0.01 s, so the request answers before the reply is ready."""
    import bot.wechat.reply as wechat_reply

    handle = wechat_reply.handle_stored

    def slowly(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        return handle(*args, **kwargs)

    monkeypatch.setattr(wechat_reply, "handle_stored", slowly)


def test_a_message_is_handled_in_the_request_when_the_write_lock_is_free(
    loaded_db: sqlite_utils.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.wechat.reply as wechat_reply

    handled_in = []
    handle = wechat_reply.handle_message

    def spy(*args: Any, **kwargs: Any) -> Any:
        handled_in.append(threading.current_thread())
        return handle(*args, **kwargs)

    monkeypatch.setattr(wechat_reply, "handle_message", spy)
    app = make_app(db_path, config_for(WORK, "http://127.0.0.1:9"))
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 54, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert "<Encrypt>" in answer.get_data(as_text=True)
    assert handled_in == [threading.current_thread()]  # the test client's request thread


def test_a_writer_that_takes_the_lock_while_the_message_is_read_sends_it_to_a_worker(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    busy_writer: Callable[[], None],
    slow_handling: None,
) -> None:
    """The lock was free when the message came, and an import took it before the message
    was written: nothing was stored by the request; a worker thread stores the message once,
    the request answers once it is stored, and the reply, late, goes through the API."""
    import handlers.pipeline as pipeline

    prepare = pipeline._prepare

    def then_an_import_starts(*args: Any) -> Any:
        step = prepare(*args)
        if threading.current_thread() is threading.main_thread():
            busy_writer()
        return step

    monkeypatch.setattr(pipeline, "_prepare", then_an_import_starts)
    fake = FakeWeChat(httpserver)
    app = make_app(db_path, config_for(WORK, fake.base), WECHAT_REPLY_BUDGET=0.01)
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 58, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert answer.get_data(as_text=True) == "success"
    app.extensions["gridwatch_wechat"].drain()
    [sent] = fake.sent("/cgi-bin/message/send")
    assert sent["touser"] == "lianghong" and "上报请这样写" in sent["text"]["content"]
    assert len(inbox(loaded_db)) == 1
    assert loaded_db.execute("SELECT kind, status FROM outbox").fetchall() == [("reply", "sent")]


def test_a_fever_is_answered_at_once_and_its_alert_goes_out_through_the_api(
    loaded_db: sqlite_utils.Database, db_path: Path, httpserver: HTTPServer
) -> None:
    """The passive reply does not wait for the alert: a worker thread sends it."""
    fake = FakeWeChat(httpserver)
    app = make_app(db_path, config_for(WORK, fake.base))
    xml = inner_xml("lianghong", "text", "<Content>张三 38.6 发烧</Content>", 57, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert "已记录" in open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")
    app.extensions["gridwatch_wechat"].drain()
    sent = fake.sent("/cgi-bin/message/send")
    assert {"chenzhigang", "huangyonghong"} == {call["touser"] for call in sent}
    # a template_card each: the alert in a few words, its buttons, the village's view of the day
    for call in sent:
        card = call["template_card"]
        assert call["msgtype"] == "template_card" and card["main_title"]["title"] == "异常预警"
        assert "张三 38.6℃" in card["sub_title_text"] and "/view/" in card["card_action"]["url"]
    statuses = set(loaded_db.execute("SELECT kind, status FROM outbox").fetchall())
    assert statuses == {("reply", "sent"), ("abnormal_alert", "sent")}


def test_a_failure_after_the_reply_is_logged_and_the_alert_stays_queued(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import bot.channels

    def broken(*args: Any) -> None:
        raise RuntimeError("the API client broke")

    monkeypatch.setattr(bot.channels, "deliver_message_alerts", broken)
    app = make_app(db_path, config_for(WORK, "http://127.0.0.1:9"))
    xml = inner_xml("lianghong", "text", "<Content>张三 38.6 发烧</Content>", 59, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert "已记录" in open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")
    app.extensions["gridwatch_wechat"].drain()
    [failure] = [r for r in caplog.records if r.exc_info]
    assert "inbox" in failure.getMessage() and "the API client broke" in str(failure.exc_info[1])
    alerts = loaded_db.execute("SELECT status FROM outbox WHERE kind != 'reply'").fetchall()
    assert alerts and {status for (status,) in alerts} == {"queued"}


def test_a_message_not_stored_within_wechats_patience_is_refused_and_never_stored(
    loaded_db: sqlite_utils.Database, db_path: Path, busy_writer: Callable[[], None]
) -> None:
    """A writer holds the lock past the time the request waits for the raw message to be
    stored: the request answers 503 (WeChat sends the message again) and the worker, when
    the lock comes free, does not store it behind the refusal."""
    app = make_app(
        db_path,
        config_for(WORK, "http://127.0.0.1:9"),
        WECHAT_REPLY_BUDGET=0.01,
        WECHAT_STORE_BUDGET=0.05,
    )
    busy_writer()  # 0.3 s
    xml = inner_xml("lianghong", "text", "<Content>张三 36.6</Content>", 62, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert answer.status_code == 503
    app.extensions["gridwatch_wechat"].drain()  # the worker got the lock and gave up
    assert inbox(loaded_db) == [] and loaded_db["outbox"].count == 0
    retried = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert "已记录" in open_reply(WORK, retried.get_data(as_text=True)).findtext("Content")
    assert [row["dedup_key"] for row in inbox(loaded_db)] == ["work:msg:62"]


def test_a_late_reply_answers_success_and_goes_through_the_api(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    httpserver: HTTPServer,
    busy_writer: Callable[[], None],
    slow_handling: None,
) -> None:
    fake = FakeWeChat(httpserver)
    app = make_app(db_path, config_for(WORK, fake.base), WECHAT_REPLY_BUDGET=0.01)
    busy_writer()
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 55, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert answer.get_data(as_text=True) == "success"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not fake.sent("/cgi-bin/message/send"):
        time.sleep(0.02)
    app.extensions["gridwatch_wechat"].drain()
    [sent] = fake.sent("/cgi-bin/message/send")
    assert sent["touser"] == "lianghong" and "上报请这样写" in sent["text"]["content"]
    row = loaded_db.execute("SELECT kind, status, attempts FROM outbox").fetchall()
    assert row == [("reply", "sent", 1)]


def test_a_message_that_must_wait_while_the_process_exits_is_left_to_wechats_retry(
    loaded_db: sqlite_utils.Database, db_path: Path, busy_writer: Callable[[], None]
) -> None:
    app = make_app(db_path, config_for(WORK, "http://127.0.0.1:9"), WECHAT_REPLY_BUDGET=0.01)
    client = app.test_client()
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 60, CREATED)
    query, body = wecom_request(WORK, xml)
    client.post("/wechat", query_string=query, data=body.encode())  # builds the runner
    app.extensions["gridwatch_wechat"].drain()  # the worker threads are gone
    busy_writer()
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 61, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = client.post("/wechat", query_string=query, data=body.encode())
    assert answer.status_code == 503  # nothing stored: WeChat sends it again
    assert [row["dedup_key"] for row in inbox(loaded_db)] == ["work:msg:60"]


def test_a_late_reply_is_queued_so_a_delivery_round_sends_it_if_the_worker_dies(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    busy_writer: Callable[[], None],
    slow_handling: None,
) -> None:
    """The worker handles the message after the request gave up, commits, and dies before
    it sends the reply (deliver_late never runs): the reply is 'queued', not 'sent', and the
    next delivery round sends it."""
    import bot.wechat.reply as wechat_reply
    from bot.channels import channel_for, deliver_pending

    fake = FakeWeChat(httpserver)
    monkeypatch.setattr(wechat_reply, "deliver_late", lambda *args: None)
    config = config_for(WORK, fake.base)
    app = make_app(db_path, config, WECHAT_REPLY_BUDGET=0.01)
    busy_writer()
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 56, CREATED)
    query, body = wecom_request(WORK, xml)
    answer = app.test_client().post("/wechat", query_string=query, data=body.encode())
    assert answer.get_data(as_text=True) == "success"
    app.extensions["gridwatch_wechat"].drain()
    assert loaded_db.execute("SELECT status FROM outbox").fetchall() == [("queued",)]
    a_minute_later = dt.datetime.fromtimestamp(CREATED + 60, TZ)
    assert deliver_pending(loaded_db, channel_for(config), a_minute_later) == 1
    [sent] = fake.sent("/cgi-bin/message/send")
    assert sent["touser"] == "lianghong" and "上报请这样写" in sent["text"]["content"]
    assert loaded_db.execute("SELECT status FROM outbox").fetchall() == [("sent",)]


def test_a_late_click_answers_success_its_reply_goes_through_the_api_and_a_retry_records_nothing(
    loaded_db: sqlite_utils.Database,
    db_path: Path,
    httpserver: HTTPServer,
    busy_writer: Callable[[], None],
    slow_handling: None,
) -> None:
    fake = FakeWeChat(httpserver)
    app = make_app(db_path, config_for(WORK, fake.base), WECHAT_REPLY_BUDGET=0.01)
    client = app.test_client()
    xml = inner_xml("lianghong", "text", "<Content>张三 38.6 发烧</Content>", 61, CREATED)
    query, body = wecom_request(WORK, xml)
    client.post("/wechat", query_string=query, data=body.encode())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(fake.sent("/cgi-bin/message/send")) < 2:
        time.sleep(0.02)
    [card] = [
        c["template_card"]
        for c in fake.sent("/cgi-bin/message/send")
        if c["msgtype"] == "template_card" and c["touser"] == "chenzhigang"
    ]
    key = card["button_list"][1]["key"]
    click = inner_xml(
        "chenzhigang",
        "event",
        "<Event><![CDATA[template_card_event]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{card['task_id']}]]></TaskId>"
        "<CardType><![CDATA[button_interaction]]></CardType>"
        "<ResponseCode><![CDATA[RC]]></ResponseCode>",
        None,
        CREATED + 30,
    )
    query, body = wecom_request(WORK, click)
    busy_writer()  # the click waits for the lock in a worker, past the reply budget
    answer = client.post("/wechat", query_string=query, data=body.encode())
    assert answer.get_data(as_text=True) == "success"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        c["touser"] == "chenzhigang" and c["msgtype"] == "text"
        for c in fake.sent("/cgi-bin/message/send")
    ):
        time.sleep(0.02)
    retry = client.post("/wechat", query_string=query, data=body.encode())  # WeChat's retry
    assert open_reply(WORK, retry.get_data(as_text=True)).findtext("MsgType") == "update_button"
    app.extensions["gridwatch_wechat"].drain()
    [reply] = [
        c["text"]["content"]
        for c in fake.sent("/cgi-bin/message/send")
        if c["touser"] == "chenzhigang" and c["msgtype"] == "text"
    ]
    assert "已处置" in reply
    assert loaded_db.execute("SELECT COUNT(*) FROM alert_acks").fetchone() == (1,)
    assert loaded_db.execute(
        "SELECT COUNT(*) FROM inbox WHERE type = 'template_card_event'"
    ).fetchone() == (1,)
