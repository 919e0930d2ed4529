"""`gridwatch demo`: fresh demo data dated around today, played through the real pipeline."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from bot.cli.demo import DEMO_ROSTER, DemoError, build_demo, shift_roster
from bot.cli.main import cli
from bot.config import Config
from bot.web.sim import sim_now
from storage.db import open_db
from tests.conftest import TZ

AT = dt.datetime(2026, 5, 20, 9, 5, tzinfo=TZ)  # the morning slot is under way


def test_shift_roster_makes_the_newest_start_today(tmp_path: Path) -> None:
    shift = shift_roster(DEMO_ROSTER, tmp_path, dt.date(2026, 5, 20))
    with open(tmp_path / "subjects.csv", encoding="utf-8") as handle:
        starts = [row["开始日期"] for row in csv.DictReader(handle)]
    assert max(starts) == "2026-05-20"
    assert shift == (dt.date(2026, 5, 20) - dt.date(2026, 3, 2)).days
    assert "2026-05-06" in starts  # 何平: 2026-02-16 moved by the same shift
    assert (tmp_path / "people.csv").read_bytes() == (DEMO_ROSTER / "people.csv").read_bytes()


@pytest.fixture
def demo(tmp_path: Path, config: Config) -> sqlite_utils.Database:
    path = tmp_path / "demo.db"
    summary = build_demo(path, config, AT, days=2)
    assert summary["subjects"] == 30 and summary["messages"] > 30
    assert summary["link"].startswith("http://127.0.0.1:5000/view/")
    database = open_db(path)
    yield database
    database.close()


def test_demo_has_history_and_todays_past_slots(demo: sqlite_utils.Database) -> None:
    days = [r["date"] for r in demo.query("SELECT DISTINCT date FROM contacts ORDER BY date")]
    assert days == ["2026-05-18", "2026-05-19", "2026-05-20"]
    slots = {r["slot"] for r in demo.query("SELECT slot FROM contacts WHERE date = '2026-05-20'")}
    assert slots == {"morning"}  # noon has not started at 09:05
    outcomes = {r["outcome"] for r in demo.query("SELECT outcome FROM inbox")}
    assert outcomes <= {"ok", "command"}, "every demo message is understood"


def test_demo_leaves_the_first_member_a_prompt_to_answer(demo: sqlite_utils.Database) -> None:
    liang = next(demo.query("SELECT id FROM people WHERE wechat_id = 'lianghong'"))["id"]
    today = list(
        demo.query("SELECT * FROM contacts WHERE member_id = ? AND date = '2026-05-20'", [liang])
    )
    assert today == []
    prompt = list(
        demo.query(
            "SELECT * FROM outbox WHERE person_id = ? AND kind = 'prompt'"
            " AND at LIKE '2026-05-20%'",
            [liang],
        )
    )
    assert len(prompt) == 1


def test_demo_has_alerts_digests_and_needs(demo: sqlite_utils.Database) -> None:
    kinds = {r["kind"] for r in demo.query("SELECT DISTINCT kind FROM outbox")}
    assert {
        "prompt",
        "reminder",
        "missed_alert",
        "abnormal_alert",
        "unreachable_alert",
        "digest",
        "reply",
    } <= kinds
    needs = [(r["status"], r["kind"]) for r in demo.query("SELECT * FROM needs ORDER BY id")]
    assert needs == [("closed", "生活物资"), ("open", "就医")]


def test_demo_clock_starts_at_the_given_time(demo: sqlite_utils.Database, config: Config) -> None:
    assert abs(sim_now(demo, config) - AT) < dt.timedelta(seconds=5)


def test_demo_replaces_its_own_database_only(tmp_path: Path, config: Config) -> None:
    path = tmp_path / "demo.db"
    build_demo(path, config, AT, days=0)
    build_demo(path, config, AT, days=0)  # replaced, not added to
    with open_db(path) as database:
        assert database["subjects"].count == 30
    other = tmp_path / "gridwatch.db"
    open_db(other).close()
    with pytest.raises(DemoError, match="not a gridwatch demo database"):
        build_demo(other, config, AT)
    text = tmp_path / "notes.db"
    text.write_text("not sqlite")
    with pytest.raises(DemoError):
        build_demo(text, config, AT)
    assert text.read_text() == "not sqlite"


def test_demo_command_builds_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[str, int, bool]] = []
    monkeypatch.setattr(
        "bot.serving.server.serve",
        lambda app, host, port: served.append((host, port, app.config["SCHEDULER"])),
    )
    result = CliRunner().invoke(cli, ["demo", "--port", "5123", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:5123/sim" in result.output
    assert "secretary view: http://127.0.0.1:5123/view/" in result.output
    assert served == [("127.0.0.1", 5123, True)]  # the live schedule runs once served
    assert (tmp_path / "gridwatch-demo.db").exists()


def test_demo_at_a_time_keeps_the_live_scheduler_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules: list[bool] = []
    monkeypatch.setattr(
        "bot.serving.server.serve",
        lambda app, host, port: schedules.append(app.config["SCHEDULER"]),
    )
    result = CliRunner().invoke(cli, ["demo", "--db", "x.db", "--at", "2026-05-20T09:05"])
    assert result.exit_code == 0, result.output
    assert schedules == [False]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--at", "soon"], "not an ISO time"),
        (["--db", "gridwatch.db"], "not a gridwatch demo database"),
    ],
)
def test_demo_command_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setattr("bot.serving.server.serve", lambda app, host, port: None)
    open_db(tmp_path / "gridwatch.db").close()
    result = CliRunner().invoke(cli, ["demo", *args])
    assert result.exit_code != 0
    assert message in result.output


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize(
    ("args", "command"),
    [
        ([], ".venv/bin/gridwatch demo"),
        (["PORT=5001"], ".venv/bin/gridwatch demo --port 5001"),
        (["PORT=8080"], ".venv/bin/gridwatch demo --port 8080"),
    ],
)
def test_make_demo_takes_a_port(args: list[str], command: str) -> None:
    """`make demo PORT=5001` when 5000 is taken (the README's first lines)."""
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "--no-print-directory", "demo", "VENV=.venv", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == command
