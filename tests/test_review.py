"""A scripted week through the real pipeline and the schedule (DESIGN §11): 梁红 sends
yesterday's text again for every slot, 韩冰 runs a script that sends everyone's report
seconds after each prompt, the others work honestly (one late report, one missed slot). The
weekly pack flags the first two with their evidence and nobody else, and every member's
numbers agree with the prompts in the outbox and the ledger."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlite_utils
from click.testing import Result

from bot.config import Config
from bot.context import Context
from handlers.dates import day_label
from handlers.pipeline import Incoming, handle_message
from schedules.runner import run_due
from tests.conftest import DEMO_ROSTER

TZ = ZoneInfo("Asia/Shanghai")
DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=n) for n in range(7)]  # W10: 3/2 … 3/8
NEXT_MONDAY = dt.date(2026, 3, 9)
TICKS = ["00:05", "08:00", "09:00", "09:30", "10:00", "10:30", "12:00", "13:30", "14:00"]
TICKS += ["18:00", "19:30", "20:00", "20:30", "20:45"]
PROMPTS = {"morning": "08:00", "noon": "12:00", "evening": "18:00"}
HONEST = ["zhoujianguo", "wuxiulan", "zhenghaifeng", "sunliping"]
HONEST_NAMES = ["周建国", "吴秀兰", "郑海峰", "孙丽萍"]
COPIER, SCRIPT = "lianghong", "hanbing"
LATE = (DAYS[2], "noon", "sunliping")  # sent 14:30, after the 14:00 deadline
MISSED = (DAYS[3], "evening", "zhenghaifeng")  # not sent at all
COPIED = {
    "morning": "张三 36.5，李四 36.6，王五 36.4，罗娟 36.7，林峰 36.5，朱丽 36.6",
    "noon": "张三 36.6，李四 36.5，王五 36.5，罗娟 36.6，林峰 36.4，朱丽 36.7",
    "evening": "张三 36.4，李四 36.7，王五 36.6，罗娟 36.5，林峰 36.6，朱丽 36.5",
}


def at(day: dt.date, time: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(time), tzinfo=TZ)


def say(ctx: Context, sender: str, text: str, when: dt.datetime) -> str:
    message = Incoming(channel="console", sender=sender, text=text, at=when, received_at=when)
    return handle_message(ctx, message).reply


def prompted(db: sqlite_utils.Database, sender: str, day: dt.date, slot: str) -> list[str]:
    """The names of the member's prompt for the slot, read from the outbox as a script would."""
    row = db.execute(
        "SELECT o.text FROM outbox o JOIN people p ON p.id = o.person_id WHERE o.kind = 'prompt'"
        " AND p.wechat_id = ? AND o.send_key LIKE ?",
        [sender, f"%|{day.isoformat()}|{slot}"],
    ).fetchone()
    return row[0].split("\n")[1].split("、") if row else []


def honest_messages(
    rng: random.Random, names: list[str], when: dt.datetime
) -> list[tuple[dt.datetime, str]]:
    """One message for all, or one per subject, minutes to an hour and a half in, with the
    subjects' own temperatures; some slots just 全部正常."""
    when += dt.timedelta(minutes=rng.uniform(8, 90))
    style = rng.random()
    if style < 0.25:
        return [(when, "全部正常")]
    temps = [round(rng.uniform(36.1, 36.9), 1) for _ in names]
    if style < 0.6:
        return [(when, "，".join(f"{n} {t}" for n, t in zip(names, temps, strict=True)))]
    out = []
    for name, temp in zip(names, temps, strict=True):
        when += dt.timedelta(seconds=rng.uniform(30, 300))
        out.append(
            (when, rng.choice(["{n} {t}", "{n}体温{t} 正常", "{n}{t}度"]).format(n=name, t=temp))
        )
    return out


def play_week(db: sqlite_utils.Database) -> None:
    config = Config()
    ctx = Context(db, config)
    rng = random.Random(10)
    for day in DAYS:
        events: list[tuple[dt.datetime, int, str, str]] = [
            (at(day, t), 0, "", "") for t in TICKS
        ]  # 0: ticks first at equal times
        pending = sorted(events)
        done: set[dt.datetime] = set()
        while pending:
            when, order, sender, text = pending.pop(0)
            if order == 0:
                if when in done:
                    continue
                done.add(when)
                run_due(db, config, when)
                slot = next((s for s, t in PROMPTS.items() if at(day, t) == when), None)
                if slot is None:
                    continue
                new = []
                for offset, name in enumerate(prompted(db, SCRIPT, day, slot)):
                    temp = round(rng.uniform(36.3, 36.8), 1)
                    new.append(
                        (when + dt.timedelta(seconds=4 + 3 * offset), 1, SCRIPT, f"{name} {temp}")
                    )
                copy_at = when + dt.timedelta(minutes=rng.uniform(20, 40))
                new.append((copy_at, 1, COPIER, COPIED[slot]))
                for sender in HONEST:
                    if (day, slot, sender) == MISSED:
                        continue
                    start = (
                        at(day, "14:30") - dt.timedelta(minutes=90)
                        if (day, slot, sender) == LATE
                        else when
                    )
                    names = prompted(db, sender, day, slot)
                    for sent, message in honest_messages(rng, names, start):
                        if (day, slot, sender) == LATE:
                            sent = max(sent, at(day, "14:30"))
                        new.append((sent, 1, sender, message))
                pending = sorted(pending + new)
            else:
                say(ctx, sender, text, when)
    run_due(db, config, at(NEXT_MONDAY, "09:00"))


@pytest.fixture(scope="module")
def week_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The played week, once for the module (a copy per test is not needed: tests only read,
    or write after what they check)."""
    from storage.db import open_db
    from storage.roster import import_roster
    from tests.conftest import DEMO_ROSTER, NOW

    path = tmp_path_factory.mktemp("week") / "gridwatch.db"
    db = open_db(path)
    import_roster(db, DEMO_ROSTER, now=NOW, categories=Config().categories, period=14)
    play_week(db)
    db.close()
    return path


def cli(week_db: Path, *args: str) -> Result:
    from click.testing import CliRunner

    from bot.cli.main import cli as main

    result = CliRunner().invoke(main, [*args, "--db", str(week_db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def pack(week_db: Path) -> dict:
    found = cli(
        week_db,
        "review",
        "--unit",
        "HX",
        "--week",
        "2026-W10",
        "--json",
        "--at",
        "2026-03-09T09:30",
    )
    return json.loads(found.output)


def test_the_pack_flags_the_copier_and_the_script_and_no_honest_member(pack: dict) -> None:
    flagged = {(f["member"], f["kind"]) for f in pack["flags"]}
    assert ("梁红", "copy_paste") in flagged
    assert ("韩冰", "burst") in flagged
    assert {member for member, _ in flagged} == {"梁红", "韩冰"}
    evidence = {f["kind"]: f for f in pack["flags"]}
    assert "张三 36.5，李四 36.6" in evidence["copy_paste"]["detail"]  # the text itself
    assert "秒内报完全部对象" in evidence["burst"]["detail"]
    assert all("请核实" in f["detail"] for f in pack["flags"])
    by_member = {m["member"]: m for m in pack["members"]}
    assert "copy_paste" in by_member["梁红"]["flags"] and "burst" in by_member["韩冰"]["flags"]
    assert all(by_member[name]["flags"] == [] for name in HONEST_NAMES)


def test_the_pack_has_the_shape_of_design_11(pack: dict) -> None:
    assert list(pack) == [
        "unit", "unit_name", "week", "from", "to", "subjects", "members", "problems", "flags",
        "totals",  # added after §11's keys: the unit's contacts once per subject-slot
    ]  # fmt: skip
    assert list(pack["totals"]) == ["expected", "on_time", "late", "missed"]
    assert (pack["unit"], pack["unit_name"], pack["week"]) == ("HX", "河西村", "2026-W10")
    assert (pack["from"], pack["to"]) == ("2026-03-02", "2026-03-08")
    assert list(pack["subjects"]) == ["active", "new", "released", "abnormal"]
    assert list(pack["problems"]) == ["opened", "closed", "open", "overdue", "items"]
    assert list(pack["members"][0]) == [
        "member", "expected", "on_time", "late", "missed", "median_minutes", "flags"
    ]  # fmt: skip
    assert list(pack["flags"][0]) == ["kind", "member", "date", "detail"]


def test_each_members_numbers_match_the_prompts_and_the_ledger(week_db: Path, pack: dict) -> None:
    db = sqlite_utils.Database(week_db)
    ledger = json.loads(cli(week_db, "ledger", "--unit", "HX", "--format", "json").output)
    by_subject_slot = {(r["date"], r["slot"], r["subject"]): r for r in ledger}
    oracle: dict[str, Counter[str]] = {}
    for name, text, key in db.execute(
        "SELECT person, text, send_key FROM outbox WHERE kind = 'prompt' ORDER BY id"
    ):
        _, _, day, slot = key.split("|")
        if not DAYS[0].isoformat() <= day <= DAYS[-1].isoformat():
            continue
        counts = oracle.setdefault(name, Counter())
        for subject in text.split("\n")[1].split("、"):
            counts["expected"] += 1
            row = by_subject_slot.get((day, slot, subject))
            counts["missed" if row is None else "late" if row["late"] else "on_time"] += 1
    db.close()
    found = {
        m["member"]: Counter({k: m[k] for k in ("expected", "on_time", "late", "missed")})
        for m in pack["members"]
    }
    assert found == oracle
    assert found["孙丽萍"]["late"] >= 1 and found["郑海峰"]["missed"] >= 1
    medians = {m["member"]: m["median_minutes"] for m in pack["members"]}
    assert medians["韩冰"] == 0 and 20 <= medians["梁红"] <= 40
    assert all(8 <= medians[name] <= 120 for name in HONEST_NAMES)


@pytest.mark.parametrize("unit", ["HX", "CG"])
def test_unit_totals_count_each_subject_slot_once_as_the_digests_do(
    week_db: Path, unit: str
) -> None:
    """朱丽 and 沈玉兰 have two members each: each member answers for them in their own record,
    but the unit's totals count each subject-slot once, as the 20:30 digests and the ledger."""
    args = ("review", "--unit", unit, "--week", "2026-W10", "--at", "2026-03-09T09:30")
    found = json.loads(cli(week_db, *args, "--json").output)
    db = sqlite_utils.Database(week_db)
    asked: set[tuple[str, str, str]] = set()
    for text, key in db.execute("SELECT text, send_key FROM outbox WHERE kind = 'prompt'"):
        _, _, day, slot = key.split("|")
        if DAYS[0].isoformat() <= day <= DAYS[-1].isoformat():
            asked.update((day, slot, name) for name in text.split("\n")[1].split("、"))
    digests = [
        text
        for (text,) in db.execute(
            "SELECT text FROM outbox WHERE kind = 'digest' AND person = '陈志刚'"
            " AND text LIKE '【河西村 汇报·第2次】%'"
        )
        if text.split("\n")[0].split("】")[1].split(" ")[0] in {day_label(d) for d in DAYS}
    ]
    assert len(digests) == len(DAYS)
    db.close()
    ledger = json.loads(cli(week_db, "ledger", "--unit", "HX", "--format", "json").output)
    reported = {(r["date"], r["slot"], r["subject"]): r["late"] for r in ledger}
    in_digests = sum(
        int(line.split("应报 ")[1].split("，")[0])
        for text in digests
        for line in text.split("\n")
        if line[:2] in ("早：", "中：", "晚：")
    )
    totals = found["totals"]
    assert totals["expected"] == len(asked) == in_digests
    assert totals["missed"] == sum(key not in reported for key in asked)
    assert totals["late"] == sum(bool(reported.get(key)) for key in asked)
    per_member = sum(m["expected"] for m in found["members"])
    assert per_member > totals["expected"]  # the shared subjects, once per member
    text = cli(week_db, *args).output
    assert f"应报 {totals['expected']}，" in text and f"未报 {totals['missed']}（" in text


def test_monday_sends_the_pack_once_to_the_secretary_and_the_town_monitor(week_db: Path) -> None:
    db = sqlite_utils.Database(week_db)
    rows = db.execute(
        "SELECT person, text, at FROM outbox WHERE kind = 'review'"
        " AND send_key LIKE '%|2026-03-02|week'"
    ).fetchall()
    assert sorted(person for person, _, _ in rows) == ["刘敏", "陈志刚"]
    assert {at for _, _, at in rows} == {"2026-03-09T09:00:00+08:00"}
    texts = dict((person, text) for person, text, _ in rows)
    assert texts["陈志刚"].startswith("【河西村 每周会商】第10周（3月2日—3月8日）")
    assert texts["刘敏"].startswith("【城关镇 每周会商】第10周（3月2日—3月8日）")
    assert all("/review/" in text and "梁红" in text for text in texts.values())
    before = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    db.close()
    database = sqlite_utils.Database(week_db)
    assert run_due(database, Config(), at(NEXT_MONDAY, "09:01")) == []
    assert database.execute("SELECT count(*) FROM outbox").fetchone()[0] == before
    database.close()


def test_monitors_hear_of_each_flag_once_on_the_day_it_is_raised(week_db: Path) -> None:
    db = sqlite_utils.Database(week_db)
    notes = db.execute(
        "SELECT person, text, at FROM outbox WHERE kind = 'review' AND send_key LIKE '%|flags'"
    ).fetchall()
    db.close()
    assert notes and {person for person, _, _ in notes} == {"刘敏"}
    text = "\n".join(t for _, t, _ in notes)
    assert text.count("梁红（河西村） 上报文字多次完全相同") == 1
    assert text.count("韩冰（河西村） 提示发出后数秒内报完全部对象") == 1
    assert not any(name in text for name in HONEST_NAMES)
    assert all(at.endswith("20:45:00+08:00") for _, _, at in notes)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("chenzhigang", "【河西村 每周会商】第10周"),
        ("liumin", "【城关镇 每周会商】第10周"),
        ("huangyonghong", "【河西村 每周会商】第10周"),
        ("lianghong", "仅限"),
    ],
)
def test_weekly_pack_in_chat(week_db: Path, sender: str, expected: str) -> None:
    db = sqlite_utils.Database(week_db)
    reply = say(Context(db, Config()), sender, "周报", at(NEXT_MONDAY, "10:00"))
    db.close()
    assert expected in reply
    if sender != "lianghong":
        assert "请核实" in reply and "/review/" in reply


def test_the_workbook_has_one_sheet_per_part(week_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "review.xlsx"
    cli(
        week_db,
        "review",
        "--unit",
        "HX",
        "--week",
        "2026-W10",
        "--format",
        "xlsx",
        "--out",
        str(out),
    )
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["概况", "考核", "问题", "请核实"]
    members = [row[0] for row in book["考核"].iter_rows(min_row=2, values_only=True)]
    assert "梁红" in members and "韩冰" in members
    flags = list(book["请核实"].iter_rows(min_row=2, values_only=True))
    assert {row[1] for row in flags} == {"梁红", "韩冰"}


def review_link(week_db: Path, person: str = "陈志刚") -> str:
    db = sqlite_utils.Database(week_db)
    text = db.execute(
        "SELECT text FROM outbox WHERE kind = 'review' AND person = ?"
        " AND send_key LIKE '%|2026-03-02|week'",
        [person],
    ).fetchone()[0]
    db.close()
    return text.rsplit("查看详情：", 1)[1].strip()


@pytest.fixture
def page_client(week_db: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app on a copy of the week, its clock at Monday 10:00 (the link's day)."""
    import shutil

    from bot.web.sim import set_sim_now
    from tests.fake_wechat import make_app

    copy = tmp_path / "week.db"
    shutil.copy(week_db, copy)
    db = sqlite_utils.Database(copy)
    set_sim_now(db, Config(), at(NEXT_MONDAY, "10:00"))
    db.close()
    app = make_app(copy, Config())
    yield app.test_client()
    app.extensions["gridwatch_pool"].close_all()


def test_the_page_behind_the_link_shows_the_pack_and_the_charts(
    week_db: Path,
    page_client,  # type: ignore[no-untyped-def]
) -> None:
    link = review_link(week_db)
    path = link.split("127.0.0.1:5000", 1)[1]
    response = page_client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "河西村 · 每周会商" in html and "2026-W10" in html
    for name in ["梁红", "韩冰", *HONEST_NAMES]:
        assert f"<figcaption>{name}</figcaption>" in html
    assert html.count('class="chart share chart-wide"') == 6
    assert "上报文字多次完全相同" in html and "张三 36.5，李四 36.6" in html
    workbook = page_client.get(path + "/xlsx")
    assert workbook.status_code == 200 and workbook.data[:2] == b"PK"
    assert "filename*=UTF-8''" in workbook.headers["Content-Disposition"]
    tampered = page_client.get(path[:-3] + "abc")
    assert tampered.status_code == 403 and "链接" in tampered.get_data(as_text=True)
    # the pack's link opens no day's view, nor a day's link the pack
    assert page_client.get(path.replace("/review/", "/view/")).status_code == 403
    db = sqlite_utils.Database(week_db)
    digest = db.execute(
        "SELECT text FROM outbox WHERE kind = 'digest' AND person = '陈志刚' ORDER BY id DESC"
    ).fetchone()[0]
    db.close()
    day_path = digest.rsplit("查看详情：", 1)[1].strip().split("127.0.0.1:5000", 1)[1]
    assert page_client.get(day_path).status_code == 200
    assert page_client.get(day_path.replace("/view/", "/review/")).status_code == 403


@pytest.mark.parametrize(
    ("created", "closed", "counts"),
    [
        # opened in the week, closed in it
        ("2026-03-03T09:00", "2026-03-04T09:00", (1, 1, 0, 0)),
        # opened in the week, still open at its end, 5 days old: overdue
        ("2026-03-03T09:00", None, (1, 0, 1, 1)),
        # opened on the last day: open, not overdue yet
        ("2026-03-08T09:00", None, (1, 0, 1, 0)),
        # opened before, closed in the week
        ("2026-02-20T09:00", "2026-03-02T12:00", (0, 1, 0, 0)),
        # opened before, closed after the week: open (and overdue) at its end
        ("2026-02-20T09:00", "2026-03-10T12:00", (0, 0, 1, 1)),
        # opened and closed before: not part of the week
        ("2026-02-20T09:00", "2026-02-21T09:00", None),
        # opened after the week: not part of it
        ("2026-03-09T08:00", None, None),
    ],
)
def test_week_problems_from_the_ledger(
    loaded_db: sqlite_utils.Database, created: str, closed: str | None, counts: tuple | None
) -> None:
    from storage.needs import week_problems

    subject = loaded_db.execute("SELECT id FROM subjects WHERE name = '张三'").fetchone()[0]
    loaded_db["needs"].insert(
        {
            "subject_id": subject,
            "kind": "生活物资",
            "text": "=买菜",
            "status": "closed" if closed else "open",
            "created_at": f"{created}:00+08:00",
            "closed_at": f"{closed}:00+08:00" if closed else None,
            "due_at": (
                dt.datetime.fromisoformat(f"{created}:00+08:00") + dt.timedelta(days=3)
            ).isoformat(),
        }
    )
    found = week_problems(loaded_db, "HX", DAYS[0], DAYS[-1], at(NEXT_MONDAY, "12:00"))
    keys = ("opened", "closed", "open", "overdue")
    if counts is None:
        assert [found[k] for k in keys] == [0, 0, 0, 0] and found["items"] == []
        return
    assert tuple(found[k] for k in keys) == counts
    [item] = found["items"]
    # each item as it stands now: one closed after the week shows closed
    assert item["subject"] == "张三" and item["status"] == ("closed" if closed else "open")


def test_the_review_command_refuses_bad_input(run_cli, loaded_db: sqlite_utils.Database) -> None:  # type: ignore[no-untyped-def]
    bad_week = run_cli("review", "--unit", "HX", "--week", "2026-10")
    assert bad_week.exit_code == 2 and "2026-W10" in bad_week.output
    no_week = run_cli("review", "--unit", "HX", "--week", "2026-W60")
    assert no_week.exit_code == 2 and "no such week" in no_week.output
    unknown = run_cli("review", "--unit", "XX", "--week", "2026-W10")
    assert unknown.exit_code == 2 and "unknown unit" in unknown.output
    no_out = run_cli("review", "--unit", "HX", "--week", "2026-W10", "--format", "xlsx")
    assert no_out.exit_code == 2 and "--out" in no_out.output


def test_the_workbook_keeps_user_text_as_text(
    run_cli,
    loaded_db: sqlite_utils.Database,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    subject = loaded_db.execute("SELECT id FROM subjects WHERE name = '张三'").fetchone()[0]
    loaded_db["needs"].insert(
        {
            "subject_id": subject,
            "kind": "其他",
            "text": '=HYPERLINK("http://x","点此")',
            "status": "open",
            "created_at": "2026-03-03T09:00:00+08:00",
            "due_at": "2026-03-05T09:00:00+08:00",
        }
    )
    out = tmp_path / "pack.xlsx"
    args = ("review", "--unit", "HX", "--week", "2026-W10", "--at", "2026-03-09T09:00")
    assert run_cli(*args, "--format", "xlsx", "--out", out).exit_code == 0
    cell = openpyxl.load_workbook(out)["问题"]["D2"]
    assert cell.value == '=HYPERLINK("http://x","点此")' and cell.data_type == "s"
    text = run_cli(*args).output
    assert text.startswith("【河西村 每周会商】第10周（3月2日—3月8日）")
    assert "问题 新增 1，办结 0，未办结 1（逾期 1）" in text


GO_LIVE_TICKS = ["00:05", "08:00", "09:00", "10:00", "12:00", "14:00", "18:00", "20:00", "20:30"]


@pytest.mark.parametrize(
    ("go_live", "packs"),
    [
        # the first Monday: W09 ran before the system; only W10 is a week to review
        (dt.date(2026, 3, 2), {"2026-W09": False, "2026-W10": True}),
        # a Thursday: W10 counts from Thursday's first prompt on
        (dt.date(2026, 3, 5), {"2026-W09": False, "2026-W10": True}),
    ],
    ids=["monday", "thursday"],
)
def test_only_prompted_slots_are_expected_and_an_empty_week_sends_no_pack(
    run_cli, db_path: Path, go_live: dt.date, packs: dict[str, bool]
) -> None:  # type: ignore[no-untyped-def]
    """Nobody reports; a member answers only for the slots they were prompted for, and a week
    in which nothing was asked (before go-live) is no pack on Monday, and says so on demand."""
    assert run_cli("init").exit_code == 0
    assert run_cli("roster", "import", DEMO_ROSTER).exit_code == 0
    day = go_live
    first = True
    while day < NEXT_MONDAY:
        for time in GO_LIVE_TICKS[1:] if first else GO_LIVE_TICKS:
            assert run_cli("tick", "--at", f"{day}T{time}").exit_code == 0
        first, day = False, day + dt.timedelta(days=1)
    assert run_cli("tick", "--at", f"{NEXT_MONDAY}T09:00").exit_code == 0
    db = sqlite_utils.Database(db_path)
    prompted_slots: Counter[str] = Counter()
    for name, text, key in db.execute(
        "SELECT person, text, send_key FROM outbox WHERE kind = 'prompt'"
    ):
        if DAYS[0].isoformat() <= key.split("|")[2] <= DAYS[-1].isoformat():
            prompted_slots[name] += len(text.split("\n")[1].split("、"))
    reviews = [key for (key,) in db.execute("SELECT send_key FROM outbox WHERE kind = 'review'")]
    db.close()
    assert not any("|2026-02-23|week" in key for key in reviews)  # W09: nothing asked
    for week, has_pack in packs.items():
        args = ("review", "--unit", "HX", "--week", week, "--at", f"{NEXT_MONDAY}T10:00")
        found = json.loads(run_cli(*args, "--json").output)
        expected = {m["member"]: m["expected"] for m in found["members"] if m["expected"]}
        text = run_cli(*args).output
        if not has_pack:
            assert expected == {}
            assert "无可会商的内容" in text and "需督促" not in text
            continue
        assert expected == {n: c for n, c in prompted_slots.items() if n in expected}
        assert set(expected) and all(
            m["missed"] == m["expected"] for m in found["members"] if m["expected"]
        )
        assert any(week_start_of(week) in key for key in reviews)
    reply = run_cli("say", "--from", "chenzhigang", "--at", f"{go_live}T21:00", "周报")
    assert "无可会商的内容" in reply.output


def week_start_of(week: str) -> str:
    from schedules.review import week_start

    return f"|{week_start(week).isoformat()}|week"


@pytest.mark.parametrize(
    ("when", "week", "subjects"),
    [
        # 何平's last day was 3/1 (released 3/2 00:05); 杨桂芳's and 袁浩's is 3/7 (3/8 00:05)
        ("2026-03-02T09:00", "2026-W10", {"new": 1, "released": 1}),
        ("2026-03-04T21:00", "2026-W10", {"new": 1, "released": 1}),
        ("2026-03-07T23:59", "2026-W10", {"new": 1, "released": 1}),
        ("2026-03-08T09:00", "2026-W10", {"new": 1, "released": 3}),
        ("2026-03-09T09:30", "2026-W10", {"new": 1, "released": 3}),
        ("2026-03-04T21:00", "2026-W11", {"active": 0, "new": 0, "released": 0}),
    ],
)
def test_a_running_week_counts_its_subjects_as_of_now(
    week_db: Path, when: str, week: str, subjects: dict
) -> None:
    """周报 本周 and `review` on a week still running: only what has happened by now."""
    args = ("review", "--unit", "HX", "--week", week, "--at", when)
    found = json.loads(cli(week_db, *args, "--json").output)["subjects"]
    assert {k: found[k] for k in subjects} == subjects
    if week != "2026-W10":
        return
    line = f"新增 {subjects['new']}，解除 {subjects['released']}，"
    db = sqlite_utils.Database(week_db)
    moment = dt.datetime.fromisoformat(when).replace(tzinfo=TZ)
    reply = say(Context(db, Config()), "chenzhigang", "周报 本周", moment)
    db.close()
    this_week = [reply] if when < "2026-03-09" else []  # on 3/9, 本周 is W11
    for text in [cli(week_db, *args).output, *this_week]:
        # 3/2 09:00: no slot of the week has reached its deadline yet
        assert line in text if when > "2026-03-02T10:00" else "无可会商的内容" in text


@pytest.mark.parametrize(
    ("start", "label"),
    [
        (dt.date(2026, 2, 23), "第9周（2月23日—3月1日）"),
        (dt.date(2026, 3, 2), "第10周（3月2日—3月8日）"),
        (dt.date(2026, 12, 28), "第53周（12月28日—1月3日）"),
    ],
)
def test_the_week_as_chat_says_it(start: dt.date, label: str) -> None:
    from schedules.review import week_label

    assert week_label(start) == label


@pytest.mark.parametrize(
    ("said", "unsaid"),
    [
        ("【河西村 每周会商】第10周（3月2日—3月8日）", "2026-W10"),
        ("郑海峰（迟报1次 未报4人次）", "（迟1 未4）"),
        ("孙丽萍（迟报6次 未报0人次）", "（迟6 未0）"),
    ],
)
def test_the_pack_in_chat_speaks_plainly(week_db: Path, said: str, unsaid: str) -> None:
    db = sqlite_utils.Database(week_db)
    reply = say(Context(db, Config()), "chenzhigang", "周报", at(NEXT_MONDAY, "10:00"))
    db.close()
    assert said in reply and unsaid not in reply


def test_overdue_problems_say_逾期_as_the_needs_list_does(
    run_cli, loaded_db: sqlite_utils.Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    subject = loaded_db.execute("SELECT id FROM subjects WHERE name = '张三'").fetchone()[0]
    loaded_db["needs"].insert(
        {
            "subject_id": subject,
            "kind": "生活物资",
            "text": "买菜",
            "status": "open",
            "created_at": "2026-03-03T09:00:00+08:00",
            "due_at": "2026-03-04T09:00:00+08:00",
        }
    )
    args = ("review", "--unit", "HX", "--week", "2026-W10", "--at", "2026-03-09T09:00")
    text = run_cli(*args).output
    assert "（逾期 1）" in text and "超期" not in text
    out = tmp_path / "pack.xlsx"
    assert run_cli(*args, "--format", "xlsx", "--out", out).exit_code == 0
    book = openpyxl.load_workbook(out)
    cells = {c for sheet in book for row in sheet.iter_rows(values_only=True) for c in row}
    assert {"问题逾期", "逾期"} <= cells and not {"问题超期", "超期"} & cells
