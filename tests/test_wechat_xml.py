"""The callback's wire format: official crypto vectors, hostile XML, wechatpy parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.config import ChannelSettings
from bot.wechat.crypto import check_signature, decrypt, open_envelope, seal, sign, verify_url
from bot.wechat.message_xml import (
    MAX_BODY,
    Header,
    Rejected,
    check_xml,
    decode_body,
    parse,
    render_reply,
)
from tests.conftest import TZ
from tests.fake_wechat import MP, WORK

RECEIVED = dt.datetime(2026, 3, 2, 8, 41, tzinfo=TZ)

# WeCom's WXBizMsgCrypt sample (every language of the official download): VerifyURL
WECOM_VERIFY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp"
    "+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
# ... and DecryptMsg
WECOM_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj"
    "911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue0"
    "6DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+"
    "3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MB"
    "H27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDB"
    "S8R07+qN+E7Q=="
)
WECOM_POST = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
}
WECOM_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    f"<Encrypt><![CDATA[{WECOM_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
)
# The Official Account's sample (WXBizMsgCrypt Sample.py, token "spamtest"): a compatible-mode
# message, plaintext fields and Encrypt side by side
MP_POST = {
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "encrypt_type": "aes",
}
MP_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA["
    "oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType>"
    "<![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728"
    "</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+L"
    "rPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C4"
    "1IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6"
    "KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1"
    "DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
    "]]></Encrypt></xml>"
)
# The Official Account's Java sample test (WXBizMsgCryptTest): AES with a fixed random prefix
MP_JAVA = ChannelSettings(
    kind="mp",
    token="pamtest",
    aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    app_id="wxb11529c136998cb6",
)
MP_JAVA_CIPHERTEXT = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)


def test_wecom_official_verify_url_vector() -> None:
    assert verify_url(WORK, WECOM_VERIFY) == "1616140317555161061"


def test_wecom_verify_url_tolerates_an_unescaped_plus() -> None:
    args = {**WECOM_VERIFY, "echostr": WECOM_VERIFY["echostr"].replace("+", " ")}
    assert verify_url(WORK, args) == "1616140317555161061"


def test_wecom_official_decrypt_vector() -> None:
    envelope = open_envelope(WORK, WECOM_POST, WECOM_BODY)
    assert envelope.encrypted
    parsed = parse("work", envelope.xml, TZ, RECEIVED)
    incoming = parsed.incoming
    assert incoming is not None
    assert (incoming.sender, incoming.text, incoming.type) == ("mycreate", "hello", "text")
    assert incoming.dedup_key == "work:msg:4561255354251345929"
    assert incoming.at == dt.datetime.fromtimestamp(1409659813, TZ)
    assert parsed.message == Header("mycreate", "wx5823bf96d3bd56c7", 218)


def test_mp_official_compatible_mode_vector() -> None:
    envelope = open_envelope(MP, MP_POST, MP_BODY)
    assert envelope.encrypted
    assert "<Content><![CDATA[abcdteT]]></Content>" in envelope.xml
    incoming = parse("mp", envelope.xml, TZ, RECEIVED).incoming
    assert incoming is not None
    assert incoming.sender == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert incoming.dedup_key == "mp:msg:6054768590064713728"


def test_mp_official_java_aes_vector() -> None:
    assert decrypt(MP_JAVA, MP_JAVA_CIPHERTEXT) == "我是中文abcd123"


def test_signature_is_sha1_of_the_sorted_parts() -> None:
    assert sign("QDG6eK", "1409659813", "1372623149", WECOM_ENCRYPT) == WECOM_POST["msg_signature"]


@pytest.mark.parametrize(
    "given",
    [None, "", "0" * 40, WECOM_POST["msg_signature"].upper(), "签名" * 20, "x"],
)
def test_a_bad_signature_is_refused(given: str | None) -> None:
    with pytest.raises(Rejected) as refused:
        check_signature(given, "QDG6eK", "1409659813", "1372623149", WECOM_ENCRYPT)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "settings, status",
    [
        (ChannelSettings(**{**WORK.__dict__, "corp_id": "wx0000000000000000"}), 403),
        (ChannelSettings(**{**WORK.__dict__, "aes_key": "A" * 43}), 400),
        (ChannelSettings(**{**WORK.__dict__, "aes_key": ""}), 400),
    ],
)
def test_wrong_corp_id_or_key_is_refused(settings: ChannelSettings, status: int) -> None:
    with pytest.raises(Rejected) as refused:
        open_envelope(settings, WECOM_POST, WECOM_BODY)
    assert refused.value.status == status


@pytest.mark.parametrize(
    "encrypted",
    ["", "not base64!", "QUJD", "A" * 24, "A" * 64 + "==", WECOM_ENCRYPT[:-8] + "AAAAAA=="],
)
def test_garbage_ciphertext_is_a_clean_400(encrypted: str) -> None:
    with pytest.raises(Rejected) as refused:
        decrypt(WORK, encrypted)
    assert refused.value.status in (400, 403)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><Content>&lol3;</Content></xml>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"""


@pytest.mark.parametrize(
    "text",
    [BOMB, XXE, "<xml><a></xml>", "not xml", "", "<other/>", "<xml>&undefined;</xml>"],
)
def test_hostile_xml_is_refused(text: str) -> None:
    with pytest.raises(Rejected) as refused:
        check_xml(text)
    assert refused.value.status == 400


def test_control_characters_are_stripped() -> None:
    body = "<xml><Content><![CDATA[张三\x0036.5\x08 正常\x1f]]></Content><X>&#x8;&#11;a</X></xml>"
    text = decode_body(body.encode())
    root = check_xml(text)
    assert root.findtext("Content") == "张三36.5 正常"
    assert root.findtext("X") == "a"


def test_oversized_and_non_utf8_bodies() -> None:
    with pytest.raises(Rejected) as refused:
        decode_body(b"<xml>" + b"a" * MAX_BODY + b"</xml>")
    assert refused.value.status == 413
    with pytest.raises(Rejected) as refused:
        decode_body("<xml>张三</xml>".encode("gbk"))
    assert refused.value.status == 400


def message(kind: str, msg_type: str, extra: str, sender: str = "lianghong") -> str:
    return (
        f"<xml><ToUserName><![CDATA[to]]></ToUserName><FromUserName><![CDATA[{sender}]]>"
        f"</FromUserName><CreateTime>1772412060</CreateTime><MsgType><![CDATA[{msg_type}]]>"
        f"</MsgType>{extra}</xml>"
    )


@pytest.mark.parametrize(
    "kind, msg_type, extra, expected",
    [
        ("work", "text", "<Content>张三 36.5</Content><MsgId>1</MsgId>", ("text", "张三 36.5")),
        (
            "mp",
            "voice",
            "<Recognition>张三三十六度五</Recognition><MsgId>2</MsgId>",
            ("voice", "张三三十六度五"),
        ),
        (
            "work",
            "voice",
            "<MediaId>m</MediaId><Format>amr</Format><MsgId>3</MsgId>",
            ("voice", ""),
        ),
        ("mp", "image", "<PicUrl>http://x/y.jpg</PicUrl><MsgId>4</MsgId>", ("image", "")),
        ("work", "location", "<Location_X>23.1</Location_X><MsgId>5</MsgId>", ("location", "")),
        ("mp", "file", "<Title>a.xlsx</Title><MsgId>6</MsgId>", ("file", "")),
        ("mp", "event", "<Event>subscribe</Event>", ("event", "")),
        ("mp", "event", "<Event>subscribe</Event><EventKey>qrscene_1</EventKey>", ("event", "")),
        ("work", "event", "<Event>enter_agent</Event><AgentID>1</AgentID>", ("event", "")),
    ],
)
def test_messages_become_incoming(
    kind: str, msg_type: str, extra: str, expected: tuple[str, str]
) -> None:
    incoming = parse(kind, message(kind, msg_type, extra), TZ, RECEIVED).incoming
    assert incoming is not None
    assert (incoming.type, incoming.text) == expected
    assert incoming.at == dt.datetime(2026, 3, 2, 8, 41, tzinfo=TZ)
    assert incoming.channel == kind and incoming.sender == "lianghong"
    if msg_type == "event":
        assert incoming.dedup_key == f"{kind}:event:lianghong:1772412060"
    else:
        assert incoming.dedup_key.startswith(f"{kind}:msg:")


@pytest.mark.parametrize(
    "event", ["unsubscribe", "LOCATION", "CLICK", "TEMPLATESENDJOBFINISH", "view", "whatever"]
)
def test_other_events_are_acknowledged_not_handled(event: str) -> None:
    assert (
        parse("mp", message("mp", "event", f"<Event>{event}</Event>"), TZ, RECEIVED).incoming
        is None
    )


@pytest.mark.parametrize(
    "text",
    [
        "<xml><FromUserName>a</FromUserName></xml>",  # no MsgType
        message("mp", "text", "<Content>x</Content>").replace("1772412060", "soon"),
        message("mp", "text", "<Content>x</Content><MsgId>x1</MsgId>"),
        message("mp", "text", "<Content>x</Content>", sender=""),
        "<xml><MsgType><a>1</a></MsgType></xml>",
    ],
)
def test_malformed_messages_are_refused(text: str) -> None:
    with pytest.raises(Rejected):
        parse("mp", text, TZ, RECEIVED)


def test_reply_cannot_break_out_of_its_cdata() -> None:
    incoming = parse(
        "mp", message("mp", "text", "<Content>x</Content><MsgId>1</MsgId>"), TZ, RECEIVED
    )
    xml = render_reply("mp", incoming.message, "没看懂：]]><MsgType>evil</MsgType>\x08", 1772412061)
    root = check_xml(xml)
    assert root.findtext("Content") == "没看懂：]]><MsgType>evil</MsgType>"
    assert root.findtext("MsgType") == "text"
    assert root.findtext("ToUserName") == "lianghong"
    assert root.findtext("CreateTime") == "1772412061"


def test_sealed_reply_opens_with_wechatpy() -> None:
    from wechatpy.enterprise.crypto import WeChatCrypto

    sealed = seal(WORK, "<xml><Content>好</Content></xml>", 1772412061)
    root = check_xml(sealed)
    crypto = WeChatCrypto(WORK.token, WORK.aes_key, WORK.corp_id)
    opened = crypto.decrypt_message(
        sealed, root.findtext("MsgSignature"), root.findtext("TimeStamp"), root.findtext("Nonce")
    )
    assert opened == "<xml><Content>好</Content></xml>"


def test_work_reply_is_addressed_back_with_the_agent() -> None:
    parsed = parse(
        "work",
        message("work", "text", "<Content>x</Content><MsgId>1</MsgId><AgentID>1000002</AgentID>"),
        TZ,
        RECEIVED,
    )
    root = check_xml(render_reply("work", parsed.message, "好", 1772412061))
    assert [root.findtext(tag) for tag in ("ToUserName", "FromUserName", "AgentID")] == [
        "lianghong",
        "to",
        "1000002",
    ]


@pytest.mark.parametrize("typed", ["<!DOCTYPE html> 张三 36.5", "<!ENTITY x> 正常"])
def test_a_dtd_typed_inside_a_message_is_only_text(typed: str) -> None:
    xml = message("work", "text", f"<Content><![CDATA[{typed}]]></Content><MsgId>9</MsgId>")
    incoming = parse("work", xml, TZ, RECEIVED).incoming
    assert incoming is not None and incoming.text == typed
