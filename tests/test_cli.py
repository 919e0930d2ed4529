"""The command line contract (DESIGN §7), through click's CliRunner on real files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import openpyxl
import pytest
import sqlite_utils
from click.testing import CliRunner, Result

from bot.cli.main import cli
from storage.contacts import NewContact, record_contacts
from storage.db import open_db
from storage.migrations import MIGRATIONS
from storage.outbox import queue_message
from tests.conftest import NOW

TZ = dt.timezone(dt.timedelta(hours=8))
LEDGER_KEYS = [
    "date",
    "slot",
    "unit",
    "subject",
    "category",
    "member",
    "temperature",
    "status",
    "symptoms",
    "reported_at",
    "late",
]
OUTBOX_KEYS = ["id", "at", "to", "person", "kind", "text", "status"]
RunCli = Callable[..., Result]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=TZ)


def ids(database: sqlite_utils.Database, table: str) -> dict[str, int]:
    return {r["name"]: r["id"] for r in database.query(f"SELECT id, name FROM {table}")}


# ---------------------------------------------------------------- init


def test_init_creates_the_database_and_is_repeatable(run_cli: RunCli, db_path: Path) -> None:
    first = run_cli("init")
    assert first.exit_code == 0, first.output
    assert f"schema version {len(MIGRATIONS)}" in first.stdout
    assert db_path.exists()
    database = open_db(db_path)
    schema = database.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    database.close()

    second = run_cli("init")
    assert second.exit_code == 0, second.output
    assert second.stdout == first.stdout
    database = open_db(db_path)
    assert database.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    database.close()


def test_db_defaults_to_gridwatch_db_env_then_working_directory(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["init"], env={"GRIDWATCH_DB": str(tmp_path / "env.db")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()
    assert not (tmp_path / "gridwatch.db").exists()
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "gridwatch.db").exists()  # cwd is tmp_path


def test_a_bad_config_stops_a_command_naming_the_key(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "gridwatch.toml").write_text('fever_threshold = "hot"\n', encoding="utf-8")
    result = run_cli("init")
    assert result.exit_code == 1
    assert "fever_threshold" in result.stderr
    assert not (tmp_path / "gridwatch.db").exists()


def test_config_option_and_env(run_cli: RunCli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = run_cli("init", "--config", missing)
    assert result.exit_code == 1
    assert "nowhere.toml" in result.stderr
    result = run_cli("init", env={"GRIDWATCH_CONFIG": str(missing)})
    assert result.exit_code == 1
    assert "GRIDWATCH_CONFIG" in result.stderr
    result = run_cli("init", env={"GRIDWATCH_CHANNEL": "sms"})
    assert result.exit_code == 1
    assert "GRIDWATCH_CHANNEL" in result.stderr


# ---------------------------------------------------------------- parse


def test_parse_batch_reads_like_parse_at(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "hot.toml"
    config.write_text("fever_threshold = 37.5\n", encoding="utf-8")
    line = {"text": "张三 37.4", "names": ["张三"], "at": "2026-03-02T00:30:00Z"}
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    single = run_cli(
        "parse", line["text"], "--names", "张三", "--at", line["at"], "--json", "--config", config
    )
    result = run_cli("parse", "--batch", batch, "--config", config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(single.stdout)
    assert json.loads(result.stdout)["slot"] == "morning"
    assert json.loads(result.stdout)["entries"][0]["status"] == "normal"


# ---------------------------------------------------------------- roster


def test_roster_import_good(run_cli: RunCli, roster_dir: Path, db_path: Path) -> None:
    result = run_cli("roster", "import", roster_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "导入完成：units: 新增 5，更新 0，未变 0；people: 新增 9，更新 0，未变 0；"
        "subjects: 新增 30，更新 0，未变 0\n"
    )
    again = run_cli("roster", "import", roster_dir)
    assert again.exit_code == 0, again.output
    assert "subjects: 新增 0，更新 0，未变 30" in again.stdout


def test_the_example_roster_imports_as_shipped(run_cli: RunCli) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples" / "demo_roster"
    result = run_cli("roster", "import", examples)
    assert result.exit_code == 0, result.output


def break_roster(folder: Path) -> None:
    """Two bad rows in subjects.csv: line 3 an unknown member, line 5 an unknown unit."""
    path = folder / "subjects.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    rows[2][7] = "王大锤"
    rows[4][4] = "HX09"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def test_roster_import_bad_lists_every_error_and_changes_nothing(
    run_cli: RunCli, roster_dir: Path, db_path: Path, dump_db
) -> None:
    assert run_cli("init").exit_code == 0
    database = open_db(db_path)
    before = dump_db(database)
    database.close()

    break_roster(roster_dir)
    result = run_cli("roster", "import", roster_dir)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "subjects 第3行：网格员“王大锤”不存在，请先在 people 表中填写",
        "subjects 第5行：单位“HX09”不存在，请先在 units 表中填写",
        "Error: 名单有 2 处错误，未导入任何数据",
    ]
    database = open_db(db_path)
    assert dump_db(database) == before
    database.close()


def test_roster_import_of_a_missing_file(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("roster", "import", tmp_path / "nowhere.xlsx")
    assert result.exit_code == 1
    assert "文件不存在" in result.stderr


def test_roster_import_dry_run_writes_nothing(
    run_cli: RunCli, roster_dir: Path, db_path: Path
) -> None:
    result = run_cli("roster", "import", roster_dir, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "检查通过" in result.stdout
    database = open_db(db_path)
    assert database.execute("SELECT count(*) FROM subjects").fetchone()[0] == 0
    assert database.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    database.close()

    break_roster(roster_dir)
    result = run_cli("roster", "import", roster_dir, "--dry-run")
    assert result.exit_code == 1
    assert "subjects 第5行" in result.stderr


def test_roster_export_then_import_elsewhere(
    run_cli: RunCli, runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    assert run_cli("roster", "import", roster_dir).exit_code == 0
    out = tmp_path / "名单.xlsx"
    result = run_cli("roster", "export", out)
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["units", "people", "subjects"]
    assert [c.value for c in book["subjects"][1]][:3] == ["姓名", "手机", "类别"]
    book.close()

    other = tmp_path / "other.db"
    result = runner.invoke(cli, ["roster", "import", str(out), "--db", str(other)])
    assert result.exit_code == 0, result.output
    assert "新增 30" in result.stdout
    again = run_cli("roster", "import", out)
    assert "subjects: 新增 0，更新 0，未变 30" in again.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("roster", "export", "missing/roster.xlsx"),
        ("ledger", "--format", "json", "--out", "missing/ledger.json"),
        ("ledger", "--format", "xlsx", "--out", "missing/ledger.xlsx"),
    ],
)
def test_an_unwritable_output_is_a_clear_error(
    run_cli: RunCli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    run_cli("init")
    result = run_cli(*(str(tmp_path / a) if a.startswith("missing/") else a for a in args))
    assert result.exit_code == 1
    assert "cannot write" in result.stderr and "missing" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_roster_export_needs_an_xlsx_name(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("roster", "export", tmp_path / "roster.csv")
    assert result.exit_code == 2
    assert ".xlsx" in result.stderr
    assert not (tmp_path / "roster.csv").exists()


# ---------------------------------------------------------------- ledger


@pytest.fixture
def reported(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """Four current reports (and one replaced one) across two grids and two days."""
    subject = ids(loaded_db, "subjects")
    person = ids(loaded_db, "people")

    def report(day: str, slot: str, member: str, time: str, *contacts: NewContact) -> None:
        record_contacts(
            loaded_db,
            list(contacts),
            day=dt.date.fromisoformat(day),
            slot=slot,
            member_id=person[member],
            at=at(time),
            inbox_id=None,
            actor=member,
        )

    report(
        "2026-03-01",
        "evening",
        "梁红",
        "2026-03-01T19:05:00",
        NewContact(subject["张三"], None, "unreachable", []),
    )
    report(
        "2026-03-02",
        "morning",
        "梁红",
        "2026-03-02T08:20:00",
        NewContact(subject["张三"], 36.9, "normal", []),
    )
    report(
        "2026-03-02",
        "morning",
        "梁红",
        "2026-03-02T08:30:00",  # replaces the 08:20 one
        NewContact(subject["张三"], 36.5, "normal", []),
        NewContact(subject["罗娟"], 37.8, "abnormal", ["发热", "咳嗽"]),
    )
    report(
        "2026-03-02",
        "morning",
        "吴秀兰",
        "2026-03-02T10:15:00",  # after the 10:00 deadline
        NewContact(subject["唐伟"], 36.6, "normal", []),
    )
    return loaded_db


EXPECTED_LEDGER = [
    {"date": "2026-03-01", "slot": "evening", "unit": "HX01", "subject": "张三",
     "category": "涉鄂人员", "member": "梁红", "temperature": None, "status": "unreachable",
     "symptoms": [], "reported_at": "2026-03-01T19:05:00+08:00", "late": False},
    {"date": "2026-03-02", "slot": "morning", "unit": "HX01", "subject": "张三",
     "category": "涉鄂人员", "member": "梁红", "temperature": 36.5, "status": "normal",
     "symptoms": [], "reported_at": "2026-03-02T08:30:00+08:00", "late": False},
    {"date": "2026-03-02", "slot": "morning", "unit": "HX01", "subject": "罗娟",
     "category": "疑似症状人员", "member": "梁红", "temperature": 37.8, "status": "abnormal",
     "symptoms": ["发热", "咳嗽"], "reported_at": "2026-03-02T08:30:00+08:00", "late": False},
    {"date": "2026-03-02", "slot": "morning", "unit": "HX02", "subject": "唐伟",
     "category": "涉鄂人员", "member": "吴秀兰", "temperature": 36.6, "status": "normal",
     "symptoms": [], "reported_at": "2026-03-02T10:15:00+08:00", "late": True},
]  # fmt: skip


def ledger_json(run_cli: RunCli, *options: str) -> list[dict]:
    result = run_cli("ledger", "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ledger_json_rows_and_keys(run_cli: RunCli, reported: sqlite_utils.Database) -> None:
    rows = ledger_json(run_cli)
    assert all(list(row) == LEDGER_KEYS for row in rows)
    assert rows == EXPECTED_LEDGER


def test_ledger_of_an_empty_database_is_an_empty_list(run_cli: RunCli) -> None:
    assert ledger_json(run_cli) == []


LEDGER_FILTERS = [
    # options, the subjects of the rows printed
    (("--unit", "HX01"), ["张三", "张三", "罗娟"]),
    (("--unit", "HX02"), ["唐伟"]),
    (("--unit", "HX"), ["张三", "张三", "罗娟", "唐伟"]),  # the village's grids
    (("--unit", "KC"), ["张三", "张三", "罗娟", "唐伟"]),  # county: the whole tree
    (("--date", "2026-03-01"), ["张三"]),
    (("--date", "2026-03-02"), ["张三", "罗娟", "唐伟"]),
    (("--date", "2026-03-03"), []),
    (("--unit", "HX02", "--date", "2026-03-01"), []),
]


@pytest.mark.parametrize(
    ("options", "subjects"), LEDGER_FILTERS, ids=[" ".join(o) for o, _ in LEDGER_FILTERS]
)
def test_ledger_filters(
    run_cli: RunCli, reported: sqlite_utils.Database, options: tuple[str, ...], subjects: list
) -> None:
    assert [row["subject"] for row in ledger_json(run_cli, *options)] == subjects


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--unit", "NOWHERE"), "NOWHERE"),
        (("--date", "2026-02-30"), "2026-02-30"),
        (("--date", "yesterday"), "yesterday"),
    ],
)
def test_ledger_bad_options(
    run_cli: RunCli, reported: sqlite_utils.Database, options: tuple[str, ...], message: str
) -> None:
    result = run_cli("ledger", "--format", "json", *options)
    assert result.exit_code == 2
    assert message in result.stderr


LEDGER_HEADERS_CN = ["日期", "时段", "单位", "监测对象", "类别", "网格员", "体温", "状态", "症状",
                     "上报时间", "迟报"]  # fmt: skip


def test_ledger_csv_is_the_xlsx_for_excel(run_cli: RunCli, reported: sqlite_utils.Database) -> None:
    """UTF-8 with a BOM (Excel on a Chinese Windows reads it), the .xlsx's headers and cells."""
    result = run_cli("ledger", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\xef\xbb\xbf\xe6\x97\xa5\xe6\x9c\x9f,")  # BOM 日期
    rows = list(csv.reader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert rows[0] == LEDGER_HEADERS_CN
    assert rows[1:] == [
        ["2026-03-01", "晚", "河西村第一网格", "张三", "涉鄂人员", "梁红", "", "未联系上", "",
         "2026-03-01 19:05", ""],
        ["2026-03-02", "早", "河西村第一网格", "张三", "涉鄂人员", "梁红", "36.5", "正常", "",
         "2026-03-02 08:30", ""],
        ["2026-03-02", "早", "河西村第一网格", "罗娟", "疑似症状人员", "梁红", "37.8", "异常",
         "发热、咳嗽", "2026-03-02 08:30", ""],
        ["2026-03-02", "早", "河西村第二网格", "唐伟", "涉鄂人员", "吴秀兰", "36.6", "正常", "",
         "2026-03-02 10:15", "是"],
    ]  # fmt: skip


def test_ledger_csv_of_an_empty_database_is_the_header(run_cli: RunCli) -> None:
    result = run_cli("ledger", "--format", "csv")
    assert result.stdout_bytes.decode("utf-8") == "\ufeff" + ",".join(LEDGER_HEADERS_CN) + "\n"


def test_ledger_csv_and_json_to_a_file(
    run_cli: RunCli, reported: sqlite_utils.Database, tmp_path: Path
) -> None:
    for fmt in ("csv", "json"):
        out = tmp_path / f"ledger.{fmt}"
        result = run_cli("ledger", "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
        assert "4 rows" in result.stdout
        text = out.read_text(encoding="utf-8")
        assert text == run_cli("ledger", "--format", fmt).stdout


def test_ledger_xlsx(run_cli: RunCli, reported: sqlite_utils.Database, tmp_path: Path) -> None:
    out = tmp_path / "台账.xlsx"
    result = run_cli("ledger", "--format", "xlsx", "--out", out, "--unit", "HX")
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    try:
        sheet = book.active
        assert sheet.freeze_panes == "A2"
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
    finally:
        book.close()
    assert rows[0] == LEDGER_HEADERS_CN
    assert rows[1:] == [
        ["2026-03-01", "晚", "河西村第一网格", "张三", "涉鄂人员", "梁红", None, "未联系上", None,
         "2026-03-01 19:05", None],
        ["2026-03-02", "早", "河西村第一网格", "张三", "涉鄂人员", "梁红", 36.5, "正常", None,
         "2026-03-02 08:30", None],
        ["2026-03-02", "早", "河西村第一网格", "罗娟", "疑似症状人员", "梁红", 37.8, "异常",
         "发热、咳嗽", "2026-03-02 08:30", None],
        ["2026-03-02", "早", "河西村第二网格", "唐伟", "涉鄂人员", "吴秀兰", 36.6, "正常", None,
         "2026-03-02 10:15", "是"],
    ]  # fmt: skip


def test_ledger_files_never_hold_a_live_formula(
    run_cli: RunCli, reported: sqlite_utils.Database, tmp_path: Path
) -> None:
    reported.execute("UPDATE subjects SET name = '=1+1' WHERE name = '张三'")
    text = run_cli("ledger", "--format", "csv").stdout
    assert "\n2026-03-02,早,河西村第一网格,'=1+1," in text
    assert json.loads(run_cli("ledger", "--format", "json").stdout)[1]["subject"] == "=1+1"
    out = tmp_path / "台账.xlsx"
    assert run_cli("ledger", "--format", "xlsx", "--out", out).exit_code == 0
    book = openpyxl.load_workbook(out)
    try:
        cells = [row[3] for row in book.active.iter_rows(min_row=2) if row[3].value == "=1+1"]
    finally:
        book.close()
    assert [cell.data_type for cell in cells] == ["s", "s"]


def test_ledger_xlsx_needs_out(run_cli: RunCli, reported: sqlite_utils.Database) -> None:
    result = run_cli("ledger", "--format", "xlsx")
    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_ledger_format_is_required(run_cli: RunCli) -> None:
    result = run_cli("ledger")
    assert result.exit_code == 2
    assert "--format" in result.stderr


# ---------------------------------------------------------------- outbox


@pytest.fixture
def queued(loaded_db: sqlite_utils.Database) -> sqlite_utils.Database:
    liang = next(loaded_db.query("SELECT * FROM people WHERE name = '梁红'"))
    chen = next(loaded_db.query("SELECT * FROM people WHERE name = '陈志刚'"))
    queue_message(
        loaded_db,
        at=at("2026-03-02T08:00:00"),
        person=liang,
        kind="prompt",
        text="早上好，请联系：张三、李四\n例：张三36.5 李四36.8",
    )
    queue_message(
        loaded_db,
        at=at("2026-03-02T10:30:00"),
        person=chen,
        kind="digest",
        text="河西村 3月2日 第1次汇报",
        status="sent",
    )
    return loaded_db


def test_outbox_json_keys_and_rows(run_cli: RunCli, queued: sqlite_utils.Database) -> None:
    result = run_cli("outbox", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [list(row) for row in rows] == [OUTBOX_KEYS, OUTBOX_KEYS]
    assert [{k: v for k, v in row.items() if k != "id"} for row in rows] == [
        {"at": "2026-03-02T08:00:00+08:00", "to": "lianghong", "person": "梁红", "kind": "prompt",
         "text": "早上好，请联系：张三、李四\n例：张三36.5 李四36.8", "status": "queued"},
        {"at": "2026-03-02T10:30:00+08:00", "to": "chenzhigang", "person": "陈志刚",
         "kind": "digest", "text": "河西村 3月2日 第1次汇报", "status": "sent"},
    ]  # fmt: skip


def test_outbox_since(run_cli: RunCli, queued: sqlite_utils.Database) -> None:
    result = run_cli("outbox", "--json", "--since", "2026-03-02T09:00")
    assert [row["kind"] for row in json.loads(result.stdout)] == ["digest"]
    result = run_cli("outbox", "--json", "--since", "2026-03-03T00:00")
    assert json.loads(result.stdout) == []


def test_outbox_text_lists_one_line_per_message(
    run_cli: RunCli, queued: sqlite_utils.Database
) -> None:
    result = run_cli("outbox")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "prompt" in lines[0] and "梁红" in lines[0] and "早上好" in lines[0]
    assert "digest" in lines[1] and "sent" in lines[1]


def test_outbox_of_an_empty_database(run_cli: RunCli) -> None:
    result = run_cli("outbox", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


# ---------------------------------------------------------------- help


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))


def test_help_lists_the_surface(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("init", "roster", "ledger", "outbox"):
        assert f"  {name} " in result.stdout


@pytest.mark.parametrize(
    "path", [path for path, _ in COMMANDS], ids=lambda p: " ".join(("gridwatch", *p))
)
def test_every_command_has_help(runner: CliRunner, path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    assert command.help, f"gridwatch {' '.join(path)} has no help text"
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    first_paragraph = command.help.split("\n\n")[0]
    assert " ".join(first_paragraph.split()) in " ".join(result.stdout.split())


def test_roster_lists_its_subcommands(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["roster", "--help"])
    assert "import" in result.stdout and "export" in result.stdout


def test_help_commands_take_db_and_config(runner: CliRunner) -> None:
    for path in (("init",), ("roster", "import"), ("roster", "export"), ("ledger",), ("outbox",)):
        result = runner.invoke(cli, [*path, "--help"])
        assert "--db" in result.stdout and "--config" in result.stdout, path


def test_outbox_retry_sends_failed_messages_again(run_cli, loaded_db: sqlite_utils.Database):
    """A failed message stays visible and can be sent again: by id, or every failed one."""
    person = next(loaded_db.query("SELECT * FROM people WHERE name = '陈志刚'"))
    at = NOW.replace(hour=10, minute=30)
    ids = [
        queue_message(
            loaded_db, at=at, person=person, kind="digest", text=f"汇总{n}", status="failed"
        )
        for n in range(3)
    ]
    sent = queue_message(loaded_db, at=at, person=person, kind="digest", text="汇总", status="sent")

    result = run_cli("outbox", "--retry", str(ids[0]), "--json")
    assert result.exit_code == 0, result.output
    statuses = {row["id"]: row["status"] for row in json.loads(result.stdout)}
    assert statuses[ids[0]] == "sent" and statuses[ids[1]] == statuses[ids[2]] == "failed"

    refused = run_cli("outbox", "--retry", str(sent))
    assert refused.exit_code == 1 and "only failed or undeliverable" in refused.output

    result = run_cli("outbox", "--retry-failed", "--json")
    assert {row["status"] for row in json.loads(result.stdout)} == {"sent"}


def test_inbox_lists_failed_messages_and_handles_them_again(
    loaded_db: sqlite_utils.Database,
    run_cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import handlers.pipeline

    def broken(turn: object, plan: object) -> tuple[str, str]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handlers.pipeline, "apply_reports", broken)
    said = run_cli("say", "--from", "lianghong", "--at", "2026-03-02T08:41", "张三 36.5")
    assert "系统暂时出错" in said.output
    listed = json.loads(run_cli("inbox", "--json").output)
    assert [(row["sender"], row["text"], row["error"]) for row in listed] == [
        ("lianghong", "张三 36.5", "RuntimeError: disk on fire")
    ]
    assert set(listed[0]) == {"id", "at", "sender", "text", "error"}
    monkeypatch.undo()

    missing = run_cli("inbox", "--rehandle", "999")
    assert missing.exit_code == 1 and "no failed message with id 999" in missing.output
    result = run_cli("inbox", "--rehandle-errors")
    assert result.exit_code == 0, result.output
    assert "1 of 1 message(s) handled" in result.output
    assert json.loads(run_cli("inbox", "--json").output) == []
    replies = [
        row for row in json.loads(run_cli("outbox", "--json").output) if row["to"] == "lianghong"
    ]
    assert [row["status"] for row in replies][-1] == "sent"
    assert "已记录" in replies[-1]["text"] and "张三 36.5℃" in replies[-1]["text"]
