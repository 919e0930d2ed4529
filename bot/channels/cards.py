"""What a message is, in a few words, for the channels that show it as more than text.

A scheduled job gives each message a card (outbox.card, JSON): a title (早间联系提醒), a
summary (6人待联系) and the page that shows the whole message: `member` (the member's page
of that day) or `view` (the secretary view of `unit`). From it a channel builds what it
sends: an Official Account template's three fields (each at most 20 characters on one line,
DESIGN §5) and its url, or a WeCom `textcard`. The message's time is the row's own `at`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html import escape

import sqlite_utils

from bot.config import Config, Template
from bot.links import member_link, view_link
from handlers.acks import button_key
from storage.outbox import card_of

FIELD_CHARS = 20  # WeChat cuts a template field's value after 20 characters (since 2023-05-04)
CARD_TITLE_BYTES = 128  # WeCom textcard limits
CARD_DESCRIPTION_BYTES = 512
CARD_BUTTON = "详情"
# a card's title when its job gave none (a template configured for a kind with no card)
KIND_TITLES = {
    "prompt": "联系提醒",
    "reminder": "催报提醒",
    "missed_alert": "未报预警",
    "abnormal_alert": "异常预警",
    "unreachable_alert": "联系不上预警",
    "absent_alert": "外出预警",
    "digest": "监测汇总",
    "release": "解除通知",
    "correction": "更正通知",
    "escalation": "升级提醒",
    "review": "周报",
}
_SPACE = re.compile(r"\s+")
_LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Card:
    """A message in a few words: one line each, cut to fit, and the link to the whole of it."""

    title: str
    time: str
    summary: str
    url: str | None


def one_line(text: str, limit: int = FIELD_CHARS) -> str:
    """`text` on one line of at most `limit` characters; what is cut ends in …"""
    line = _SPACE.sub(" ", _LINK.sub("", text)).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def fit_bytes(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, cut between characters, … where cut."""
    if len(text.encode()) <= limit:
        return text
    while len((text + "…").encode()) > limit:
        text = text[:-1]
    return text + "…"


def time_label(at: dt.datetime) -> str:
    """3月2日 08:00, as dates read in chat."""
    return f"{at.month}月{at.day}日 {at:%H:%M}"


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def page_link(db: sqlite_utils.Database, config: Config, row: dict, now: dt.datetime) -> str | None:
    """The signed link to the page that shows the row's whole message, if it has one."""
    card = card_of(row)
    page, day_text = card.get("page"), card.get("day")
    if not page or not isinstance(day_text, str):
        return None
    try:
        day = dt.date.fromisoformat(day_text)
    except ValueError:
        return None
    if page == "member" and row.get("person_id"):
        return member_link(db, config, int(row["person_id"]), day, now, row["id"])
    if page == "view" and isinstance(card.get("unit"), str):
        return view_link(db, config, card["unit"], day, now, row["id"])
    return None


def card_for(db: sqlite_utils.Database, config: Config, row: dict, now: dt.datetime) -> Card:
    """The row as a card: its job's title and summary (else its kind and first line)."""
    card = card_of(row)
    at = dt.datetime.fromisoformat(row["at"]).astimezone(config.tz)
    fallback = KIND_TITLES.get(row["kind"], "通知")
    title = one_line(str(card.get("title") or "")) or fallback  # blank after folding: its kind
    summary = str(card.get("summary") or first_line(row["text"]))
    return Card(
        title=title,
        time=one_line(time_label(at)),
        summary=one_line(summary) or "详见全文",
        url=page_link(db, config, row, now),
    )


def template_body(row: dict, template: Template, card: Card) -> dict:
    """An Official Account template message (/cgi-bin/message/template/send)."""
    body: dict = {
        "touser": row["recipient"],
        "template_id": template.id,
        "data": {
            template.title: {"value": card.title},
            template.time: {"value": card.time},
            template.summary: {"value": card.summary},
        },
    }
    if card.url:
        body["url"] = card.url
    return body


def textcard(card: Card) -> dict:
    """A WeCom textcard: title, a short description (time, summary), the link, 详情."""
    if not card.url:
        raise ValueError("a textcard needs a link")
    description = (
        f'<div class="gray">{escape(card.time)}</div>'
        f'<div class="normal">{escape(card.summary)}</div>'
        '<div class="highlight">点击查看全文</div>'
    )
    return {
        "title": fit_bytes(card.title, CARD_TITLE_BYTES),
        "description": fit_bytes(description, CARD_DESCRIPTION_BYTES),
        "url": card.url,
        "btntxt": CARD_BUTTON,
    }


# WeCom template_card (发送应用消息 → 模板卡片消息, card_type button_interaction): an alert that
# needs acknowledging, with its buttons. The limits are WeCom's documented ones (developer.work.
# weixin.qq.com/document/path/90236): task_id at most 128 bytes of letters, digits and _-@,
# unique within the app; button_list at most 6 buttons, a button's text at most 10 characters
# and its key at most 1024 bytes; main_title.title at most 36 characters (26 for a group
# robot: the stricter is kept), main_title.desc 44 (30), sub_title_text 160 (112).
TASK_ID_BYTES = 128
TASK_ID = re.compile(r"^[A-Za-z0-9_\-@]{1,128}$")
BUTTONS_MAX = 6
BUTTON_TEXT_CHARS = 10
BUTTON_KEY_BYTES = 1024
MAIN_TITLE_CHARS = 26
MAIN_DESC_CHARS = 30
SUB_TITLE_CHARS = 112
# what each button records (handlers.acks), and its key in the click event (EventKey)
ACK_BUTTONS = (("received", "收到", 2), ("handled", "已处置", 1))  # action, text, style


def task_id_for(row: dict, number: int) -> str:
    """The card's task_id: the alert's number and the outbox row's id, with the second the
    row was queued so that a database started afresh never repeats one WeCom has seen."""
    stamp = int(dt.datetime.fromisoformat(row["at"]).timestamp())
    return f"gw-alert{number}-row{row['id']}-{stamp}"


def button_card(card: Card, number: int, task_id: str) -> dict:
    """A WeCom template_card of type button_interaction: the alert in a few words, the link
    to its page (the whole card opens it), and the buttons 收到 / 已处置 (DESIGN §5, §11)."""
    if not TASK_ID.match(task_id):
        raise ValueError(f"bad task_id {task_id!r}")
    body: dict = {
        "card_type": "button_interaction",
        "main_title": {
            "title": one_line(card.title, MAIN_TITLE_CHARS) or "预警提醒",
            "desc": one_line(f"{card.time} 编号 {number}", MAIN_DESC_CHARS),
        },
        "sub_title_text": one_line(card.summary, SUB_TITLE_CHARS) or "详见全文",
        "task_id": task_id,
        "button_list": [
            {"type": 0, "text": text, "style": style, "key": button_key(action, number)}
            for action, text, style in ACK_BUTTONS
        ],
    }
    if card.url:
        body["card_action"] = {"type": 1, "url": card.url}
    return body


def button_done(name: str) -> str:
    """What a handled alert's buttons become for the one who clicked (≤ 10 characters)."""
    return one_line(f"已处置·{name}", BUTTON_TEXT_CHARS)
