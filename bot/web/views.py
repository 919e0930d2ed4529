"""The secretary's view behind a signed, expiring link: the day's table, one person's file,
the needs ledger and the Excel ledger. The token decides the unit tree and the date; nothing
outside that tree is ever read for the page.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from urllib.parse import quote

import sqlite_utils
from flask import Blueprint, Response, render_template, request, send_file, url_for
from markupsafe import Markup

from bot.config import SLOTS, Config
from bot.links import SALT, LinkError, NoKey, link_key, read_view
from bot.web.app import get_context
from bot.web.sim import sim_now
from bot.web.svg_chart import PHONE, WIDE, points_from_contacts, temperature_chart
from handlers import dates
from handlers.secretary_commands import ALERT_STATUS_CN, mask_phone
from handlers.trend import rising
from storage.alerts import day_alerts
from storage.contacts import contacts_on, subject_history
from storage.ledger import ledger_rows
from storage.ledger_files import ledger_xlsx
from storage.needs import LEVEL_CN, is_overdue, problem_item, problems
from storage.outbox import card_of
from storage.subjects import unit_subjects
from storage.units import descendants, get_unit

bp = Blueprint("views", __name__, url_prefix="/view")
# dates on pages read as in chat: 3月2日, 3月2日 08:30 (handlers/dates.py)
bp.add_app_template_filter(dates.day_label, "day")
bp.add_app_template_filter(dates.time_label, "moment")

SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
CELL_CN = {
    "normal": "正常",
    "abnormal": "异常",
    "unreachable": "联系不上",
    "absent": "外出",
    "missing": "未报",
    "pending": "待报",
}
SUBJECT_STATUS_CN = {
    "active": "监测中",
    "released": "已解除",
    "hospitalized": "已住院",
    "transferred": "已转出",
}
STATUS_FILTERS = {
    "abnormal": "有异常",
    "unreachable": "联系不上",
    "absent": "外出",
    "missing": "未报",
}
WEEK = "一二三四五六日"


class ViewError(Exception):
    "A page that cannot be shown; carries the HTTP status and a Chinese title and message."

    def __init__(self, status: int, title: str, message: str, back: str | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.back = status, title, message, back


def day_label(day: dt.date) -> str:
    return f"{dates.day_label(day)}（周{WEEK[day.weekday()]}）"


def _open(
    token: str, salt: str = SALT
) -> tuple[sqlite_utils.Database, Config, dict, dt.date, dt.datetime]:
    """The database, settings, unit, date and current time a token grants, or a ViewError."""
    db, config, unit, day, now, _message = _open_with_message(token, salt)
    return db, config, unit, day, now


def _open_with_message(
    token: str, salt: str = SALT
) -> tuple[sqlite_utils.Database, Config, dict, dt.date, dt.datetime, int | None]:
    """`_open`, and the outbox id of the message that carried the link (when one did)."""
    ctx = get_context()
    now = sim_now(ctx.db, ctx.config)
    try:
        code, day, message = read_view(
            link_key(ctx.db, ctx.config), token, now, ctx.config.link_days, salt
        )
    except LinkError as error:
        raise ViewError(403, "链接无法打开", str(error)) from None
    except NoKey:
        raise ViewError(503, "链接暂时无法打开", "系统尚未设置签名密钥，请联系管理员。") from None
    unit = get_unit(ctx.db, code)
    if unit is None:
        raise ViewError(404, "找不到该单位", "链接中的单位已不在名单中，请联系管理员。")
    return ctx.db, ctx.config, unit, day, now, message


def message_text(db: sqlite_utils.Database, message: int | None, unit: str) -> str | None:
    """The whole text of the message (a digest, an alert) that carried the link, when it
    was about this unit: what a template or a card could only sum up."""
    if not message:
        return None
    row = next(db.query("SELECT text, card FROM outbox WHERE id = ?", [message]), None)
    if row is None or card_of(row).get("unit") != unit:
        return None
    return row["text"]


def unit_names(db: sqlite_utils.Database) -> dict[str, str]:
    return {row["code"]: row["name"] for row in db.query("SELECT code, name FROM units")}


def grids_under(db: sqlite_utils.Database, code: str) -> list[dict]:
    codes = descendants(db, code)
    marks = ",".join("?" * len(codes))
    return list(
        db.query(
            f"SELECT * FROM units WHERE level = 'grid' AND code IN ({marks}) ORDER BY code", codes
        )
    )


def members_of(db: sqlite_utils.Database, subject_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for start in range(0, len(subject_ids), 900):
        chunk = subject_ids[start : start + 900]
        for row in db.query(
            f"""SELECT a.subject_id, p.name FROM assignments a JOIN people p ON p.id = a.person_id
                WHERE a.subject_id IN ({",".join("?" * len(chunk))})
                ORDER BY a.subject_id, a.position""",
            chunk,
        ):
            found.setdefault(row["subject_id"], []).append(row["name"])
    return found


ALERT_KIND_CN = {"abnormal": "异常", "unreachable": "联系不上", "absent": "外出"}


def needs_ledger(db: sqlite_utils.Database, units: list[str], now: dt.datetime) -> list[dict]:
    """Every problem (need) of the units' subjects: open ones first, newest first, with its
    owner, level, due time and whether it is overdue as of `now`."""
    return [need | {"overdue": is_overdue(need, now)} for need in problems(db, units)]


def cell(contact: dict | None, deadline: dt.datetime, now: dt.datetime) -> dict:
    """One slot of one subject: its report, or missing once the deadline has passed."""
    if contact is None:
        status = "missing" if now >= deadline else "pending"
        return {"status": status, "label": CELL_CN[status], "detail": ""}
    temperature = contact["temperature"]
    label = f"{temperature:.1f}℃" if temperature is not None else CELL_CN[contact["status"]]
    if contact["status"] in ("unreachable", "absent") and temperature is not None:
        label = CELL_CN[contact["status"]]
    detail = contact["symptoms"] if contact["status"] == "abnormal" else ""
    if contact["status"] == "abnormal" and temperature is None:
        label = CELL_CN["abnormal"]
    return {
        "status": contact["status"],
        "label": label,
        "detail": detail,
        "at": contact["reported_at"][11:16],
    }


def day_rows(
    db: sqlite_utils.Database, config: Config, unit: str, day: dt.date, now: dt.datetime
) -> list[dict]:
    """One row per subject active on `day` in the unit's tree, with its three slots."""
    subjects = unit_subjects(db, unit, day)
    ids = [s["id"] for s in subjects]
    reported = contacts_on(db, ids, day)
    members = members_of(db, ids)
    names = unit_names(db)
    deadlines = {
        slot: dt.datetime.combine(day, config.slots[slot].deadline, tzinfo=config.tz)
        for slot in SLOTS
    }
    rows = []
    for subject in subjects:
        cells = {
            slot: cell(reported.get((subject["id"], slot)), deadlines[slot], now) for slot in SLOTS
        }
        statuses = {c["status"] for c in cells.values()}
        rows.append(
            {
                "id": subject["id"],
                "name": subject["name"],
                "category": subject["category"],
                "unit": subject["unit"],
                "unit_name": names.get(subject["unit"], subject["unit"]),
                "phone": mask_phone(subject["phone"]),
                "members": "、".join(members.get(subject["id"], [])) or "（未分配）",
                "new": subject["start_date"] == day.isoformat(),
                "day_of": (day - dt.date.fromisoformat(subject["start_date"])).days + 1,
                "days": subject["days"],
                "cells": cells,
                "statuses": statuses,
            }
        )
    return rows


def _filters(db: sqlite_utils.Database, config: Config, unit: dict, token: str) -> dict[str, str]:
    """The grid / category / status filters of the query string, checked."""
    grids = {g["code"] for g in grids_under(db, unit["code"])}
    chosen = {key: request.args.get(key, "").strip() for key in ("grid", "category", "status")}
    back = url_for("views.day_page", token=token)
    if chosen["grid"] and chosen["grid"] not in grids:
        raise ViewError(400, "筛选条件有误", f"本单位没有编码为“{chosen['grid']}”的网格。", back)
    if chosen["category"] and chosen["category"] not in config.categories:
        raise ViewError(400, "筛选条件有误", f"没有“{chosen['category']}”这一类别。", back)
    if chosen["status"] and chosen["status"] not in STATUS_FILTERS:
        raise ViewError(400, "筛选条件有误", f"没有“{chosen['status']}”这一状态筛选。", back)
    return chosen


def _keep(row: dict, filters: dict[str, str]) -> bool:
    return (
        (not filters["grid"] or row["unit"] == filters["grid"])
        and (not filters["category"] or row["category"] == filters["category"])
        and (not filters.get("status") or filters["status"] in row["statuses"])
    )


def summary(rows: list[dict]) -> dict[str, Any]:
    count = {
        status: sum(1 for r in rows if status in r["statuses"])
        for status in ("abnormal", "unreachable", "absent")
    }
    count["missing"] = sum(1 for r in rows for c in r["cells"].values() if c["status"] == "missing")
    count["reported"] = {  # type: ignore[assignment]
        slot: sum(1 for r in rows if r["cells"][slot]["status"] not in ("missing", "pending"))
        for slot in SLOTS
    }
    count["new"] = sum(1 for r in rows if r["new"])
    return count


@bp.errorhandler(ViewError)
def view_error(error: ViewError) -> Any:
    page = render_template("error.html", title=error.title, message=error.message, back=error.back)
    return page, error.status


@bp.after_request
def private(response: Response) -> Response:
    """Personal data behind a credential in the URL: never cached, indexed, leaked or framed
    (the secretary view, the member's page, the weekly pack)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


@bp.get("/<token>")
def day_page(token: str) -> str:
    db, config, unit, day, now, message = _open_with_message(token)
    filters = _filters(db, config, unit, token)
    rows = day_rows(db, config, unit["code"], day, now)
    shown = [row for row in rows if _keep(row, filters)]
    codes = descendants(db, unit["code"])
    if filters["grid"]:
        codes = descendants(db, filters["grid"])
    needs = [
        n
        for n in needs_ledger(db, codes, now)
        if not filters["category"] or n["category"] == filters["category"]
    ]
    today = now.date() == day
    return render_template(
        "view.html",
        token=token,
        unit=unit,
        day=day,
        day_label=day_label(day),
        as_of=f"截至 {now:%H:%M}" if today else ("全天" if now.date() > day else "尚未开始"),
        rows=shown,
        total=len(rows),
        count=summary(rows),
        grids=grids_under(db, unit["code"]),
        categories=config.categories,
        status_filters=STATUS_FILTERS,
        filters=filters,
        needs=needs,
        alerts=day_alerts(db, codes, day),
        alert_kind_cn=ALERT_KIND_CN,
        alert_status_cn=ALERT_STATUS_CN,
        open_needs=sum(1 for n in needs if n["status"] == "open"),
        overdue_needs=sum(1 for n in needs if n["overdue"]),
        level_cn=LEVEL_CN,
        slots=SLOTS,
        slot_cn=SLOT_CN,
        cell_cn=CELL_CN,
        several_villages=unit["level"] in ("county", "town"),
        message=message_text(db, message, unit["code"]),
    )


@bp.get("/<token>/subject/<subject_id>")
def subject(token: str, subject_id: str) -> str:
    db, config, unit, day, now = _open(token)
    back = url_for("views.day_page", token=token)
    found = None
    if subject_id.isdigit():
        found = next(db.query("SELECT * FROM subjects WHERE id = ?", [int(subject_id)]), None)
    if found is None or found["unit"] not in descendants(db, unit["code"]):
        # the same answer for "no such person" and "another village's person"
        raise ViewError(404, "找不到该监测对象", "本链接所属单位中没有这个监测对象。", back)
    history = subject_history(db, found["id"])
    start = dt.date.fromisoformat(found["start_date"])
    end = dt.date.fromisoformat(found["end_date"])
    points = points_from_contacts(history)
    # the desktop drawing and the phone one; gridwatch.css shows the one that fits
    chart = Markup("").join(
        temperature_chart(
            points, start, end, threshold=config.fever_threshold, today=now.date(), size=size
        )
        for size in (WIDE, PHONE)
    )
    names = unit_names(db)
    return render_template(
        "subject.html",
        token=token,
        unit=unit,
        day=day,
        subject=found,
        phone=mask_phone(found["phone"]),
        unit_name=names.get(found["unit"], found["unit"]),
        members="、".join(members_of(db, [found["id"]]).get(found["id"], [])) or "（未分配）",
        status=SUBJECT_STATUS_CN.get(found["status"], found["status"]),
        period=f"{dates.day_label(start)} — {dates.day_label(end)}（{found['days']}天）",
        chart=chart,
        history=list(reversed(history)),
        needs=[n for n in needs_ledger(db, [found["unit"]], now) if n["subject_id"] == found["id"]],
        level_cn=LEVEL_CN,
        watch=_watch(history, config.fever_threshold),
        slot_cn=SLOT_CN,
        cell_cn=CELL_CN,
        back=back,
    )


def _watch(history: list[dict], fever_threshold: float) -> str:
    """关注: the rising readings (36.8→37.0→37.2) when the trend holds, else ""."""
    readings = [c for c in history if c["temperature"] is not None]
    temperatures = [c["temperature"] for c in readings]
    if not readings or readings[-1]["status"] == "abnormal":
        return ""
    if not rising(temperatures, fever_threshold):
        return ""
    return "→".join(f"{t:.1f}℃" for t in temperatures[-3:])


@bp.get("/<token>/ledger.xlsx")
def ledger(token: str) -> Response:
    db, config, unit, day, now = _open(token)
    filters = _filters(db, config, unit, token)
    rows = ledger_rows(
        db,
        deadlines={slot: times.deadline for slot, times in config.slots.items()},
        tz=config.tz,
        unit=filters["grid"] or unit["code"],
        day=day,
    )
    if filters["category"]:
        rows = [row for row in rows if row["category"] == filters["category"]]
    codes = descendants(db, filters["grid"] or unit["code"])
    items = [
        problem_item(need, now)
        for need in problems(db, codes)
        if not filters["category"] or need["category"] == filters["category"]
    ]
    data = ledger_xlsx(rows, unit_names(db), items)
    response = send_file(
        io.BytesIO(data),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    name = quote(f"台账-{unit['name']}-{day.isoformat()}.xlsx")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"ledger-{day.isoformat()}.xlsx\"; filename*=UTF-8''{name}"
    )
    return response
