"""`gridwatch demo`: a fresh demo database dated around today, with a few days of the routine
already played through the real pipeline (prompts, reports, alerts, digests), so the chat
simulator and the secretary view have something to show from the first second.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from bot.channels import ConsoleChannel, deliver_pending
from bot.config import SLOTS, Config
from bot.context import Context
from bot.links import forget_stored_key, view_link
from bot.web.sim import get_setting, set_setting, set_sim_now
from handlers.pipeline import Incoming, handle_message
from handlers.reports import monitoring_day
from storage.db import open_db
from storage.roster import import_roster
from storage.subjects import member_subjects

DEMO_ROSTER = Path(__file__).resolve().parents[2] / "examples" / "demo_roster"
DEMO_KEY = "demo"
SLOT_MARK = {"morning": "早", "noon": "中午", "evening": "晚上"}
# minutes after the prompt at which each member (in roster order) reports
REPORT_DELAY = (25, 12, 40, 18, 55, 33, 28, 46)

# (days before today, slot, subject) → what the member says about that subject; None: forgets it
SCRIPT: dict[tuple[int, str, str], str | None] = {
    (2, "evening", "何平"): "37.0",
    (1, "noon", "宋佳"): "电话不通",
    (1, "evening", "罗娟"): "37.4 咳嗽",
    (1, "evening", "田军"): None,
    (0, "morning", "罗娟"): "37.9 咳嗽 乏力",
    (0, "morning", "董建华"): "37.5 嗓子疼",
    (0, "morning", "高远"): None,
    (0, "noon", "傅强"): "不在家",
}
# (days before today, time, wechat id, text): commands said along the way
CHATS = (
    (1, dt.time(9, 40), "lianghong", "需求 张三 买菜"),
    (1, dt.time(16, 20), "chenzhigang", "办结 1"),
    (0, dt.time(8, 50), "wuxiulan", "需求 冯雪梅 需要买降压药"),
)


class DemoError(Exception):
    "The demo database cannot be (re)built; the message says why."


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    order: int  # scheduled jobs before the messages of the same minute
    sender: str = ""
    text: str = ""
    member: dict | None = None
    slot: str = ""


def shift_roster(source: Path, target: Path, today: dt.date) -> int:
    """Copy the roster's CSV files, moving start dates so that the newest is `today`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("units.csv", "people.csv"):
        shutil.copyfile(source / name, target / name)
    with open(source / "subjects.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    column = next(i for i, title in enumerate(header) if title in ("开始日期", "start_date"))
    newest = max(dt.date.fromisoformat(row[column]) for row in body)
    shift = (today - newest).days
    for row in body:
        row[column] = (dt.date.fromisoformat(row[column]) + dt.timedelta(days=shift)).isoformat()
    with open(target / "subjects.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return shift


def replace_db(path: Path) -> None:
    """Remove an earlier demo database; refuse to touch any other file."""
    if path.exists():
        try:
            db = sqlite_utils.Database(path)
            is_demo = "settings" in db.table_names() and get_setting(db, DEMO_KEY) == "1"
            db.close()
        except Exception:  # not even SQLite: certainly not ours
            is_demo = False
        if not is_demo:
            raise DemoError(f"{path} exists and is not a gridwatch demo database; not replacing it")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    forget_stored_key(path)  # the new database generates its own


def reply_text(subjects: list[dict], day_index: int, slot: str, rng: random.Random) -> str:
    """What a member types after contacting their subjects, in one of the usual styles."""
    parts = []
    for subject in subjects:
        key = (day_index, slot, subject["name"])
        if key in SCRIPT:
            said = SCRIPT[key]
            if said is not None:
                parts.append(f"{subject['name']} {said}")
            continue
        parts.append(f"{subject['name']} {rng.uniform(36.1, 36.9):.1f}")
    scripted = any((day_index, slot, s["name"]) in SCRIPT for s in subjects)
    style = rng.random()
    if not scripted and style < 0.12:
        return "全部正常"
    if style < 0.45:
        return f"{SLOT_MARK[slot]}：" + "，".join(parts)
    if style < 0.7:
        return "\n".join(parts)
    return "，".join(parts) + (" 均正常" if not scripted else "")


def timeline(db: sqlite_utils.Database, config: Config, now: dt.datetime, days: int) -> list[Event]:
    """Scheduled jobs, member reports and a few commands from `days` ago up to `now`."""
    from schedules.runner import due_jobs

    today = now.date()
    start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(0), tzinfo=config.tz)
    events = [Event(job.due, 0) for job in due_jobs(config, start, now)]
    members = [
        p
        for p in db.query("SELECT * FROM people WHERE active ORDER BY id")
        if "member" in p["roles"]
    ]
    for back in range(days, -1, -1):
        day = today - dt.timedelta(days=back)
        for slot in SLOTS:
            times = config.slots[slot]
            prompt = dt.datetime.combine(day, times.prompt, tzinfo=config.tz)
            deadline = dt.datetime.combine(day, times.deadline, tzinfo=config.tz)
            for index, member in enumerate(members):
                at = prompt + dt.timedelta(minutes=REPORT_DELAY[index % len(REPORT_DELAY)])
                at = min(at, deadline - dt.timedelta(minutes=5))
                if at > now or (index == 0 and now < deadline):
                    continue  # the first member's current slot is left for the visitor
                events.append(Event(at, 1, member["wechat_id"], member=member, slot=slot))
        for back_day, time, sender, text in CHATS:
            at = dt.datetime.combine(day, time, tzinfo=config.tz)
            if back_day == back and at <= now:
                events.append(Event(at, 1, sender, text))
    return sorted(events, key=lambda e: (e.at, e.order, e.sender))


def play(ctx: Context, now: dt.datetime, days: int) -> int:
    """Run the timeline through the scheduler and the pipeline; returns messages handled."""
    from schedules.runner import run_due

    handled = 0
    for event in timeline(ctx.db, ctx.config, now, days):
        if event.order == 0:
            run_due(ctx.db, ctx.config, event.at)
            continue
        text = event.text
        if event.member is not None:
            day = event.at.date()
            subjects = member_subjects(ctx.db, event.member["id"], day)
            if not subjects:
                continue
            back = (now.date() - day).days
            rng = random.Random(f"{day}-{event.slot}-{event.member['id']}")
            text = reply_text(subjects, back, event.slot, rng)
        handle_message(
            ctx,
            Incoming(
                channel="console", sender=event.sender, text=text, at=event.at, received_at=event.at
            ),
        )
        deliver_pending(ctx.db, ConsoleChannel(), event.at)
        handled += 1
    run_due(ctx.db, ctx.config, now)
    return handled


def build_demo(path: Path, config: Config, now: dt.datetime, days: int = 3) -> dict:
    """Replace `path` with the demo: roster dated to end today, `days` days of history."""
    replace_db(path)
    db = open_db(path)
    try:
        with tempfile.TemporaryDirectory() as folder:
            roster = Path(folder) / "roster"
            shift_roster(DEMO_ROSTER, roster, now.date())
            start = dt.datetime.combine(now.date() - dt.timedelta(days=days), dt.time(0))
            report = import_roster(
                db,
                roster,
                now=start.replace(tzinfo=config.tz),
                categories=config.categories,
                period=config.period_days,
            )
        if report.errors:
            raise DemoError("demo roster: " + "; ".join(report.errors))
        set_setting(db, DEMO_KEY, "1")
        ctx = Context(db=db, config=config, db_path=str(path))
        handled = play(ctx, now, days)
        set_sim_now(db, config, now)
        village = next(db.query("SELECT code FROM units WHERE level = 'village' ORDER BY code"))
        return {
            "link": view_link(db, config, village["code"], monitoring_day(now), now),
            "subjects": db["subjects"].count,
            "people": db["people"].count,
            "messages": handled,
            "reports": db.execute("SELECT count(*) FROM contacts WHERE current").fetchone()[0],
            "outbox": db["outbox"].count,
        }
    finally:
        db.close()
