"""The callback's XML: size cap, control characters, a DTD-free parse, the fields we read.

Whatever a hostile body holds, these functions either return clean values or raise
`Rejected` with the HTTP status to answer: never anything else.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import defusedxml
import defusedxml.ElementTree as SafeTree

from bot.clock import from_timestamp
from handlers.pipeline import CARD_EVENT, Incoming

MAX_BODY = 64 * 1024  # a WeChat callback is a few KB; a 2,000-character text, encrypted, ~10 KB
# characters XML 1.0 forbids (expat stops at them), raw or as character references
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BAD_REFS = re.compile(
    r"&#(?:x0*(?:[0-8bcef]|1[0-9a-f]|fff[ef])|0*(?:[0-8]|1[124-9]|2\d|3[01]));", re.IGNORECASE
)
# a DTD is the only way to declare entities (bombs, external files); without one expat refuses
# any entity but the five predefined, so the C parser is safe and defusedxml is only needed
# when a DTD may be there (it refuses it, or finds the text inside a CDATA section)
_MAY_HAVE_DTD = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
WELCOME_EVENTS = frozenset({"subscribe", "subscribe_scan", "enter_agent"})
# CARD_EVENT: a click on a WeCom template_card's button (developer.work.weixin.qq.com/document/
# path/90376, 模板卡片事件推送): EventKey is the button's key, TaskId the card's task_id; the
# Incoming's text is the EventKey, its type the event's name


class Rejected(Exception):
    "The callback is refused; `status` is the HTTP answer, the message is for the log."

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Header:
    """Who a message came from and to: the passive reply goes back the other way."""

    sender: str  # FromUserName
    receiver: str  # ToUserName: our account (mp) or CorpID (work)
    agent: int | None = None  # AgentID (work)


@dataclass(frozen=True)
class Parsed:
    """The message's header, and what the pipeline gets (None: acknowledge and ignore)."""

    message: Header
    incoming: Incoming | None


def sanitize(text: str) -> str:
    """Drop the control characters (and references to them) that make expat fail."""
    return _BAD_REFS.sub("", _BAD_CHARS.sub("", text))


def decode_body(body: bytes) -> str:
    if len(body) > MAX_BODY:
        raise Rejected(413, f"body over {MAX_BODY} bytes")
    try:
        return sanitize(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None


def check_xml(text: str) -> ElementTree.Element:
    """Parse XML that has no DTD at all (no entities, no bombs) and is well-formed."""
    try:
        if _MAY_HAVE_DTD.search(text):
            root = SafeTree.fromstring(text, forbid_dtd=True)
        else:
            root = ElementTree.fromstring(text)
    except (defusedxml.DefusedXmlException, ElementTree.ParseError) as error:
        raise Rejected(400, f"bad XML: {type(error).__name__}") from None
    if root.tag != "xml":
        raise Rejected(400, "the root element is not <xml>")
    return root


def parse(kind: str, xml: str, tz: dt.tzinfo, received_at: dt.datetime) -> Parsed:
    """Check the XML and build the pipeline's Incoming from the fields WeChat documents.

    The fields are read from the tree `check_xml` built: parsing a second time through
    wechatpy's parse_message (xmltodict) cost a tenth of the callback's budget.
    """
    root = check_xml(xml)

    def field(name: str) -> str:
        return (root.findtext(name) or "").strip()

    sender, msg_type = field("FromUserName"), field("MsgType").lower()
    if not sender:
        raise Rejected(400, "no FromUserName")
    if not msg_type:
        raise Rejected(400, "not a WeChat message: no MsgType")
    try:
        created = int(field("CreateTime"))
        msg_id = int(field("MsgId") or 0)
        agent = int(field("AgentID")) if field("AgentID") else None
        at = from_timestamp(created, tz)
    except (ValueError, OverflowError, OSError):
        raise Rejected(400, "not a WeChat message: a malformed number") from None
    header = Header(sender, field("ToUserName"), agent)
    base = {"channel": kind, "sender": sender, "at": at, "received_at": received_at, "raw": xml}
    if msg_type == "event" or msg_type.startswith("device_"):
        event = field("Event").lower()
        if event == CARD_EVENT and kind == "work":
            # WeChat's retries repeat the whole event; two clicks in one second differ in
            # their card or button
            key = f"{kind}:event:{sender}:{created}:{field('TaskId')}:{field('EventKey')}"
            text = field("EventKey")
            return Parsed(header, Incoming(text=text, type=CARD_EVENT, dedup_key=key, **base))
        if event not in WELCOME_EVENTS:
            return Parsed(header, None)
        key = f"{kind}:event:{sender}:{created}"
        return Parsed(header, Incoming(text="", type="event", dedup_key=key, **base))
    key = f"{kind}:msg:{msg_id}" if msg_id else f"{kind}:event:{sender}:{created}"
    if msg_type == "text":
        text = field("Content")
    elif msg_type == "voice":
        text = field("Recognition")
    else:
        text = ""
    return Parsed(header, Incoming(text=text, type=msg_type, dedup_key=key, **base))


def _cdata(text: str) -> str:
    # a "]]>" in the text would end the section early: split it across two sections
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_button(message: Header, name: str, now: float | None = None) -> str:
    """The passive reply to a template_card_event that turns the clicking member's buttons
    into one that cannot be clicked, reading `name` (developer.work.weixin.qq.com/document/
    path/90241, 模板卡片更新消息 → 更新点击用户的按钮文案: MsgType update_button,
    Button.ReplaceName)."""
    stamp = int(now if now is not None else time.time())
    return (
        f"<xml><ToUserName>{_cdata(message.sender)}</ToUserName>"
        f"<FromUserName>{_cdata(message.receiver)}</FromUserName>"
        f"<CreateTime>{stamp}</CreateTime><MsgType><![CDATA[update_button]]></MsgType>"
        f"<Button><ReplaceName>{_cdata(sanitize(name))}</ReplaceName></Button></xml>"
    )


def render_reply(kind: str, message: Header, text: str, now: float | None = None) -> str:
    """The passive text reply to `message`, as XML (WeChat's documented text reply)."""
    stamp = int(now if now is not None else time.time())
    agent = f"<AgentID>{message.agent}</AgentID>" if kind == "work" and message.agent else ""
    return (
        f"<xml><ToUserName>{_cdata(message.sender)}</ToUserName>"
        f"<FromUserName>{_cdata(message.receiver)}</FromUserName>"
        f"<CreateTime>{stamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(sanitize(text))}</Content>{agent}</xml>"
    )
