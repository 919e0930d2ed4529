"""The member's page (DESIGN §8): opened from the signed link in a prompt, a reminder or an
Official Account template. It shows that day's subjects × slots of one member, the whole text
of the message that carried the link, and a form to report each subject by tapping.

A tap is recorded exactly as a chat report: it becomes the text a member would type
(`张三 37.6 咳嗽`), stored raw in the inbox (channel `web`) and handled by the same pipeline,
so replies, alerts and corrections are the same. The link is the credential: the form
repeats the token (a cross-site page cannot know it), submissions are POST only, and a
request from another origin is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import sqlite_utils
from flask import Blueprint, redirect, render_template, request, url_for

from bot.channels import deliver_message_alerts
from bot.config import SLOTS, Config
from bot.links import LinkError, NoKey, link_key, read_member_token
from bot.web.app import get_context
from bot.web.sim import sim_now
from bot.web.views import CELL_CN, SLOT_CN, ViewError, cell, day_label, private, view_error
from handlers.pipeline import Incoming, handle_message
from handlers.reports import monitoring_day
from handlers.symptoms import SYMPTOMS
from storage.contacts import contacts_on
from storage.people import get_person, roles_of
from storage.subjects import member_subjects

bp = Blueprint("member", __name__, url_prefix="/me")

CHOICES = {"normal": "正常", "symptoms": "有症状", "unreachable": "联系不上", "absent": "外出"}
SYMPTOM_CHOICES = tuple(SYMPTOMS)  # the canonical names the parser knows
_TEMPERATURE = re.compile(r"^\d{2}(\.\d)?$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
LINK_LINE = "逐人填报："
PROBLEMS = {
    "choice": "请选择情况",
    "temperature": "体温请填 34.0–42.5 之间的数字，例如 36.5",
    "symptoms": "请勾选症状",
    "nonce": "请刷新页面后再填报",
    "unbound": "您还未绑定微信，请先在聊天中发送绑定码",
}  # the line a prompt's text ends with (schedules/runner.py)


def _open(token: str) -> tuple[sqlite_utils.Database, Config, dict, dt.date, int | None]:
    """The database, settings, member, date and message id a token grants, or a ViewError."""
    ctx = get_context()
    now = sim_now(ctx.db, ctx.config)
    try:
        person_id, day, message = read_member_token(
            link_key(ctx.db, ctx.config), token, now, ctx.config.link_days
        )
    except LinkError as error:
        raise ViewError(403, "链接无法打开", str(error)) from None
    except NoKey:
        raise ViewError(503, "链接暂时无法打开", "系统尚未设置签名密钥，请联系管理员。") from None
    person = get_person(ctx.db, person_id)
    if person is None or not person["active"] or "member" not in roles_of(person):
        raise ViewError(404, "找不到该网格员", "链接中的网格员已不在名单中，请联系管理员。")
    return ctx.db, ctx.config, person, day, message


def message_text(db: sqlite_utils.Database, message: int | None, person: dict) -> str | None:
    """The whole text of the message that carried the link, when it was sent to this member."""
    if not message:
        return None
    row = db.execute("SELECT person_id, text FROM outbox WHERE id = ?", [message]).fetchone()
    if row is None or row[0] != person["id"]:
        return None
    return "\n".join(line for line in row[1].splitlines() if not line.startswith(LINK_LINE))


def reply_of(db: sqlite_utils.Database, inbox_id: str | None, person: dict) -> dict | None:
    """What the bot answered to this member's report from the page (`?done=` inbox id)."""
    if not inbox_id or not inbox_id.isdigit():
        return None
    row = db.execute(
        "SELECT text, reply FROM inbox WHERE id = ? AND person_id = ? AND channel = 'web'",
        [int(inbox_id), person["id"]],
    ).fetchone()
    return {"text": row[0], "reply": row[1] or ""} if row else None


def subject_rows(
    db: sqlite_utils.Database, config: Config, person: dict, day: dt.date, now: dt.datetime
) -> list[dict]:
    """This member's subjects on `day`, each with its three slots (as the secretary sees)."""
    subjects = member_subjects(db, person["id"], day)
    reported = contacts_on(db, [s["id"] for s in subjects], day)
    deadlines = {
        slot: dt.datetime.combine(day, config.slots[slot].deadline, tzinfo=config.tz)
        for slot in SLOTS
    }
    return [
        {
            "id": s["id"],
            "name": s["name"],
            "category": s["category"],
            "cells": {
                slot: cell(reported.get((s["id"], slot)), deadlines[slot], now) for slot in SLOTS
            },
        }
        for s in subjects
    ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compose(name: str, choice: str, temperature: str, symptoms: list[str]) -> str:
    """The chat text a tap stands for (DESIGN §3), e.g. 张三 37.6 咳嗽."""
    if choice == "unreachable":
        return f"{name} 联系不上"
    if choice == "absent":
        return f"{name} 外出"
    words = [name, temperature] if temperature else [name]
    if choice == "symptoms":
        return " ".join([*words, *symptoms])
    return " ".join([*words, "正常"])


def _same_origin(config: Config) -> bool:
    """A browser names the site a POST came from; another site's is refused. No name, or
    "null" (what a browser says under our no-referrer policy), proves nothing either way:
    the token in the form is what a cross-site page cannot have."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc in {request.host, urlsplit(config.public_url).netloc}


bp.register_error_handler(ViewError, view_error)
bp.after_request(private)


@bp.get("/<token>")
def page(token: str) -> str:
    db, config, person, day, message = _open(token)
    now = sim_now(db, config)
    rows = subject_rows(db, config, person, day, now)
    for row in rows:  # each form once: a second submit of it (a double tap) is one report
        row["nonce"] = secrets.token_hex(16)
    return render_template(
        "member.html",
        token=token,
        person=person,
        day=day,
        day_label=day_label(day),
        rows=rows,
        message=message_text(db, message, person),
        done=reply_of(db, request.args.get("done"), person),
        error=PROBLEMS.get(request.args.get("error", ""), ""),
        open_for_reports=monitoring_day(now) == day,
        slots=SLOTS,
        slot_cn=SLOT_CN,
        cell_cn=CELL_CN,
        choices=CHOICES,
        symptom_choices=SYMPTOM_CHOICES,
    )


@bp.post("/<token>")
def report(token: str) -> Any:
    db, config, person, day, _message = _open(token)
    ctx = get_context()
    form = request.form
    back = url_for("member.page", token=token)
    if form.get("token") != token or not _same_origin(config):
        raise ViewError(403, "无法提交", "请从提醒消息中的链接重新打开本页后再填报。", back)
    now = sim_now(db, config)
    if monitoring_day(now) != day:
        raise ViewError(409, "只能填报当天", "本页是往日的记录，请从今天的提醒消息打开。", back)
    subject = next(
        (s for s in member_subjects(db, person["id"], day) if str(s["id"]) == form.get("subject")),
        None,
    )
    if subject is None:  # the same answer for "no such subject" and "someone else's"
        raise ViewError(404, "找不到该监测对象", "您今天负责的监测对象中没有这一位。", back)
    choice = form.get("choice", "")
    temperature = form.get("temperature", "").strip()
    symptoms = [s for s in form.getlist("symptom") if s in SYMPTOM_CHOICES]
    nonce = form.get("nonce", "")
    problem = ""
    if choice not in CHOICES:
        problem = "choice"
    elif temperature and not (
        _TEMPERATURE.match(temperature) and 34.0 <= float(temperature) <= 42.5
    ):
        problem = "temperature"  # what the parser would not take as a reading is asked again
    elif choice == "symptoms" and not symptoms:
        problem = "symptoms"
    elif not _NONCE.match(nonce):
        problem = "nonce"
    elif not person["wechat_id"]:
        problem = "unbound"
    if problem:
        return redirect(f"{back}?error={problem}#s{subject['id']}", code=303)
    text = compose(subject["name"], choice, temperature, symptoms)
    handled = handle_message(
        ctx,
        Incoming(
            channel="web",
            sender=person["wechat_id"],
            text=text,
            at=now,
            received_at=now,
            # a second submit of the same form and answer (a double tap, a refresh) is one
            # report; a different answer on the same form (正常, then 有症状) is recorded too
            dedup_key=f"web:{person['id']}:{nonce}:{_digest(text)}",
        ),
        reply_status="sent",  # the page shows it
    )
    if handled.alerts:
        deliver_message_alerts(db, config, handled.inbox_id, now)
    return redirect(f"{back}?done={handled.inbox_id}#s{subject['id']}", code=303)
