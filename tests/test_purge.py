"""Personal data has an end (DESIGN §6): past retention_days after a period ended, the
subject's phone and address and the text about it go; reports, counts and audit stay."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils
from click.testing import Result

from bot.config import Config
from schedules.runner import run_due
from storage.purge import purge
from storage.roster import import_roster
from tests.conftest import NOW

TZ_SHANGHAI = ZoneInfo("Asia/Shanghai")

RunCli = Callable[..., Result]
# With 30 days kept, 4/9 erases the 10 periods that ended by 3/9 (张三's: 2/24 – 3/9), not
# 林峰's (3/2 – 3/15)
AFTER = dt.date(2026, 4, 9)
ENDED_BY_3_9 = 10


def subject(db: sqlite_utils.Database, name: str) -> dict:
    return db.execute_returning_dicts("SELECT * FROM subjects WHERE name = ?", [name])[0]


def played(run_cli: RunCli) -> None:
    for at, text in [
        ("2026-03-02T08:40", "张三 36.5"),
        ("2026-03-02T12:40", "张三 36.6，林峰 36.7"),
        ("2026-03-02T12:45", "需求 张三 买菜"),
    ]:
        assert run_cli("say", "--from", "lianghong", "--at", at, text).exit_code == 0


def texts(db: sqlite_utils.Database) -> list[str]:
    return [row[0] for row in db.execute("SELECT text FROM inbox ORDER BY id")]


def test_a_period_ended_past_retention_loses_its_personal_data_and_keeps_its_record(
    loaded_db: sqlite_utils.Database, run_cli: RunCli
) -> None:
    played(run_cli)
    contacts = loaded_db.execute("SELECT count(*) FROM contacts").fetchone()[0]
    done = purge(loaded_db, AFTER, 30)
    assert (done.subjects, done.messages, done.needs) == (ENDED_BY_3_9, 2, 1)
    assert "张三" in done.names and "林峰" not in done.names
    zhang = subject(loaded_db, "张三")
    assert (zhang["phone"], zhang["address"], zhang["purged_on"]) == (None, "", "2026-04-09")
    assert subject(loaded_db, "林峰")["phone"] == "13900000105"
    # the messages about 张三 alone are erased (a report, a need); one about 林峰 too is kept
    assert texts(loaded_db) == ["", "张三 36.6，林峰 36.7", ""]
    assert loaded_db.execute("SELECT text FROM needs").fetchone()[0] == ""
    replies = loaded_db.execute(
        "SELECT o.text FROM outbox o JOIN inbox i ON i.id = o.inbox_id WHERE i.text = ''"
    ).fetchall()
    assert replies and set(replies) == {("",)}
    # what was reported, and the audit trail, stay without the personal fields
    assert loaded_db.execute("SELECT count(*) FROM contacts").fetchone()[0] == contacts
    audit = loaded_db.execute(
        "SELECT after FROM audit WHERE entity = 'subjects' AND entity_id = ?", [str(zhang["id"])]
    ).fetchall()
    assert audit and all(json.loads(after).get("phone") is None for (after,) in audit if after)
    assert purge(loaded_db, AFTER, 30).subjects == 0  # once


def test_a_dry_run_says_what_would_go_and_changes_nothing(
    loaded_db: sqlite_utils.Database, run_cli: RunCli
) -> None:
    played(run_cli)
    result = run_cli("purge", "--dry-run", "--at", "2026-04-09T09:00")
    assert result.exit_code == 0, result.output
    assert f"{ENDED_BY_3_9} subjects; would erase" in result.output and "张三" in result.output
    assert subject(loaded_db, "张三")["phone"] == "13900000101"
    assert texts(loaded_db)[0] == "张三 36.5"
    result = run_cli("purge", "--at", "2026-04-09T09:00")
    assert f"{ENDED_BY_3_9} subjects; erased" in result.output
    assert subject(loaded_db, "张三")["phone"] is None


def test_retention_is_a_setting(loaded_db: sqlite_utils.Database) -> None:
    assert purge(loaded_db, AFTER, 60).subjects == 0
    assert purge(loaded_db, AFTER, 30).subjects == ENDED_BY_3_9


def test_the_daily_release_job_purges(loaded_db: sqlite_utils.Database) -> None:
    config = Config()
    first = dt.datetime(2026, 4, 8, 0, 10, tzinfo=config.tz)
    run_due(loaded_db, config, first)
    ran = run_due(loaded_db, config, first + dt.timedelta(days=1))
    [release] = [run for run in ran if run.job == "release"]
    assert release.detail.endswith("personal data of 4 subjects erased")  # those ended 3/9
    assert subject(loaded_db, "张三")["purged_on"] == "2026-04-09"


def test_reimporting_the_roster_does_not_bring_personal_data_back(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    purge(loaded_db, AFTER, 30)
    report = import_roster(
        loaded_db, roster_dir, now=NOW, categories=Config().categories, period=14
    )
    assert not report.errors
    zhang = subject(loaded_db, "张三")
    assert (zhang["phone"], zhang["address"]) == (None, "")
    assert loaded_db.execute("SELECT count(*) FROM subjects WHERE name = '张三'").fetchone()[0] == 1


def test_nothing_is_erased_ahead_of_the_real_clock(
    loaded_db: sqlite_utils.Database, run_cli: RunCli
) -> None:
    """A rehearsal (`tick --at` a later day) may release, but erasing cannot be undone: it
    waits for the real day. `purge --at` a later day is refused (a dry run may look)."""
    today = dt.datetime.now(TZ_SHANGHAI).date()
    shift = f"{(today - dt.date(2026, 3, 2)).days:+d} days"
    loaded_db.execute("UPDATE subjects SET start_date = date(start_date, ?)", [shift])
    later = (today + dt.timedelta(days=60)).isoformat()
    ticked = run_cli("tick", "--at", f"{later}T00:10")
    assert ticked.exit_code == 0, ticked.output
    assert "erased" not in ticked.output
    assert (
        loaded_db.execute("SELECT count(*) FROM subjects WHERE purged_on IS NOT NULL").fetchone()[0]
        == 0
    )
    refused = run_cli("purge", "--at", f"{later}T09:00")
    assert refused.exit_code == 1 and "later than the clock" in refused.output
    assert run_cli("purge", "--dry-run", "--at", f"{later}T09:00").exit_code == 0


def test_commands_that_named_the_subject_lose_their_text_too(
    loaded_db: sqlite_utils.Database, run_cli: RunCli
) -> None:
    """查 张三 (its answer held the masked phone and the address) by the secretary and by
    the town's monitor: both go with 张三's personal data."""
    for sender in ("chenzhigang", "liumin"):
        said = run_cli("say", "--from", sender, "--at", "2026-03-02T11:00", "查 张三")
        assert "河西村1组12号" in said.output
    purge(loaded_db, AFTER, 30)
    kept = loaded_db.execute(
        "SELECT count(*) FROM outbox WHERE instr(text, '河西村1组12号') > 0"
    ).fetchone()[0]
    assert kept == 0
    assert loaded_db.execute("SELECT count(*) FROM inbox WHERE text = '查 张三'").fetchone()[0] == 0


def test_a_purged_period_cannot_be_extended_in_chat(loaded_db: sqlite_utils.Database, say) -> None:
    purge(loaded_db, AFTER, 30)
    reply = say("chenzhigang", "延长 何平 7天")
    assert "个人信息已按规定清除，不能再延长" in reply
    days = loaded_db.execute("SELECT days FROM subjects WHERE name = '何平'").fetchone()[0]
    assert days == 14  # unchanged


def test_the_problem_ledger_and_acknowledgements_lose_their_wording(
    loaded_db: sqlite_utils.Database, run_cli: RunCli
) -> None:
    played(run_cli)
    for at, sender, text in [
        ("2026-03-02T12:50", "lianghong", "张三 37.8 咳嗽"),
        ("2026-03-02T12:55", "chenzhigang", "已处置 1 已送县医院发热门诊"),
        ("2026-03-02T13:00", "chenzhigang", "办结 1 已送菜到张三家门口"),
    ]:
        assert run_cli("say", "--from", sender, "--at", at, text).exit_code == 0
    run_cli("tick", "--at", "2026-03-04T09:00")  # nothing moves: the need is closed
    purge(loaded_db, AFTER, 30)
    assert loaded_db.execute("SELECT text, note FROM needs").fetchone() == ("", "")
    assert loaded_db.execute("SELECT note FROM alert_acks").fetchone() == ("",)
    trail = loaded_db.execute("SELECT before, after FROM audit WHERE entity = 'needs'").fetchall()
    assert trail and not any(
        "买菜" in (v or "") or "门口" in (v or "") for row in trail for v in row
    )
