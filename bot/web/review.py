"""The weekly pack (每周会商, DESIGN §11) behind a signed link: the same content as
`gridwatch review`, with each member's on-time share over the recent weeks, and the workbook.
The token is the unit's and its week's Monday; nothing outside the unit's tree is read."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, render_template, send_file

from bot.links import REVIEW_SALT
from bot.web.svg_chart import SHARE_PHONE, share_chart
from bot.web.views import ViewError, _open, private, view_error
from handlers.dates import day_label
from schedules.review import build_review, on_time_share, week_name
from schedules.supervision import FLAG_CN, all_flags, load_activity, member_records
from storage.review_files import review_xlsx

bp = Blueprint("review", __name__, url_prefix="/review")
bp.register_error_handler(ViewError, view_error)
bp.after_request(private)
HISTORY_WEEKS = 6


def _pack(token: str) -> tuple[dict, Any]:
    db, config, unit, monday, now = _open(token, REVIEW_SALT)
    if monday.weekday() != 0:
        raise ViewError(404, "链接无法打开", "这不是周报的链接，请从每周会商消息中重新打开。")
    return build_review(db, config, unit["code"], monday, now), (db, config, unit, monday, now)


def _history(db: Any, config: Any, unit: str, monday: dt.date, now: dt.datetime) -> dict:
    """Each member's on-time share for the weeks up to this one (oldest first)."""
    weeks = [monday - dt.timedelta(days=7 * n) for n in range(HISTORY_WEEKS - 1, -1, -1)]
    shares: dict[str, list[float | None]] = {}
    for index, start in enumerate(weeks):
        activity = load_activity(db, config, unit, start, start + dt.timedelta(days=6), now)
        # a week in which a member got no prompt (before the bot ran) has no share to show
        prompted = {activity.members[pid] for pid, _, _ in activity.prompts}
        for record in member_records(activity, all_flags(activity, config.supervision)):
            row = shares.setdefault(record["member"], [None] * len(weeks))
            if record["member"] in prompted:
                row[index] = on_time_share(record)
    names = [week_name(start) for start in weeks]
    # weeks before anyone had anything due are left out
    first = min(
        (i for row in shares.values() for i, s in enumerate(row) if s is not None), default=0
    )
    return {"weeks": names[first:], "shares": {m: row[first:] for m, row in shares.items()}}


@bp.get("/<token>")
def review_page(token: str) -> str:
    pack, (db, config, unit, monday, now) = _pack(token)
    history = _history(db, config, unit["code"], monday, now)
    charts = {}
    for member in pack["members"]:
        shares = history["shares"].get(member["member"], [])
        charts[member["member"]] = share_chart(
            history["weeks"], shares, label=member["member"]
        ) + share_chart(history["weeks"], shares, label=member["member"], size=SHARE_PHONE)
    return render_template(
        "review.html",
        token=token,
        pack=pack,
        unit=unit,
        span=f"{day_label(pack['from'])}—{day_label(pack['to'])}",
        as_of=now,
        charts=charts,
        flag_cn=FLAG_CN,
        share=on_time_share,
    )


@bp.get("/<token>/xlsx")
def review_workbook(token: str) -> Response:
    pack, _ = _pack(token)
    name = f"{pack['unit_name']}-每周会商-{pack['week']}.xlsx"
    response = send_file(
        io.BytesIO(review_xlsx(pack)),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"review-{pack['week']}.xlsx\"; filename*=UTF-8''{quote(name)}"
    )
    return response
