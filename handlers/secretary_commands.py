"""Commands for secretaries and monitors: 汇总, 异常, 未报, 查, 解除, 延长, 需求, 办结."""

from __future__ import annotations

import datetime as dt
import re

from handlers.alerts import tell
from handlers.commands import Turn, UserError, command
from handlers.dates import day_label, time_label
from handlers.names import NameIndex
from handlers.reports import SLOT_CN, STATUS_CN, monitoring_day
from handlers.temperature import cn_integer
from handlers.trend import rising
from storage.alerts import alerts_on
from storage.audit import record_change
from storage.contacts import contacts_on, subject_history
from storage.needs import LEVEL_CN, close_need, get_problem, is_overdue, open_needs
from storage.outbox import send_key
from storage.subjects import find_subjects_by_name, subject_members, subject_names, unit_subjects
from storage.units import descendants, get_unit, village_of, villages_under

SLOTS = ("morning", "noon", "evening")
SECRETARY = {"secretary"}
ALERT_STATUS_CN = {"open": "未确认", "received": "已收到", "handled": "已处置", "voided": "已更正"}


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def _subject(turn: Turn, name: str) -> dict:
    """The subject a command names, matched as reports match names (homophones, courtesy
    forms). Above one village, namesakes are listed with their village to pick from, and a
    village's name before the name picks one (查 河东村张三)."""
    name = name.strip(" ：:，,。")
    command = turn.text.split()[0] if turn.text else "查"
    if not name:
        raise UserError(f"请写上姓名，例如：{command} 张三")
    db, scope = turn.ctx.db, turn.person["unit"]
    for village in villages_under(db, scope):
        if name.startswith(village["name"]) and len(name) > len(village["name"]):
            scope, name = village["code"], name[len(village["name"]) :]
            break
    found = find_subjects_by_name(db, scope, name)
    if not found:
        heard = NameIndex(subject_names(db, scope), ()).resolve(name)
        if heard is not None and heard.name is None:
            raise UserError(
                f"“{name}”可能是：{'、'.join(heard.candidates)}，请写全名，"
                f"例如：{command} {heard.candidates[0]}"
            )
        if heard is not None:
            found = find_subjects_by_name(db, scope, heard.name)
    if not found:
        raise UserError(f"本村没有名为“{name}”的监测对象，请核对姓名，例如：{command} 张三")
    people: dict[str, dict] = {}  # one row per person: namesakes live in different villages
    for row in found:
        people.setdefault(village_of(db, row["unit"]) or row["unit"], row)
    if len(people) > 1:
        labels = [
            f"{(get_unit(db, code) or {}).get('name', code)}{found[0]['name']}" for code in people
        ]
        raise UserError(
            f"有{len(people)}位名为{found[0]['name']}的监测对象：{'、'.join(labels)}。"
            f"请带上村名再发一次，例如：{command} {labels[0]}"
        )
    return found[0]


def _slots_due(turn: Turn, day: dt.date) -> list[str]:
    """Slots of `day` whose prompt time has passed at the message time."""
    slots = []
    for slot in SLOTS:
        prompt = dt.datetime.combine(day, turn.ctx.config.slots[slot].prompt, tzinfo=turn.at.tzinfo)
        if turn.at >= prompt:
            slots.append(slot)
    return slots


@command("汇总", "日报", "报告", roles=SECRETARY, usage="汇总 — 现在的汇总")
def digest_now(turn: Turn) -> str:
    from bot.links import view_link
    from schedules.digest import build_digest, digest_text

    day = monitoring_day(turn.at)
    digest = build_digest(turn.ctx.db, turn.ctx.config, turn.person["unit"], day, None, turn.at)
    link = view_link(turn.ctx.db, turn.ctx.config, turn.person["unit"], day, turn.at)
    return digest_text(digest, link)


@command("异常", "异常情况", roles=SECRETARY | {"medic"}, usage="异常 — 今天的异常、联系不上、外出")
def abnormal_today(turn: Turn) -> str:
    day = monitoring_day(turn.at)
    subjects = unit_subjects(turn.ctx.db, turn.person["unit"], day)
    names = {s["id"]: s["name"] for s in subjects}
    reported = contacts_on(turn.ctx.db, list(names), day)
    alerts = alerts_on(turn.ctx.db, list(names), day)
    lines = []
    for (subject_id, slot), row in sorted(
        reported.items(), key=lambda item: (SLOTS.index(item[0][1]), item[0][0])
    ):
        if row["status"] == "normal":
            continue
        temperature = f" {row['temperature']:.1f}℃" if row["temperature"] is not None else ""
        symptoms = f" {row['symptoms']}" if row["symptoms"] else ""
        alert = alerts.get((subject_id, slot, row["status"]))
        number = f"（编号 {alert['id']}，{ALERT_STATUS_CN[alert['status']]}）" if alert else ""
        lines.append(
            f"{SLOT_CN[slot]} {names[subject_id]} {STATUS_CN[row['status']]}{temperature}"
            f"{symptoms}{number}"
        )
    if not lines:
        return f"{day_label(day)}暂无异常、联系不上或外出的情况。"
    return f"{day_label(day)}异常情况：\n" + "\n".join(lines)


@command("未报", "未上报", "谁没报", roles=SECRETARY | {"monitor"}, usage="未报 — 今天还没上报的人")
def not_reported(turn: Turn) -> str:
    db = turn.ctx.db
    day = monitoring_day(turn.at)
    slots = _slots_due(turn, day) if day == turn.at.date() else list(SLOTS)
    if not slots:
        first = turn.ctx.config.slots["morning"].prompt
        return f"今天的联系还没开始（早上 {first:%H:%M} 提醒）。"
    subjects = unit_subjects(db, turn.person["unit"], day)
    reported = contacts_on(db, [s["id"] for s in subjects], day)
    lines = []
    for slot in slots:
        by_member: dict[str, list[str]] = {}
        for subject in subjects:
            if (subject["id"], slot) in reported:
                continue
            # every member who owes the report, as the deadline alert and the digest list them
            members = [m["name"] for m in subject_members(db, subject["id"])] or ["（未分配）"]
            for who in members:
                by_member.setdefault(who, []).append(subject["name"])
        if by_member:
            count = len({name for names in by_member.values() for name in names})
            detail = "；".join(f"{m}：{'、'.join(names)}" for m, names in by_member.items())
            lines.append(f"{SLOT_CN[slot]}（{count}人）{detail}")
        else:
            lines.append(f"{SLOT_CN[slot]}：已全部上报")
    return f"{day_label(day)}未报：\n" + "\n".join(lines)


@command(
    "查",
    "查询",
    "查看",
    roles=SECRETARY | {"monitor", "medic"},
    usage="查 张三 — 一人一档（近3天）",
    takes_args=True,
)
def lookup(turn: Turn) -> str:
    subject = _subject(turn, turn.args)
    members = "、".join(m["name"] for m in subject_members(turn.ctx.db, subject["id"]))
    since = monitoring_day(turn.at) - dt.timedelta(days=2)
    status = {
        "active": "监测中",
        "released": "已解除",
        "hospitalized": "已住院",
        "transferred": "已转出",
    }
    lines = [
        f"{subject['name']}（{subject['category']}）{status[subject['status']]}",
        f"电话 {mask_phone(subject['phone'])}  地址 {subject['address']}",
        f"监测期 {day_label(subject['start_date'])} 至 {day_label(subject['end_date'])}，"
        f"网格员 {members or '（未分配）'}",
    ]
    history = subject_history(turn.ctx.db, subject["id"], since)
    if not history:
        lines.append("近3天没有联系记录。")
    readings = [row for row in history if row["temperature"] is not None]
    temperatures = [row["temperature"] for row in readings]
    if readings and readings[-1]["status"] != "abnormal":
        if rising(temperatures, turn.ctx.config.fever_threshold):
            trend = "→".join(f"{t:.1f}" for t in temperatures[-3:])
            lines.append(f"关注：体温连续上升 {trend}℃，尚未到发热线，请留意。")
    found = {(row["date"], row["slot"]): row for row in history}
    shown = {*_slots_owed(turn, subject, since)}
    shown |= {(dt.date.fromisoformat(day), slot) for day, slot in found}
    for day, slot in sorted(shown, key=lambda item: (item[0], SLOTS.index(item[1]))):
        row = found.get((day.isoformat(), slot))
        when = f"{day_label(day)}{SLOT_CN[slot]}"
        if row is None:
            lines.append(f"{when} 未报")
            continue
        temperature = f" {row['temperature']:.1f}℃" if row["temperature"] is not None else ""
        symptoms = f" {row['symptoms']}" if row["symptoms"] else ""
        lines.append(
            f"{when} {STATUS_CN[row['status']]}{temperature}"
            f"{symptoms}（{row['member'] or ''} {row['reported_at'][11:16]}）"
        )
    for need in open_needs(turn.ctx.db, [subject["unit"]]):
        if need["subject_id"] == subject["id"]:
            owner = f"，{need['owner']}包干" if need["owner"] else ""
            lines.append(f"需求 #{need['id']}（{need['kind']}）{need['text']}：未办结{owner}")
    return "\n".join(lines)


def _slots_owed(turn: Turn, subject: dict, since: dt.date) -> list[tuple[dt.date, str]]:
    """The (day, slot) of the last days that were due for this subject while it was
    monitored, oldest first: reported or not (a missed one shows as 未报)."""
    config = turn.ctx.config
    today = monitoring_day(turn.at)
    first = max(since, dt.date.fromisoformat(subject["start_date"]))
    last = min(today, dt.date.fromisoformat(subject["end_date"]))
    if subject.get("released_on"):
        last = min(last, dt.date.fromisoformat(subject["released_on"]) - dt.timedelta(days=1))
    due = []
    day = first
    while day <= last:
        for slot in SLOTS:
            deadline = dt.datetime.combine(day, config.slots[slot].deadline, tzinfo=config.tz)
            if deadline <= turn.at:
                due.append((day, slot))
        day += dt.timedelta(days=1)
    # only slots a member of the subject was prompted for (none before go-live, none the
    # schedule skipped): the prompts' send keys, looked up by key
    members = [m["id"] for m in subject_members(turn.ctx.db, subject["id"])]
    keys = {
        send_key(kind="prompt", target=f"person:{member}", day=day, slot=slot): (day, slot)
        for member in members
        for day, slot in due
    }
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    sent = {
        key
        for (key,) in turn.ctx.db.execute(
            f"SELECT key FROM sends WHERE key IN ({marks})", list(keys)
        )
    }
    owed = {keys[key] for key in sent}
    return [pair for pair in due if pair in owed]


@command("解除", "解除隔离", roles=SECRETARY, usage="解除 张三 — 解除监测", takes_args=True)
def release(turn: Turn) -> str:
    subject = _subject(turn, turn.args)
    if subject["status"] != "active":
        return f"{subject['name']}已不在监测中，无需解除。"
    day = monitoring_day(turn.at)
    turn.ctx.db["subjects"].update(
        subject["id"], {"status": "released", "released_on": day.isoformat()}
    )
    record_change(
        turn.ctx.db,
        turn.at,
        f"person:{turn.person['id']}",
        "subjects",
        subject["id"],
        "release",
        {"status": subject["status"]},
        {"status": "released", "released_on": day.isoformat()},
    )
    told = _tell_members(
        turn,
        subject,
        f"【解除监测】{subject['name']}经村书记确认，{day_label(day)}起解除居家监测，无需再联系。",
    )
    return f"已解除{subject['name']}的居家监测（{day_label(day)}起不再提醒联系）。{told}"


# 7, 7天, 七天, 十五天, 两天, 二十一日: digits or a Chinese number from 一 to 九十九
_DAYS = re.compile(
    r"\s*(?P<days>\d{1,3}|[一二两三四五六七八九]?十[一二三四五六七八九]?|[一二两三四五六七八九])"
    r"\s*[天日]?$"
)


def _name_and_days(turn: Turn, text: str) -> tuple[str, int] | None:
    """The name and the days of `张三 7天` / `李四 七天` / `王五十天` (said in one breath: the
    longest name that is on the roster wins, so 王五十天 is 王五 for ten days; with none on the
    roster, the longest number, for the answer that names the unknown name)."""
    splits = []
    for start in range(len(text) - 1, 0, -1):
        match = _DAYS.match(text, start)
        if match and text[:start].strip():
            days = match["days"]
            splits.append((text[:start].strip(), int(days) if days.isdigit() else cn_integer(days)))

    def on_roster(name: str) -> bool:
        name = name.strip(" ：:，,。")
        return bool(find_subjects_by_name(turn.ctx.db, turn.person["unit"], name))

    for name, days in splits:
        if on_roster(name):
            return name, days
    if not splits or on_roster(text):  # 延长 张三: a name that ends in a numeral, no days
        return None
    return min(splits, key=lambda split: len(split[0]))


@command("延长", "延期", roles=SECRETARY, usage="延长 张三 7天 — 延长监测期", takes_args=True)
def extend(turn: Turn) -> str:
    found = _name_and_days(turn, turn.args.strip())
    if found is None:
        raise UserError("请写明姓名和天数，例如：延长 张三 7天")
    name, days = found
    if not 1 <= days <= 90:
        raise UserError("延长天数应在1到90天之间，例如：延长 张三 7天")
    subject = _subject(turn, name)
    if subject.get("purged_on"):  # its personal data was erased after its retention
        raise UserError(
            f"{subject['name']}的监测期已结束多日，个人信息已按规定清除，不能再延长；"
            "如需重新监测，请在名单中新增一期（开始日期写今天）后导入。"
        )
    changes = {"days": subject["days"] + days, "status": "active", "released_on": None}
    turn.ctx.db["subjects"].update(subject["id"], changes)
    record_change(
        turn.ctx.db,
        turn.at,
        f"person:{turn.person['id']}",
        "subjects",
        subject["id"],
        "extend",
        {"days": subject["days"], "status": subject["status"]},
        changes,
    )
    end = dt.date.fromisoformat(subject["start_date"]) + dt.timedelta(days=changes["days"] - 1)
    told = _tell_members(
        turn,
        subject,
        f"【延长监测】{subject['name']}的监测期延长{days}天，至{day_label(end)}，请继续每日三次联系。",
    )
    return f"已将{subject['name']}的监测期延长{days}天，至{day_label(end)}。{told}"


def _tell_members(turn: Turn, subject: dict, text: str) -> str:
    """The subject's members hear of a release or an extension at once (kind `release`),
    so none keeps reporting, or stops, on a list that changed; what the secretary is told."""
    members = [
        member
        for member in subject_members(turn.ctx.db, subject["id"])
        if member["active"] and member["id"] != turn.person["id"]
    ]
    tell(turn, members, "release", text)
    if not members:
        return ""
    return f"已通知网格员{'、'.join(member['name'] for member in members)}。"


def _problem_line(need: dict, now: dt.datetime) -> str:
    owner = need["owner"] or "（未定）"
    level = LEVEL_CN.get(need["level"] or "village", "村")
    due = ""
    if need["due_at"]:
        late = "，已逾期" if is_overdue(need, now) else ""
        due = f"，{time_label(need['due_at'])}前{late}"
    return (
        f"#{need['id']} {need['subject']} [{need['kind']}] {need['text']}"
        f"（{time_label(need['created_at'])}登记；{level}级 {owner}包干{due}）"
    )


@command(
    "需求", "需求清单", roles=SECRETARY | {"monitor"}, usage="需求 — 未办结的需求", takes_args=True
)
def list_needs(turn: Turn) -> str:
    needs = open_needs(turn.ctx.db, descendants(turn.ctx.db, turn.person["unit"]))
    query = turn.args.strip()
    if query:
        needs = [n for n in needs if query in n["subject"] or query in n["text"]]
    if not needs:
        more = f"与“{query[:20]}”有关的" if query else ""
        return f"目前没有{more}未办结的需求。例如发送“需求”查看全部。"
    lines = [f"未办结需求（{len(needs)}条，办结请发“办结 编号 说明”）："]
    lines += [_problem_line(need, turn.at) for need in needs]
    return "\n".join(lines)


def finish_need(turn: Turn) -> str:
    match = re.match(r"^[#＃\s]*(\d+)\s*[，,。：:；;\s]*(.*)$", turn.args, re.S)
    if match is None:
        raise UserError("请写上需求编号和办理情况，例如：办结 3 已送菜上门（发送“需求”查看编号）")
    number, note = int(match[1]), match[2].strip()[:200]
    db = turn.ctx.db
    need = get_problem(db, number)
    if turn.roles & (SECRETARY | {"monitor"}):
        ours = need is not None and need["unit"] in descendants(db, turn.person["unit"])
    else:  # a member closes what they own (包干负责), wherever its subject lives
        ours = need is not None and need["owner_id"] == turn.person["id"]
        if need is not None and not ours and need["created_by"] == turn.person["id"]:
            if need["status"] == "open":
                raise UserError(
                    f"第{number}号需求现由{need['owner'] or '书记'}包干，请联系其办结。"
                )
            ours = True  # they raised it: they may hear that it is closed
    if need is None or not ours:
        if turn.roles & (SECRETARY | {"monitor"}):
            raise UserError(f"没有未办结的第{number}号需求，发送“需求”查看编号。")
        raise UserError(f"没有由您包干、未办结的第{number}号需求，请核对编号，例如：办结 3")
    if need["status"] != "open":
        when = time_label(dt.datetime.fromisoformat(need["closed_at"])) if need["closed_at"] else ""
        raise UserError(f"第{number}号需求已于{when}由{need['closer'] or '他人'}办结，无需再办。")
    close_need(db, need["id"], turn.person["id"], turn.at, note)
    noted = f"，说明：{note}" if note else ""
    # who raised it and who owned it hear it is done (the closer excepted)
    others = {need["created_by"], need["owner_id"]} - {None, turn.person["id"]}
    if others:
        marks = ",".join("?" * len(others))
        people = list(
            db.query(f"SELECT * FROM people WHERE active AND id IN ({marks})", list(others))
        )
        tell(
            turn,
            people,
            "escalation",
            f"【需求办结】#{need['id']} {need['subject']} {need['text']}："
            f"已由{turn.person['name']}于 {turn.at:%H:%M} 办结{noted}。",
        )
    return f"已办结 #{need['id']}：{need['subject']} {need['text']}{noted}。"


command(
    "办结",
    "完成",
    roles=SECRETARY | {"monitor"},
    usage="办结 3 说明 — 办结第3号需求",
    takes_args=True,
)(finish_need)
# the member who owns a problem (包干负责) closes it too; only with its number, so that a
# member's 完成 or 办结 alone is never taken for a command
command(
    "办结",
    roles={"member"},
    usage="办结 3 说明 — 办结我包干的第3号需求",
    takes_args=True,
    args_pattern=r"^[#＃\s]*\d",
)(finish_need)


@command(
    "周报",
    "每周会商",
    "会商",
    roles=SECRETARY | {"monitor", "medic"},
    usage="周报 — 上周的会商材料（周报 本周：本周至今）",
    takes_args=True,
)
def weekly_pack(turn: Turn) -> str:
    from bot.links import review_link
    from schedules.review import build_review, monday_of, review_text

    ctx, unit = turn.ctx, turn.person["unit"]
    village = village_of(ctx.db, unit)
    level = (get_unit(ctx.db, unit) or {}).get("level")
    # a secretary or medic of a grid reads their village; above villages, their own unit
    scope = village if village and level == "grid" else unit
    this_week = monday_of(monitoring_day(turn.at))
    args = turn.args.strip()
    if args in ("本周", "这周", "本星期"):
        start = this_week
    elif args in ("", "上周", "上星期"):
        start = this_week - dt.timedelta(days=7)
    else:
        raise UserError("请发送“周报”查看上周，或“周报 本周”查看本周至今。")
    pack = build_review(ctx.db, ctx.config, scope, start, turn.at)
    return review_text(pack, review_link(ctx.db, ctx.config, scope, start, turn.at))
