"""`/sim`: the chat simulator. Anyone of the roster chats with the bot through the real pipeline.

The simulator's clock is real time plus an offset kept in the database (`settings`), so every
worker agrees on it and it keeps running between clicks. Moving it forward runs the schedule
job by job, exactly as `gridwatch tick --at` would at each due time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlite_utils
from flask import Blueprint, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from bot.channels import ConsoleChannel, deliver_pending
from bot.clock import now as clock_now
from bot.clock import parse_time
from bot.config import Config
from bot.web.app import get_context
from handlers.commands import ROLE_CN
from handlers.dates import time_label
from handlers.pipeline import Incoming, handle_message
from handlers.reports import monitoring_day
from handlers.secretary_commands import mask_phone
from storage.people import get_person, roles_of
from storage.subjects import member_subjects, unit_subjects

bp = Blueprint("sim", __name__, url_prefix="/sim")

OFFSET_KEY = "sim_offset"
MAX_TEXT = 10_000
MAX_JUMP = dt.timedelta(days=31)
ROLE_ORDER = ("secretary", "monitor", "medic", "member")
KIND_CN = {
    "reply": "回复",
    "prompt": "联系提醒",
    "reminder": "催报",
    "missed_alert": "未报预警",
    "abnormal_alert": "异常预警",
    "unreachable_alert": "失联预警",
    "absent_alert": "外出预警",
    "digest": "汇总",
    "release": "解除通知",
}
JOB_CN = {
    "prompt": "联系提醒",
    "reminder": "催报",
    "deadline": "截止检查",
    "digest": "汇总",
    "release": "到期解除",
    "escalate": "督办升级",
    "flags": "督查提示",
    "review": "每周会商",
}
SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}


class SimError(Exception):
    "A bad request to the simulator; the message (Chinese) says what to fix."


# -- the clock ---------------------------------------------------------------------------


def get_setting(db: sqlite_utils.Database, key: str) -> str | None:
    row = next(db.query("SELECT value FROM settings WHERE key = ?", [key]), None)
    return row["value"] if row else None


def set_setting(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def sim_now(db: sqlite_utils.Database, config: Config) -> dt.datetime:
    """The simulator's time: the real time plus the stored offset (0 when never moved)."""
    offset = int(get_setting(db, OFFSET_KEY) or 0)
    return clock_now(config.tz) + dt.timedelta(seconds=offset)


def set_sim_now(db: sqlite_utils.Database, config: Config, at: dt.datetime) -> None:
    offset = at - clock_now(config.tz)
    set_setting(db, OFFSET_KEY, str(round(offset.total_seconds())))


Due = tuple[str, dt.datetime]


def due_times(config: Config, start: dt.datetime, end: dt.datetime) -> list[Due]:
    """(job, due) of every scheduled job due after `start` up to `end`, in time order."""
    from schedules.runner import due_jobs

    return [(job.name, job.due) for job in due_jobs(config, start, end) if job.due > start]


def next_event(config: Config, after: dt.datetime) -> Due | None:
    upcoming = due_times(config, after, after + dt.timedelta(days=2))
    return upcoming[0] if upcoming else None


def run_until(db: sqlite_utils.Database, config: Config, target: dt.datetime) -> list[dict]:
    """Run the schedule up to `target`, one due time at a time (so no job counts as late)."""
    from schedules.runner import run_due

    start = sim_now(db, config)
    runs = []
    for due in sorted({due for _, due in due_times(config, start, target)}):
        runs += run_due(db, config, due)
    runs += run_due(db, config, target)
    set_sim_now(db, config, target)
    return [
        {
            "job": run.job,
            "label": job_label(run.job),
            "due": run.due.isoformat(),
            "outcome": run.outcome,
            "detail": run.detail,
        }
        for run in runs
    ]


def job_label(name: str) -> str:
    """A job name like "prompt:morning" or "digest:1" in Chinese, for the clock bar."""
    head, _, tail = name.partition(":")
    label = JOB_CN.get(head, name)
    if tail in SLOT_CN:
        return f"{SLOT_CN[tail]}{label}"
    if head == "digest" and tail:
        return f"第{tail}次{label}"
    return label


# -- the roster and the chats --------------------------------------------------------------


def primary_role(person: dict) -> str:
    roles = roles_of(person)
    return next((role for role in ROLE_ORDER if role in roles), "member")


def sender_of(person: dict) -> str:
    """The id the person chats under: their WeChat id, else a simulator-only one (unbound)."""
    return person["wechat_id"] or f"sim-{person['id']}"


def person_card(person: dict, units: dict[str, str]) -> dict:
    return {
        "id": person["id"],
        "name": person["name"],
        "role": primary_role(person),
        "roles": [ROLE_CN.get(r, r) for r in ROLE_ORDER if r in roles_of(person)],
        "unit": person["unit"],
        "unit_name": units.get(person["unit"], person["unit"]),
        "phone": mask_phone(person["phone"]),
        "bound": bool(person["wechat_id"]),
    }


def roster_groups(db: sqlite_utils.Database) -> list[dict]:
    """Active people grouped by their first role, then by unit, in roster order."""
    units = {r["code"]: r["name"] for r in db.query("SELECT code, name FROM units")}
    groups: dict[tuple[int, str], dict] = {}
    for person in db.query("SELECT * FROM people WHERE active ORDER BY id"):
        role = primary_role(person)
        key = (ROLE_ORDER.index(role), person["unit"])
        group = groups.setdefault(
            key,
            {
                "role": role,
                "role_label": ROLE_CN.get(role, role),
                "unit": person["unit"],
                "unit_name": units.get(person["unit"], person["unit"]),
                "people": [],
            },
        )
        group["people"].append(person_card(person, units))
    return [groups[key] for key in sorted(groups)]


def suggestions(db: sqlite_utils.Database, person: dict, day: dt.date) -> list[str]:
    """Example messages for the person's roles, with real names, for the quick buttons."""
    roles = roles_of(person)
    found: list[str] = []
    if "member" in roles:
        names = [s["name"] for s in member_subjects(db, person["id"], day)]
        if names:
            found.append(f"{names[0]} 36.5 正常")
        if len(names) > 1:
            found.append(f"{names[1]} 37.6 咳嗽")
        found += ["全部正常", "名单", "撤销"]
    if "secretary" in roles:
        found += ["汇总", "异常", "未报", "需求"]
        subjects = unit_subjects(db, person["unit"], day)
        if subjects:
            found.append(f"查 {subjects[0]['name']}")
    if "monitor" in roles:
        found.append("未报")
    if "medic" in roles:
        found.append("异常")
    found.append("帮助")
    return list(dict.fromkeys(found))


def chat_messages(db: sqlite_utils.Database, person: dict, limit: int = 300) -> list[dict]:
    """The person's messages (inbox) and the bot's (outbox), oldest first."""
    sender = sender_of(person)
    inbound = db.query(
        """SELECT id, at, text FROM inbox WHERE person_id = :id
           OR (person_id IS NULL AND sender = :sender) ORDER BY id DESC LIMIT :limit""",
        {"id": person["id"], "sender": sender, "limit": limit},
    )
    outbound = db.query(
        """SELECT id, at, kind, text, status FROM outbox WHERE person_id = :id
           OR (person_id IS NULL AND recipient = :sender) ORDER BY id DESC LIMIT :limit""",
        {"id": person["id"], "sender": sender, "limit": limit},
    )
    messages = [
        {"key": f"in-{r['id']}", "from": "person", "at": r["at"], "text": r["text"], "order": 0}
        | {"kind": "", "kind_label": "", "status": "", "id": r["id"]}
        for r in inbound
    ]
    messages += [
        {
            "key": f"out-{r['id']}",
            "from": "bot",
            "at": r["at"],
            "text": r["text"],
            "kind": r["kind"],
            "kind_label": KIND_CN.get(r["kind"], r["kind"]),
            "status": r["status"],
            "order": 1,
            "id": r["id"],
        }
        for r in outbound
    ]
    # a reply has its message's time: the message goes first
    messages.sort(key=lambda m: (m["at"], m.pop("order"), m["id"]))
    return messages[-limit:]


def preview(text: str, limit: int = 24) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _person_or_404(db: sqlite_utils.Database, person_id: Any) -> dict:
    if isinstance(person_id, bool) or not isinstance(person_id, int | str):
        raise SimError("person 应是名单中人员的编号（数字）")
    try:
        number = int(person_id)
    except ValueError:
        raise SimError(f"person 应是数字，收到 {person_id!r}") from None
    person = get_person(db, number)
    if person is None or not person["active"]:
        abort(404, description=f"名单中没有编号为 {number} 的人员")
    return person


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise SimError('请求体应是 JSON 对象，例如 {"person": 4, "text": "张三 36.5"}')
    return body


# -- routes --------------------------------------------------------------------------------


@bp.before_request
def console_only() -> None:
    """The simulator speaks for anyone: it exists only on the console channel."""
    if get_context().config.channel.kind != "console":
        abort(404, description="模拟器只在 console 渠道下可用")


@bp.errorhandler(SimError)
def bad_request(error: SimError) -> Any:
    return jsonify(error=str(error)), 400


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    if request.path.startswith("/sim/api/"):
        return jsonify(error=error.description), error.code
    return render_template("error.html", title="出错了", message=error.description), error.code


@bp.get("/", strict_slashes=False)  # /sim itself, as DESIGN §8 names it: no redirect
def page() -> str:
    ctx = get_context()
    return render_template("sim.html", groups=roster_groups(ctx.db))


@bp.get("/api/people")
def people() -> Any:
    ctx = get_context()
    last = {
        row["person_id"]: row
        for row in ctx.db.query(
            """SELECT o.person_id, o.id, o.text FROM outbox o JOIN (
                   SELECT person_id, max(id) AS id FROM outbox WHERE person_id IS NOT NULL
                   GROUP BY person_id) m ON m.id = o.id"""
        )
    }
    groups = roster_groups(ctx.db)
    for group in groups:
        for person in group["people"]:
            row = last.get(person["id"])
            person["last_out"] = row["id"] if row else 0
            person["preview"] = preview(row["text"]) if row else ""
    return jsonify(groups=groups)


@bp.get("/api/chat/<person_id>")
def chat(person_id: str) -> Any:
    ctx = get_context()
    person = _person_or_404(ctx.db, person_id)
    units = {r["code"]: r["name"] for r in ctx.db.query("SELECT code, name FROM units")}
    messages = chat_messages(ctx.db, person)
    day = monitoring_day(sim_now(ctx.db, ctx.config))
    return jsonify(
        person=person_card(person, units),
        messages=messages,
        suggestions=suggestions(ctx.db, person, day),
        last_out=max((m["id"] for m in messages if m["from"] == "bot"), default=0),
    )


@bp.post("/api/send")
def send() -> Any:
    ctx = get_context()
    body = _json_body()
    person = _person_or_404(ctx.db, body.get("person"))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SimError("text 不能为空，例如：张三 36.5 正常")
    if len(text) > MAX_TEXT:
        raise SimError(f"消息太长（{len(text)} 字，上限 {MAX_TEXT}）")
    at = sim_now(ctx.db, ctx.config)
    handled = handle_message(
        ctx,
        Incoming(channel="console", sender=sender_of(person), text=text, at=at, received_at=at),
    )
    deliver_pending(ctx.db, ConsoleChannel(), at)
    return jsonify(reply=handled.reply, outcome=handled.outcome, at=at.isoformat())


@bp.get("/api/clock")
def clock() -> Any:
    """The simulator's time and the next scheduled event; jobs now due are run first."""
    ctx = get_context()
    now = sim_now(ctx.db, ctx.config)
    from schedules.runner import run_due

    run_due(ctx.db, ctx.config, now)
    return jsonify(clock_json(ctx.db, ctx.config, now, []))


@bp.post("/api/clock")
def advance() -> Any:
    """Run the schedule forward: {"to": "next"} or {"to": "2026-03-02T10:30"}."""
    ctx = get_context()
    body = _json_body()
    target_text = body.get("to", "next")
    now = sim_now(ctx.db, ctx.config)
    if target_text == "next":
        upcoming = next_event(ctx.config, now)
        if upcoming is None:
            raise SimError("两天内没有待运行的定时任务")
        target = upcoming[1]
    else:
        if not isinstance(target_text, str):
            raise SimError('to 应是 "next" 或时间，例如 "2026-03-02T10:30"')
        try:
            target = parse_time(target_text, ctx.config.tz)
        except ValueError:
            raise SimError(f"时间格式不对：{target_text!r}，例如 2026-03-02T10:30") from None
        if target < now - dt.timedelta(minutes=1):
            raise SimError(f"模拟时钟只能向前拨（现在是 {time_label(now)}）")
        if target - now > MAX_JUMP:
            raise SimError("一次最多向前拨 31 天")
        target = max(target, now)
    ran = run_until(ctx.db, ctx.config, target)
    return jsonify(clock_json(ctx.db, ctx.config, target, ran))


def clock_json(
    db: sqlite_utils.Database, config: Config, now: dt.datetime, ran: list[dict]
) -> dict:
    upcoming = next_event(config, now)
    return {
        "now": now.isoformat(),
        "next": {"job": upcoming[0], "label": job_label(upcoming[0]), "at": upcoming[1].isoformat()}
        if upcoming
        else None,
        "ran": ran,
        "last_out": db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0],
    }
