"""The callback's XML: size cap, control characters, defusedxml pre-check, wechatpy parsing.

Whatever a hostile body holds, these functions either return clean values or raise
`Rejected` with the HTTP status to answer: never anything else.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeTree

from bot.clock import from_timestamp
from handlers.pipeline import Incoming

MAX_BODY = 64 * 1024  # a WeChat callback is a few KB; a 2,000-character text, encrypted, ~10 KB
# characters XML 1.0 forbids (expat stops at them), raw or as character references
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BAD_REFS = re.compile(
    r"&#(?:x0*(?:[0-8bcef]|1[0-9a-f]|fff[ef])|0*(?:[0-8]|1[124-9]|2\d|3[01]));", re.IGNORECASE
)
WELCOME_EVENTS = frozenset({"subscribe", "subscribe_scan", "enter_agent"})


class Rejected(Exception):
    "The callback is refused; `status` is the HTTP answer, the message is for the log."

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Parsed:
    """The wechatpy message, and what the pipeline gets (None: acknowledge and ignore)."""

    message: Any
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
    """Parse with defusedxml: no DTD at all (no entities, no bombs), and well-formed."""
    try:
        root = SafeTree.fromstring(text, forbid_dtd=True)
    except (defusedxml.DefusedXmlException, ElementTree.ParseError) as error:
        raise Rejected(400, f"bad XML: {type(error).__name__}") from None
    if root.tag != "xml":
        raise Rejected(400, "the root element is not <xml>")
    return root


def parse(kind: str, xml: str, tz: dt.tzinfo, received_at: dt.datetime) -> Parsed:
    """Check, parse through wechatpy, and build the pipeline's Incoming."""
    check_xml(xml)
    if kind == "work":
        from wechatpy.enterprise import parse_message
    else:
        from wechatpy import parse_message
    try:
        message = parse_message(xml)
        sender, created = str(message.source or ""), int(message.time)
        at = from_timestamp(created, tz)
        msg_id = message.id
    except Exception:  # a missing or malformed field, seen by wechatpy's converters
        raise Rejected(400, "not a WeChat message") from None
    if not sender:
        raise Rejected(400, "no FromUserName")
    base = {"channel": kind, "sender": sender, "at": at, "received_at": received_at, "raw": xml}
    msg_type = str(message._data.get("MsgType") or "").lower()
    if msg_type == "event" or msg_type.startswith("device_"):
        if str(message._data.get("Event") or "").lower() not in WELCOME_EVENTS:
            return Parsed(message, None)
        key = f"{kind}:event:{sender}:{created}"
        return Parsed(message, Incoming(text="", type="event", dedup_key=key, **base))
    key = f"{kind}:msg:{msg_id}" if msg_id else f"{kind}:event:{sender}:{created}"
    if msg_type == "text":
        text = str(message._data.get("Content") or "")
    elif msg_type == "voice":
        text = str(message._data.get("Recognition") or "")
    else:
        text = ""
    return Parsed(message, Incoming(text=text, type=msg_type, dedup_key=key, **base))


def render_reply(kind: str, message: Any, text: str, now: float | None = None) -> str:
    """The passive text reply to `message`, as XML."""
    if kind == "work":
        from wechatpy.enterprise.replies import TextReply
    else:
        from wechatpy.replies import TextReply
    # wechatpy writes CDATA as is: a "]]>" in the text would end it early
    content = sanitize(text).replace("]]>", "]]]]><![CDATA[>")
    stamp = int(now if now is not None else time.time())
    return TextReply(message=message, content=content, time=stamp).render()
