"""Roster import and export (DESIGN §6): all or nothing, every bad row reported, idempotent."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import sqlite_utils

from bot.config import Config
from storage.db import connect, transaction
from storage.people import person_by_wechat_id
from storage.roster import ImportReport, import_roster
from storage.roster_cache import cached_village
from storage.roster_export import export_roster
from storage.roster_file import COLUMNS, SHEETS, RosterFileError
from storage.subjects import village_subjects

NOW = dt.datetime.fromisoformat("2026-03-02T08:00:00+08:00")
LATER = NOW + dt.timedelta(days=1)
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo_roster"

Tables = dict[str, list[list[str]] | None]  # sheet → rows, header first (line 1); None: absent

ROLE_EN = {
    "网格员": "member",
    "联户党员": "member",
    "书记": "secretary",
    "督查员": "monitor",
    "医护": "medic",
}
LEVEL_EN = {"县": "county", "镇": "town", "村": "village", "网格": "grid"}


# ---------------------------------------------------------------- building roster files


def demo_tables() -> Tables:
    tables: Tables = {}
    for sheet in SHEETS:
        with open(DEMO / f"{sheet}.csv", encoding="utf-8-sig", newline="") as file:
            tables[sheet] = [row for row in csv.reader(file)]
    return tables


def english(tables: Tables) -> Tables:
    """English headers, role names and level names."""
    out: Tables = {}
    for sheet, rows in tables.items():
        assert rows is not None
        to_english = {chinese: eng for eng, chinese in COLUMNS[sheet].values()}
        header = [to_english[title] for title in rows[0]]
        body = [list(row) for row in rows[1:]]
        for row in body:
            if sheet == "people":
                i = header.index("roles")
                row[i] = ",".join(ROLE_EN[r] for r in row[i].split("、"))
            if sheet == "units":
                i = header.index("level")
                row[i] = LEVEL_EN[row[i]]
        out[sheet] = [header, *body]
    return out


def write_csv(tables: Tables, folder: Path, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sheet, rows in tables.items():
        if rows is not None:
            with open(folder / f"{sheet}.csv", "w", encoding=encoding, newline="") as file:
                csv.writer(file).writerows(rows)
    return folder


def write_xlsx(tables: Tables, path: Path, names: dict[str, str] | None = None) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for sheet, rows in tables.items():
        if rows is not None:
            worksheet = book.create_sheet((names or {}).get(sheet, sheet))
            for row in rows:
                worksheet.append(row)
    book.save(path)
    book.close()
    return path


def write_roster(tables: Tables, where: Path, fmt: str) -> Path:
    if fmt == "csv":
        return write_csv(tables, where)
    return write_xlsx(tables, where.with_suffix(".xlsx"))


def run_import(
    database: sqlite_utils.Database, path: Path, *, now: dt.datetime = LATER, **kwargs: object
) -> ImportReport:
    config = Config()
    return import_roster(
        database,
        path,
        now=now,
        categories=config.categories,
        period=config.period_days,
        **kwargs,  # type: ignore[arg-type]
    )


def snapshot(database: sqlite_utils.Database) -> dict[str, list[tuple]]:
    """The roster as a user sees it: no ids, members by name in their order."""
    subjects = []
    for s in database.query("SELECT * FROM subjects ORDER BY name, unit"):
        members = [
            r["name"]
            for r in database.query(
                "SELECT p.name FROM assignments a JOIN people p ON p.id = a.person_id "
                "WHERE a.subject_id = ? ORDER BY a.position",
                [s["id"]],
            )
        ]
        subjects.append(
            (s["name"], s["phone"], s["category"], s["address"], s["unit"], s["start_date"],
             s["days"], s["end_date"], s["status"], tuple(members))
        )  # fmt: skip
    return {
        "units": database.execute(
            "SELECT code, name, level, parent FROM units ORDER BY code"
        ).fetchall(),
        "people": database.execute(
            "SELECT name, phone, wechat_id, roles, unit, active FROM people ORDER BY name"
        ).fetchall(),
        "subjects": subjects,
    }


def count(database: sqlite_utils.Database, table: str) -> int:
    return database.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def ids_by_name(database: sqlite_utils.Database, table: str) -> dict[str, int]:
    return {r["name"]: r["id"] for r in database.query(f"SELECT id, name FROM {table}")}


def members_of(database: sqlite_utils.Database, subject: str) -> list[str]:
    return [
        r["name"]
        for r in database.query(
            "SELECT p.name FROM subjects s JOIN assignments a ON a.subject_id = s.id "
            "JOIN people p ON p.id = a.person_id WHERE s.name = ? ORDER BY a.position",
            [subject],
        )
    ]


# ---------------------------------------------------------------- edits for the bad-file table


def column_index(tables: Tables, sheet: str, column: str) -> int:
    rows = tables[sheet]
    assert rows is not None
    return rows[0].index(column)


def set_cell(sheet: str, line: int, column: str, value: str) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        tables[sheet][line - 1][column_index(tables, sheet, column)] = value  # type: ignore[index]

    return edit


def drop_column(sheet: str, column: str) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        index = column_index(tables, sheet, column)
        for row in tables[sheet]:  # type: ignore[union-attr]
            del row[index]

    return edit


def add_row(sheet: str, *cells: str) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        tables[sheet].append(list(cells))  # type: ignore[union-attr]

    return edit


def drop_sheet(sheet: str) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        tables[sheet] = None

    return edit


def empty_sheet(sheet: str) -> Callable[[Tables], None]:
    def edit(tables: Tables) -> None:
        tables[sheet] = []

    return edit


def edited(*edits: Callable[[Tables], None]) -> Tables:
    tables = demo_tables()
    for edit in edits:
        edit(tables)
    return tables


# ---------------------------------------------------------------- a good import


def test_good_import_creates_everything(db: sqlite_utils.Database, roster_dir: Path) -> None:
    report = run_import(db, roster_dir, now=NOW)
    assert report.errors == []
    assert report.applied
    assert report.created == {"units": 5, "people": 9, "subjects": 30}
    assert report.updated == {"units": 0, "people": 0, "subjects": 0}
    assert report.unchanged == {"units": 0, "people": 0, "subjects": 0}
    assert report.summary().startswith("units: 新增 5，更新 0，未变 0")
    assert (count(db, "units"), count(db, "people"), count(db, "subjects")) == (5, 9, 30)
    assert count(db, "assignments") == 32  # 30 subjects, two of them 多对一
    history = db.execute(
        "SELECT entity, action, count(*) FROM audit GROUP BY entity, action ORDER BY 1, 2"
    ).fetchall()
    assert history == [
        ("people", "create", 9),
        ("subjects", "assign", 30),
        ("subjects", "create", 30),
        ("units", "create", 5),
    ]


def test_good_import_stores_the_unit_tree(loaded_db: sqlite_utils.Database) -> None:
    assert snapshot(loaded_db)["units"] == [
        ("CG", "城关镇", "town", "KC"),
        ("HX", "河西村", "village", "CG"),
        ("HX01", "河西村第一网格", "grid", "HX"),
        ("HX02", "河西村第二网格", "grid", "HX"),
        ("KC", "柯城区", "county", None),
    ]


@pytest.mark.parametrize(
    ("name", "roles"),
    [
        ("陈志刚", "secretary"),
        ("刘敏", "monitor"),
        ("黄永红", "medic"),
        ("梁红", "member"),
        ("周建国", "member"),  # 网格员、联户党员: both mean member
    ],
)
def test_good_import_parses_chinese_roles(
    loaded_db: sqlite_utils.Database, name: str, roles: str
) -> None:
    person = next(loaded_db.query("SELECT * FROM people WHERE name = ?", [name]))
    assert person["roles"] == roles


def test_good_import_stores_subjects_and_assignments(loaded_db: sqlite_utils.Database) -> None:
    subject = next(loaded_db.query("SELECT * FROM subjects WHERE name = '张三'"))
    assert {k: subject[k] for k in ("phone", "category", "address", "unit", "start_date")} == {
        "phone": "13900000101",
        "category": "涉鄂人员",
        "address": "河西村1组12号",
        "unit": "HX01",
        "start_date": "2026-02-24",
    }
    assert (subject["days"], subject["end_date"], subject["status"]) == (14, "2026-03-09", "active")
    assert members_of(loaded_db, "张三") == ["梁红"]
    assert members_of(loaded_db, "朱丽") == ["韩冰", "梁红"]  # 多对一, in the file's order
    assert members_of(loaded_db, "沈玉兰") == ["郑海峰", "孙丽萍"]


def test_blank_days_take_the_configured_period(db: sqlite_utils.Database, tmp_path: Path) -> None:
    folder = write_csv(edited(set_cell("subjects", 2, "天数", "")), tmp_path / "r")
    config = Config()
    report = import_roster(db, folder, now=NOW, categories=config.categories, period=21)
    assert report.errors == []
    assert next(db.query("SELECT days FROM subjects WHERE name = '张三'"))["days"] == 21


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("2026-02-24", "2026-02-24"),
        ("2026/2/24", "2026-02-24"),
        ("2026.02.24", "2026-02-24"),
        ("2026年2月24日", "2026-02-24"),
        ("20260224", "2026-02-24"),
    ],
)
def test_start_date_spellings(db: sqlite_utils.Database, tmp_path: Path, cell: str, stored: str):
    folder = write_csv(edited(set_cell("subjects", 2, "开始日期", cell)), tmp_path / "r")
    assert run_import(db, folder).errors == []
    assert next(db.query("SELECT start_date FROM subjects WHERE name = '张三'"))["start_date"] == (
        stored
    )


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("书记", "secretary"),
        ("网格员、联户党员", "member"),
        ("书记,督查员", "secretary,monitor"),
        ("督查员，书记", "secretary,monitor"),
        ("member, secretary", "member,secretary"),
        ("Medic", "medic"),
        ("医护人员 网格员", "member,medic"),
        ("管理员", "admin"),
    ],
)
def test_role_names_in_either_language(
    db: sqlite_utils.Database, tmp_path: Path, cell: str, stored: str
) -> None:
    folder = write_csv(edited(set_cell("people", 2, "角色", cell)), tmp_path / "r")
    assert run_import(db, folder).errors == []
    assert next(db.query("SELECT roles FROM people WHERE name = '陈志刚'"))["roles"] == stored


@pytest.mark.parametrize(
    ("line", "cell", "level"),
    [
        (2, "county", "county"),
        (2, "县", "county"),
        (2, "区", "county"),
        (2, "县(市、区)", "county"),
        (3, "town", "town"),
        (3, "乡镇", "town"),
        (3, "街道", "town"),
        (3, "乡镇(街道)", "town"),
        (4, "Village", "village"),
        (4, "村", "village"),
        (4, "社区", "village"),
        (4, "村(社)", "village"),
        (5, "grid", "grid"),
        (5, "网格", "grid"),
    ],
)
def test_level_names_in_either_language(
    db: sqlite_utils.Database, tmp_path: Path, line: int, cell: str, level: str
) -> None:
    tables = edited(set_cell("units", line, "层级", cell))
    code = tables["units"][line - 1][0]  # type: ignore[index]
    assert run_import(db, write_csv(tables, tmp_path / "r")).errors == []
    assert next(db.query("SELECT level FROM units WHERE code = ?", [code]))["level"] == level


def test_units_and_members_may_be_named_instead_of_coded(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    tables = edited(
        set_cell("units", 5, "上级", "河西村"),
        set_cell("people", 5, "所属单位", "河西村第一网格"),
        set_cell("subjects", 2, "所属单位", "河西村第一网格"),
        set_cell("subjects", 2, "网格员", "13800000012、周建国"),  # a phone and a name
    )
    assert run_import(db, write_csv(tables, tmp_path / "r")).errors == []
    assert next(db.query("SELECT unit FROM subjects WHERE name = '张三'"))["unit"] == "HX01"
    assert members_of(db, "张三") == ["韩冰", "周建国"]


def test_a_parent_may_come_after_its_child(db: sqlite_utils.Database, tmp_path: Path) -> None:
    tables = demo_tables()
    header, *rows = tables["units"]  # type: ignore[misc]
    tables["units"] = [header, *reversed(rows)]
    assert run_import(db, write_csv(tables, tmp_path / "r")).errors == []
    assert count(db, "units") == 5


# ---------------------------------------------------------------- formats and languages


@pytest.mark.parametrize("language", ["chinese", "english"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_both_formats_and_both_header_languages(
    loaded_db: sqlite_utils.Database,
    make_db: Callable[[str], sqlite_utils.Database],
    tmp_path: Path,
    fmt: str,
    language: str,
) -> None:
    tables = demo_tables() if language == "chinese" else english(demo_tables())
    path = write_roster(tables, tmp_path / "built", fmt)
    fresh = make_db("fresh.db")
    report = run_import(fresh, path)
    assert report.errors == []
    assert report.created == {"units": 5, "people": 9, "subjects": 30}
    assert snapshot(fresh) == snapshot(loaded_db)
    # and the same roster in the other spelling changes nothing in the demo database
    again = run_import(loaded_db, path)
    assert (again.created, again.updated) == (dict.fromkeys(SHEETS, 0), dict.fromkeys(SHEETS, 0))


def test_english_headers_in_any_case(
    loaded_db: sqlite_utils.Database, make_db: Callable[[str], sqlite_utils.Database], tmp_path
) -> None:
    tables = english(demo_tables())
    for rows in tables.values():
        rows[0] = [f" {title.upper()} " for title in rows[0]]  # type: ignore[index]
    fresh = make_db("fresh.db")
    assert run_import(fresh, write_csv(tables, tmp_path / "r")).errors == []
    assert snapshot(fresh) == snapshot(loaded_db)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings(
    loaded_db: sqlite_utils.Database,
    make_db: Callable[[str], sqlite_utils.Database],
    tmp_path: Path,
    encoding: str,
) -> None:
    folder = write_csv(demo_tables(), tmp_path / "r", encoding=encoding)
    fresh = make_db("fresh.db")
    assert run_import(fresh, folder).errors == []
    assert snapshot(fresh) == snapshot(loaded_db)


def test_chinese_sheet_and_file_names(
    loaded_db: sqlite_utils.Database, make_db: Callable[[str], sqlite_utils.Database], tmp_path
) -> None:
    names = {"units": "单位", "people": "人员", "subjects": "监测对象"}
    book = write_xlsx(demo_tables(), tmp_path / "名单.xlsx", names=names)
    folder = tmp_path / "folder"
    write_csv(demo_tables(), folder)
    for sheet, name in names.items():
        (folder / f"{sheet}.csv").rename(folder / f"{name}.csv")
    for i, path in enumerate([book, folder]):
        fresh = make_db(f"fresh{i}.db")
        assert run_import(fresh, path).errors == []
        assert snapshot(fresh) == snapshot(loaded_db)


def test_xlsx_with_typed_cells(
    loaded_db: sqlite_utils.Database, make_db: Callable[[str], sqlite_utils.Database], tmp_path
) -> None:
    """Excel turns phones and days into numbers and dates into dates; all read back as text."""
    tables = demo_tables()
    typed: dict[str, list[list[object]]] = {}
    for sheet, rows in tables.items():
        header, *body = rows  # type: ignore[misc]
        typed_rows: list[list[object]] = [header]
        for row in body:
            cells: list[object] = []
            for title, cell in zip(header, row, strict=True):
                if title == "手机":
                    cells.append(int(cell))
                elif title == "天数":
                    cells.append(float(cell))
                elif title == "开始日期":
                    cells.append(dt.datetime.fromisoformat(cell))
                elif title == "上级" and not cell:
                    cells.append(None)
                else:
                    cells.append(cell)
            typed_rows.append(cells)
        typed[sheet] = typed_rows
    path = write_xlsx(typed, tmp_path / "typed.xlsx")  # type: ignore[arg-type]
    fresh = make_db("fresh.db")
    assert run_import(fresh, path).errors == []
    assert snapshot(fresh) == snapshot(loaded_db)


# ---------------------------------------------------------------- idempotent and updates


def test_reimporting_the_same_file_changes_nothing(
    loaded_db: sqlite_utils.Database, roster_dir: Path, dump_db
) -> None:
    before = dump_db(loaded_db)
    audit_rows = count(loaded_db, "audit")
    report = run_import(loaded_db, roster_dir)
    assert report.errors == []
    assert report.created == dict.fromkeys(SHEETS, 0)
    assert report.updated == dict.fromkeys(SHEETS, 0)
    assert report.unchanged == {"units": 5, "people": 9, "subjects": 30}
    assert count(loaded_db, "audit") == audit_rows
    assert dump_db(loaded_db) == before


def test_reimport_keeps_a_wechat_id_bound_in_chat(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    # mp mode: the file has no 微信号 for 刘敏; she binds with `绑定 123456`, the admin re-imports
    tables = demo_tables()
    people = tables["people"]
    assert people is not None
    column = people[0].index("微信号")
    liumin = next(row for row in people if row[0] == "刘敏")
    liumin[column] = ""
    folder = write_csv(tables, tmp_path / "roster")
    assert run_import(db, folder).errors == []
    db.execute("UPDATE people SET wechat_id = 'o_openid_liumin' WHERE name = '刘敏'")
    db.conn.commit()
    report = run_import(db, folder)
    assert report.updated == dict.fromkeys(SHEETS, 0)
    bound = db.execute("SELECT wechat_id FROM people WHERE name = '刘敏'").fetchone()
    assert bound == ("o_openid_liumin",)


def test_changed_rows_update_in_place_with_history(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    subject_ids = ids_by_name(loaded_db, "subjects")
    person_ids = ids_by_name(loaded_db, "people")
    audit_before = count(loaded_db, "audit")
    tables = edited(
        set_cell("subjects", 2, "地址", "河西村1组99号"),  # 张三 moved
        set_cell("subjects", 3, "网格员", "韩冰"),  # 李四: 梁红 → 韩冰
        set_cell("people", 5, "微信号", "lianghong2026"),  # 梁红's new WeChat id
    )
    report = run_import(loaded_db, write_csv(tables, roster_dir))
    assert report.errors == []
    assert report.created == dict.fromkeys(SHEETS, 0)
    assert report.updated == {"units": 0, "people": 1, "subjects": 2}
    assert report.unchanged == {"units": 5, "people": 8, "subjects": 28}

    assert ids_by_name(loaded_db, "subjects") == subject_ids  # same rows, same ids
    assert ids_by_name(loaded_db, "people") == person_ids
    assert next(loaded_db.query("SELECT address FROM subjects WHERE name = '张三'"))["address"] == (
        "河西村1组99号"
    )
    assert members_of(loaded_db, "李四") == ["韩冰"]
    assert (
        person_ids["梁红"]
        == next(loaded_db.query("SELECT id FROM people WHERE wechat_id = 'lianghong2026'"))["id"]
    )

    history = [
        (r["entity"], r["entity_id"], r["action"], json.loads(r["before"]), json.loads(r["after"]),
         r["actor"], r["at"])
        for r in loaded_db.query("SELECT * FROM audit WHERE id > ? ORDER BY id", [audit_before])
    ]  # fmt: skip
    at = LATER.isoformat()
    assert history == [
        ("people", str(person_ids["梁红"]), "update", {"wechat_id": "lianghong"},
         {"wechat_id": "lianghong2026"}, "roster import", at),
        ("subjects", str(subject_ids["张三"]), "update", {"address": "河西村1组12号"},
         {"address": "河西村1组99号"}, "roster import", at),
        ("subjects", str(subject_ids["李四"]), "assign", {"members": [person_ids["梁红"]]},
         {"members": [person_ids["韩冰"]]}, "roster import", at),
    ]  # fmt: skip


def test_an_update_keeps_contacts_and_status(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    loaded_db.execute(
        "UPDATE subjects SET status = 'released', released_on = '2026-03-02' WHERE name = '何平'"
    )
    tables = edited(set_cell("subjects", 9, "地址", "河西村2组18号"))  # 何平
    assert run_import(loaded_db, write_csv(tables, roster_dir)).updated["subjects"] == 1
    row = next(loaded_db.query("SELECT * FROM subjects WHERE name = '何平'"))
    assert (row["status"], row["released_on"], row["address"]) == (
        "released",
        "2026-03-02",
        "河西村2组18号",
    )


def test_a_new_row_is_added_next_to_the_existing_ones(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    tables = edited(
        add_row("people", "李明", "13800000017", "liming", "网格员", "HX02"),
        add_row("subjects", "赵六", "13900000131", "外地返回人员", "河西村6组30号", "HX02",
                "2026-03-03", "7", "李明"),
    )  # fmt: skip
    report = run_import(loaded_db, write_csv(tables, roster_dir))
    assert report.created == {"units": 0, "people": 1, "subjects": 1}
    assert members_of(loaded_db, "赵六") == ["李明"]


def test_members_may_be_people_already_in_the_database(
    loaded_db: sqlite_utils.Database, tmp_path: Path
) -> None:
    """A subjects-only update file refers to members imported before."""
    subjects = demo_tables()["subjects"]
    assert subjects is not None
    zhang_san = subjects[1][:7] + ["梁红、13800000016"]
    tables: Tables = {
        "units": [["编码", "名称", "层级", "上级"]],
        "people": [["姓名", "手机", "微信号", "角色", "所属单位"]],
        "subjects": [subjects[0], zhang_san],
    }
    report = run_import(loaded_db, write_csv(tables, tmp_path / "r"))
    assert report.errors == []
    assert members_of(loaded_db, "张三") == ["梁红", "孙丽萍"]


# ---------------------------------------------------------------- bad files


BAD = [
    # id, edits to the demo roster, messages that must all be reported
    ("missing-column", [drop_column("subjects", "开始日期")],
     ["subjects 第1行：缺少列 start_date（开始日期）"]),
    ("missing-unit-column", [drop_column("people", "所属单位")],
     ["people 第1行：缺少列 unit（所属单位）"]),
    ("unknown-unit", [set_cell("subjects", 5, "所属单位", "HX09")],
     ["subjects 第5行：单位“HX09”不存在"]),
    ("unknown-parent", [set_cell("units", 4, "上级", "XX")], ["units 第4行：单位“XX”不存在"]),
    ("bad-date", [set_cell("subjects", 5, "开始日期", "2026-02-30")],
     ["subjects 第5行：开始日期“2026-02-30”无法识别"]),
    ("date-in-words", [set_cell("subjects", 6, "开始日期", "三月二日")],
     ["subjects 第6行：开始日期“三月二日”无法识别"]),
    ("duplicate-person-same-phone",
     [add_row("people", "李明", "13800000011", "liming", "网格员", "HX01")],
     ["people 第11行：手机号 13800000011 与第5行重复（人员重复）"]),
    ("duplicate-person-same-name-and-unit",
     [add_row("people", "梁红", "13800000099", "", "网格员", "HX01")],
     ["people 第11行：人员“梁红”与第5行重复（同一单位同名）"]),
    ("duplicate-wechat-id",
     [add_row("people", "李明", "13800000099", "lianghong", "网格员", "HX01")],
     ["people 第11行：微信号 lianghong 与第5行重复"]),
    ("duplicate-subject", [add_row("subjects", "张三", "13900000101", "涉鄂人员", "", "HX01",
                                   "2026-02-24", "14", "梁红")],
     ["subjects 第32行：手机号 13900000101 与第2行重复（监测对象重复）"]),
    ("duplicate-unit-code", [add_row("units", "HX01", "重复网格", "网格", "HX")],
     ["units 第7行：编码 HX01 与第5行重复"]),
    ("member-does-not-exist", [set_cell("subjects", 3, "网格员", "王大锤")],
     ["subjects 第3行：网格员“王大锤”不存在"]),
    ("one-of-two-members-does-not-exist", [set_cell("subjects", 11, "网格员", "韩冰、梁虹")],
     ["subjects 第11行：网格员“梁虹”不存在"]),
    ("member-is-not-a-grid-member", [set_cell("subjects", 3, "网格员", "陈志刚")],
     ["subjects 第3行：“陈志刚”的角色不是网格员"]),
    ("no-member", [set_cell("subjects", 3, "网格员", "")],
     ["subjects 第3行：members（网格员）不能为空"]),
    ("unknown-category", [set_cell("subjects", 4, "类别", "密接人员")],
     ["subjects 第4行：类别“密接人员”无法识别"]),
    ("bad-person-phone", [set_cell("people", 2, "手机", "1380000")],
     ["people 第2行：手机号“1380000”格式不对"]),
    ("bad-subject-phone", [set_cell("subjects", 7, "手机", "0571-8888888")],
     ["subjects 第7行：手机号“0571-8888888”格式不对"]),
    ("days-in-words", [set_cell("subjects", 2, "天数", "两周")],
     ["subjects 第2行：天数“两周”应为 1 到 365 的整数"]),
    ("days-zero", [set_cell("subjects", 2, "天数", "0")], ["subjects 第2行：天数“0”应为"]),
    ("bad-role", [set_cell("people", 4, "角色", "队长")], ["people 第4行：角色“队长”无法识别"]),
    ("no-role", [set_cell("people", 4, "角色", "")], ["people 第4行：roles（角色）不能为空"]),
    ("bad-level", [set_cell("units", 2, "层级", "省")], ["units 第2行：层级“省”无法识别"]),
    ("grid-under-a-town", [set_cell("units", 5, "上级", "CG")],
     ["units 第5行：网格的上级必须是村(社)"]),
    ("grid-without-parent", [set_cell("units", 6, "上级", "")],
     ["units 第6行：网格的上级必须是村(社)"]),
    ("village-under-a-grid", [set_cell("units", 4, "上级", "HX01")],
     ["units 第4行：村的上级不能是网格"]),
    ("subject-in-a-town", [set_cell("subjects", 3, "所属单位", "CG")],
     ["subjects 第3行：所属单位“CG”应为村(社)或网格"]),
    ("no-subject-name", [set_cell("subjects", 8, "姓名", "")],
     ["subjects 第8行：name（姓名）不能为空"]),
    ("missing-sheet", [drop_sheet("people")], ["缺少工作表 people（人员）"]),
    ("empty-sheet", [empty_sheet("units")], ["units：工作表是空的"]),
]  # fmt: skip


def error_text(report: ImportReport) -> str:
    return "\n".join(report.errors)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(("edits", "messages"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_is_refused_and_changes_nothing(
    loaded_db: sqlite_utils.Database,
    tmp_path: Path,
    dump_db: Callable[[sqlite_utils.Database], str],
    edits: list[Callable[[Tables], None]],
    messages: list[str],
    fmt: str,
) -> None:
    # one harmless change rides along: it must not be applied either
    tables = edited(set_cell("subjects", 2, "地址", "河西村1组99号"), *edits)
    path = write_roster(tables, tmp_path / "bad", fmt)
    before = dump_db(loaded_db)
    report = run_import(loaded_db, path)
    for message in messages:
        assert message in error_text(report)
    for line in report.errors:
        assert line.startswith(("units", "people", "subjects", "缺少工作表")), line
    assert not report.applied
    assert dump_db(loaded_db) == before


@pytest.mark.parametrize(("edits", "messages"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_leaves_an_empty_database_empty(
    db: sqlite_utils.Database,
    tmp_path: Path,
    edits: list[Callable[[Tables], None]],
    messages: list[str],
) -> None:
    report = run_import(db, write_csv(edited(*edits), tmp_path / "bad"))
    for message in messages:
        assert message in error_text(report)
    assert [count(db, t) for t in ("units", "people", "subjects", "assignments", "audit")] == [
        0
    ] * 5


def test_every_error_of_a_file_is_listed_in_order(
    loaded_db: sqlite_utils.Database, tmp_path: Path, dump_db
) -> None:
    tables = edited(
        set_cell("subjects", 2, "地址", "河西村1组99号"),  # valid, but must not be applied
        set_cell("units", 5, "上级", "CG"),
        add_row("people", "李明", "13800000011", "liming", "网格员", "HX01"),
        set_cell("subjects", 3, "网格员", "王大锤"),
        set_cell("subjects", 5, "开始日期", "2026-13-01"),
        set_cell("subjects", 6, "所属单位", "HX09"),
        set_cell("subjects", 7, "类别", "密接人员"),
    )
    before = dump_db(loaded_db)
    report = run_import(loaded_db, write_csv(tables, tmp_path / "bad"))
    assert [line.split("：")[0] for line in report.errors] == [
        "units 第5行",
        "people 第11行",
        "subjects 第3行",
        "subjects 第5行",
        "subjects 第6行",
        "subjects 第7行",
    ]
    assert dump_db(loaded_db) == before


def test_one_row_with_several_problems_reports_each(db: sqlite_utils.Database, tmp_path) -> None:
    tables = edited(
        set_cell("subjects", 4, "开始日期", "昨天"),
        set_cell("subjects", 4, "天数", "-1"),
        set_cell("subjects", 4, "类别", "密接"),
    )
    errors = run_import(db, write_csv(tables, tmp_path / "bad")).errors
    assert len(errors) == 3
    assert all(line.startswith("subjects 第4行：") for line in errors)


def test_line_numbers_count_blank_lines(db: sqlite_utils.Database, tmp_path: Path) -> None:
    tables = demo_tables()
    subjects = tables["subjects"]
    assert subjects is not None
    subjects.insert(2, [])  # a blank line 3: 王五 moves from line 4 to line 5
    subjects.insert(2, [""] * 8)  # and an empty row: 王五 is on line 6
    subjects[5][2] = "密接人员"
    errors = run_import(db, write_csv(tables, tmp_path / "bad")).errors
    assert len(errors) == 1
    assert errors[0].startswith("subjects 第6行：类别“密接人员”无法识别，应为：涉鄂人员、")


def test_line_numbers_in_xlsx_count_blank_rows(db: sqlite_utils.Database, tmp_path) -> None:
    tables = demo_tables()
    subjects = tables["subjects"]
    assert subjects is not None
    subjects.insert(2, [""] * 8)
    subjects[3][2] = "密接人员"
    errors = run_import(db, write_xlsx(tables, tmp_path / "bad.xlsx")).errors
    assert [line.split("：")[0] for line in errors] == ["subjects 第4行"]


def test_a_wechat_id_held_by_someone_not_in_the_file_is_refused(
    loaded_db: sqlite_utils.Database, tmp_path: Path, dump_db
) -> None:
    tables = demo_tables()
    tables["people"] = [
        ["姓名", "手机", "微信号", "角色", "所属单位"],
        ["李明", "13800000099", "chenzhigang", "网格员", "HX01"],
    ]
    tables["subjects"] = tables["subjects"][:1]  # type: ignore[index]
    before = dump_db(loaded_db)
    errors = run_import(loaded_db, write_csv(tables, tmp_path / "bad")).errors
    assert errors == ["people 第2行：微信号 chenzhigang 已属于“陈志刚”（HX），不能重复"]
    assert dump_db(loaded_db) == before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "文件不存在"),
        ("roster.txt", "请提供 .xlsx 文件"),
        ("fake.xlsx", "不是有效的 Excel"),
    ],
)
def test_an_unreadable_file_is_a_file_error(
    db: sqlite_utils.Database, tmp_path: Path, name: str, message: str
) -> None:
    path = tmp_path / name
    if name != "missing":
        path.write_text("姓名,手机\n", encoding="utf-8")
    with pytest.raises(RosterFileError, match=message):
        run_import(db, path)


# ---------------------------------------------------------------- dry run, export


def test_dry_run_validates_and_writes_nothing(
    db: sqlite_utils.Database, roster_dir: Path, dump_db
) -> None:
    before = dump_db(db)
    report = run_import(db, roster_dir, dry_run=True)
    assert report.errors == []
    assert not report.applied
    assert dump_db(db) == before


def test_dry_run_reports_errors(db: sqlite_utils.Database, tmp_path: Path) -> None:
    folder = write_csv(edited(set_cell("subjects", 5, "所属单位", "HX09")), tmp_path / "bad")
    report = run_import(db, folder, dry_run=True)
    assert report.errors == ["subjects 第5行：单位“HX09”不存在，请先在 units 表中填写"]


def test_export_is_a_chinese_workbook(loaded_db: sqlite_utils.Database, tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    export_roster(loaded_db, path)
    book = openpyxl.load_workbook(path)
    try:
        assert book.sheetnames == ["units", "people", "subjects"]
        for sheet in SHEETS:
            worksheet = book[sheet]
            assert [c.value for c in worksheet[1]] == [c[1] for c in COLUMNS[sheet].values()]
            assert worksheet.freeze_panes == "A2"
        units = [[c.value for c in row] for row in book["units"].iter_rows(min_row=2)]
        assert units[0] == ["KC", "柯城区", "县", None]
        people = {row[0].value: row[3].value for row in book["people"].iter_rows(min_row=2)}
        assert people["周建国"] == "网格员"
        assert book["subjects"].max_row == 31
    finally:
        book.close()


def test_export_then_import_into_a_fresh_database(
    loaded_db: sqlite_utils.Database, make_db: Callable[[str], sqlite_utils.Database], tmp_path
) -> None:
    path = tmp_path / "export.xlsx"
    export_roster(loaded_db, path)
    fresh = make_db("fresh.db")
    report = run_import(fresh, path)
    assert report.errors == []
    assert report.created == {"units": 5, "people": 9, "subjects": 30}
    assert snapshot(fresh) == snapshot(loaded_db)


def test_export_then_import_into_the_same_database_changes_nothing(
    loaded_db: sqlite_utils.Database, tmp_path: Path, dump_db
) -> None:
    loaded_db.execute(
        "UPDATE people SET roles = 'member,secretary' WHERE name = '陈志刚'"
    )  # several roles survive the round trip too
    path = tmp_path / "export.xlsx"
    export_roster(loaded_db, path)
    before = dump_db(loaded_db)
    report = run_import(loaded_db, path)
    assert report.unchanged == {"units": 5, "people": 9, "subjects": 30}
    assert dump_db(loaded_db) == before


def test_export_of_an_updated_roster_round_trips(
    loaded_db: sqlite_utils.Database,
    make_db: Callable[[str], sqlite_utils.Database],
    roster_dir: Path,
    tmp_path: Path,
) -> None:
    tables = edited(set_cell("subjects", 3, "网格员", "韩冰、梁红"))
    run_import(loaded_db, write_csv(tables, roster_dir))
    path = tmp_path / "export.xlsx"
    export_roster(loaded_db, path)
    fresh = make_db("fresh.db")
    assert run_import(fresh, path).errors == []
    assert members_of(fresh, "李四") == ["韩冰", "梁红"]
    assert snapshot(fresh) == snapshot(loaded_db)


def members_by_phone(name: str, phone: str) -> Callable[[Tables], None]:
    """Every members cell naming `name` names `phone` instead."""

    def edit(tables: Tables) -> None:
        i = column_index(tables, "subjects", "网格员")
        for row in tables["subjects"][1:]:  # type: ignore[index]
            row[i] = "、".join(phone if ref == name else ref for ref in row[i].split("、"))

    return edit


def exported_members(path: Path) -> dict[str, str]:
    """The members cell of each subject in an exported workbook."""
    book = openpyxl.load_workbook(path)
    try:
        return {row[0].value: row[7].value for row in book["subjects"].iter_rows(min_row=2)}
    finally:
        book.close()


NAMESAKE = [
    # id, edits to the demo roster, members cells expected in the export
    ("names", [], {"张三": "梁红", "唐伟": "吴秀兰", "李四": "梁红"}),
    ("two-members", [set_cell("subjects", 3, "网格员", "韩冰、梁红")], {"李四": "韩冰、梁红"}),
    (
        "namesakes-by-phone",  # a second 梁红 (HX02): both 梁红 by phone, everyone else by name
        [
            add_row("people", "梁红", "13800000021", "lianghong2", "网格员", "HX02"),
            members_by_phone("梁红", "13800000011"),
            set_cell("subjects", 17, "网格员", "13800000021、吴秀兰"),
        ],
        {"张三": "13800000011", "唐伟": "13800000021、吴秀兰", "李四": "13800000011"},
    ),
]


@pytest.mark.parametrize(
    ("edits", "members"), [n[1:] for n in NAMESAKE], ids=[n[0] for n in NAMESAKE]
)
def test_export_writes_members_by_name_and_reimports_unchanged(
    db: sqlite_utils.Database,
    tmp_path: Path,
    dump_db,
    edits: list[Callable[[Tables], None]],
    members: dict[str, str],
) -> None:
    assert run_import(db, write_csv(edited(*edits), tmp_path / "roster")).errors == []
    path = tmp_path / "export.xlsx"
    export_roster(db, path)
    cells = exported_members(path)
    assert {name: cells[name] for name in members} == members
    before = dump_db(db)
    report = run_import(db, path)
    assert report.errors == []
    assert not any(report.created.values()) and not any(report.updated.values())
    assert dump_db(db) == before


# ---------------------------------------------------------------- the unit tree (DESIGN §10)

# The demo's units: line 2 KC 县, 3 CG 镇 (KC), 4 HX 村 (CG), 5 HX01 网格 (HX), 6 HX02 网格 (HX).
BAD_TREES = [
    # id, edits to the demo roster, every error the import must report (nothing else)
    ("self-parent", [set_cell("units", 4, "上级", "HX")], ["units 第4行：上级不能是自己"]),
    ("cycle-of-2",
     [add_row("units", "T1", "一镇", "镇", "T2"), add_row("units", "T2", "二镇", "镇", "T1")],
     ["units 第7行：镇的上级不能是镇（T2）",
      "units 第7行：上级关系成环：T1 的上级是 T2，T2 的上级是 T1",
      "units 第8行：镇的上级不能是镇（T1）",
      "units 第8行：上级关系成环：T2 的上级是 T1，T1 的上级是 T2"]),
    ("cycle-of-3", [set_cell("units", 3, "上级", "HX01")],
     ["units 第3行：镇的上级不能是网格（HX01）",
      "units 第3行：上级关系成环：CG 的上级是 HX01，HX01 的上级是 HX，HX 的上级是 CG",
      "units 第4行：上级关系成环：HX 的上级是 CG，CG 的上级是 HX01，HX01 的上级是 HX",
      "units 第5行：上级关系成环：HX01 的上级是 HX，HX 的上级是 CG，CG 的上级是 HX01"]),
    ("cycle-through-the-county", [set_cell("units", 2, "上级", "HX02")],
     ["units 第2行：县的上级不能是网格（HX02）",
      "units 第2行：上级关系成环：KC 的上级是 HX02，HX02 的上级是 HX，HX 的上级是 CG，"
      "CG 的上级是 KC",
      "units 第3行：上级关系成环：CG 的上级是 KC，KC 的上级是 HX02，HX02 的上级是 HX，"
      "HX 的上级是 CG",
      "units 第4行：上级关系成环：HX 的上级是 CG，CG 的上级是 KC，KC 的上级是 HX02，"
      "HX02 的上级是 HX",
      "units 第6行：上级关系成环：HX02 的上级是 HX，HX 的上级是 CG，CG 的上级是 KC，"
      "KC 的上级是 HX02"]),
    ("grid-under-grid", [set_cell("units", 6, "上级", "HX01")],
     ["units 第6行：网格的上级不能是网格（HX01）"]),
    ("village-under-grid", [add_row("units", "HD", "河东村", "村", "HX01")],
     ["units 第7行：村的上级不能是网格（HX01）"]),
    ("town-under-village", [add_row("units", "DF", "东风镇", "镇", "HX")],
     ["units 第7行：镇的上级不能是村（HX）"]),
    ("county-under-county", [add_row("units", "KX", "开化县", "县", "KC")],
     ["units 第7行：县的上级不能是县（KC）"]),
    ("parent-missing", [set_cell("units", 4, "上级", "XX")],
     ["units 第4行：单位“XX”不存在，请先在 units 表中填写"]),
    ("parent-missing-and-a-bad-level-below",
     [set_cell("units", 4, "上级", "XX"), set_cell("units", 6, "上级", "CG")],
     ["units 第4行：单位“XX”不存在，请先在 units 表中填写",
      "units 第6行：网格的上级必须是村(社)"]),
]  # fmt: skip


@pytest.mark.parametrize("stored", ["empty", "loaded"])
@pytest.mark.parametrize(
    ("edits", "errors"), [c[1:] for c in BAD_TREES], ids=[c[0] for c in BAD_TREES]
)
def test_a_bad_unit_tree_is_refused_with_every_bad_row_named(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dump_db: Callable[[sqlite_utils.Database], str],
    edits: list[Callable[[Tables], None]],
    errors: list[str],
    stored: str,
) -> None:
    database = request.getfixturevalue("loaded_db" if stored == "loaded" else "db")
    before = dump_db(database)
    report = run_import(database, write_csv(edited(*edits), tmp_path / "bad"))
    assert report.errors == errors
    assert not report.applied
    assert dump_db(database) == before


def units_only(*rows: list[str]) -> Tables:
    """A file that changes units alone (people and subjects sheets with their headers)."""
    tables = demo_tables()
    return {
        "units": [tables["units"][0], *rows],  # type: ignore[index]
        "people": [tables["people"][0]],  # type: ignore[index]
        "subjects": [tables["subjects"][0]],  # type: ignore[index]
    }


LATER_FILES = [
    # a later file against the stored demo tree (KC ← CG ← HX ← HX01, HX02)
    ("town-re-parented-under-its-village", [["CG", "城关镇", "镇", "HX"]],
     ["units 第2行：镇的上级不能是村（HX）",
      "units 第2行：上级关系成环：CG 的上级是 HX，HX 的上级是 CG"]),
    ("county-re-parented-under-a-grid", [["KC", "柯城区", "县", "HX01"]],
     ["units 第2行：县的上级不能是网格（HX01）",
      "units 第2行：上级关系成环：KC 的上级是 HX01，HX01 的上级是 HX，HX 的上级是 CG，"
      "CG 的上级是 KC"]),
    ("village-moved-under-a-new-grid-of-its-own",
     [["HX", "河西村", "村", "HX09"], ["HX09", "河西村第九网格", "网格", "HX"]],
     ["units 第2行：村的上级不能是网格（HX09）",
      "units 第2行：上级关系成环：HX 的上级是 HX09，HX09 的上级是 HX",
      "units 第3行：上级关系成环：HX09 的上级是 HX，HX 的上级是 HX09"]),
    ("town-made-a-village-over-a-stored-village", [["CG", "城关镇", "村", "KC"]],
     ["units 第2行：改为村后，已有的下级单位“HX”（村）不能在它之下，请同时改填“HX”的上级"]),
    ("village-made-a-town-over-stored-grids", [["HX", "河西村", "镇", "KC"]],
     ["units 第2行：改为镇后，已有的下级单位“HX01”（网格）不能在它之下，请同时改填“HX01”的上级",
      "units 第2行：改为镇后，已有的下级单位“HX02”（网格）不能在它之下，请同时改填“HX02”的上级"]),
    ("grid-with-subjects-made-a-town", [["HX01", "河西村第一网格", "镇", "KC"]],
     ["units 第2行：已有 15 名监测对象属于“HX01”，不能改为镇"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "errors"), [c[1:] for c in LATER_FILES], ids=[c[0] for c in LATER_FILES]
)
def test_a_later_file_cannot_bend_the_stored_tree(
    loaded_db: sqlite_utils.Database,
    tmp_path: Path,
    dump_db: Callable[[sqlite_utils.Database], str],
    rows: list[list[str]],
    errors: list[str],
) -> None:
    before = dump_db(loaded_db)
    report = run_import(loaded_db, write_csv(units_only(*rows), tmp_path / "later"))
    assert report.errors == errors
    assert dump_db(loaded_db) == before


def test_a_later_file_may_move_a_unit_within_the_rules(
    loaded_db: sqlite_utils.Database, tmp_path: Path
) -> None:
    rows = [["DF", "东风镇", "镇", "KC"], ["HX", "河西村", "村", "DF"]]
    report = run_import(loaded_db, write_csv(units_only(*rows), tmp_path / "later"))
    assert report.errors == []
    assert (report.created["units"], report.updated["units"]) == (1, 1)
    assert loaded_db.execute("SELECT parent FROM units WHERE code = 'HX'").fetchone() == ("DF",)


def test_a_cycle_already_stored_refuses_every_file_until_one_mends_it(
    loaded_db: sqlite_utils.Database, tmp_path: Path, dump_db
) -> None:
    loaded_db.execute("UPDATE units SET parent = 'HX01' WHERE code = 'HX'")  # by hand, in SQL
    before = dump_db(loaded_db)
    unrelated = units_only(["DF", "东风镇", "镇", "KC"])
    report = run_import(loaded_db, write_csv(unrelated, tmp_path / "unrelated"))
    assert report.errors == [
        "units：数据库中已有的单位上级关系成环：HX 的上级是 HX01，HX01 的上级是 HX，"
        "请在 units 表中重新填写其中一个的上级"
    ]
    assert dump_db(loaded_db) == before
    mend = units_only(["HX", "河西村", "村", "CG"])
    report = run_import(loaded_db, write_csv(mend, tmp_path / "mend"))
    assert report.errors == [] and report.updated["units"] == 1
    assert loaded_db.execute("SELECT parent FROM units WHERE code = 'HX'").fetchone() == ("CG",)


# ---------------------------------------------------------------- short transactions


def test_the_import_writes_in_batches_and_others_write_between_them(
    db: sqlite_utils.Database, db_path: Path, roster_dir: Path
) -> None:
    """A callback storing its raw message gets the write lock after every batch: it tries
    once, without waiting, and would raise LockBusy if the import still held the lock."""
    other = connect(db_path)
    done: list[tuple[str, int]] = []

    def between(sheet: str, rows: int) -> None:
        done.append((sheet, rows))
        with transaction(other, patience=(0,)):
            other.execute(
                "INSERT INTO inbox (received_at, at, channel, sender, text)"
                " VALUES ('2026-03-03T08:00:00+08:00', '2026-03-03T08:00:00+08:00', 'work', ?, ?)",
                [f"m{len(done)}", "张三 36.5"],
            )

    try:
        report = run_import(db, roster_dir, batch_rows=4, on_batch=between)
    finally:
        other.close()
    assert report.errors == [] and report.applied
    assert done == [
        ("units", 4), ("units", 5),
        ("people", 4), ("people", 8), ("people", 9),
        *[("subjects", rows) for rows in (4, 8, 12, 16, 20, 24, 28, 30)],
    ]  # fmt: skip
    assert report.batches == len(done) == count(db, "inbox")
    assert report.created == {"units": 5, "people": 9, "subjects": 30}


def test_batches_give_the_same_roster_as_one_transaction(
    db: sqlite_utils.Database, make_db: Callable[[str], sqlite_utils.Database], roster_dir: Path
) -> None:
    run_import(db, roster_dir, batch_rows=3)
    whole = make_db("whole.db")
    run_import(whole, roster_dir, batch_rows=1000)
    assert snapshot(db) == snapshot(whole)
    assert audit_rows(db) == audit_rows(whole)


def audit_rows(database: sqlite_utils.Database) -> list[tuple]:
    return database.execute(
        "SELECT at, actor, entity, entity_id, action, before, after FROM audit ORDER BY id"
    ).fetchall()


class Crash(Exception):
    "The process dies between two batches."


@pytest.mark.parametrize("after", [("units", 4), ("people", 4), ("subjects", 8)])
def test_a_crash_mid_import_is_completed_by_running_it_again(
    db: sqlite_utils.Database,
    make_db: Callable[[str], sqlite_utils.Database],
    roster_dir: Path,
    after: tuple[str, int],
) -> None:
    def crash(sheet: str, rows: int) -> None:
        if (sheet, rows) == after:
            raise Crash

    with pytest.raises(Crash):
        run_import(db, roster_dir, batch_rows=4, on_batch=crash)
    partial = snapshot(db)
    assert 0 < sum(len(rows) for rows in partial.values()) < 5 + 9 + 30
    # what was written is whole: every subject written has its members
    assert db.execute(
        "SELECT count(*) FROM subjects WHERE id NOT IN (SELECT subject_id FROM assignments)"
    ).fetchone() == (0,)
    again = run_import(db, roster_dir)
    assert again.errors == [] and again.applied
    clean = make_db("clean.db")
    run_import(clean, roster_dir)
    assert snapshot(db) == snapshot(clean)
    assert audit_rows(db) == audit_rows(clean)  # each row created once, in the same order


def test_reimporting_the_same_file_takes_no_write_lock(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    report = run_import(loaded_db, roster_dir, on_batch=lambda sheet, rows: pytest.fail(sheet))
    assert report.batches == 0
    assert report.unchanged == {"units": 5, "people": 9, "subjects": 30}


def test_only_changed_rows_are_written(loaded_db: sqlite_utils.Database, roster_dir: Path) -> None:
    tables = edited(set_cell("subjects", 2, "地址", "河西村1组99号"))
    written: list[tuple[str, int]] = []
    report = run_import(
        loaded_db,
        write_csv(tables, roster_dir),
        batch_rows=1,
        on_batch=lambda sheet, rows: written.append((sheet, rows)),
    )
    assert written == [("subjects", 1)]
    assert report.updated == {"units": 0, "people": 0, "subjects": 1}


def test_the_roster_cache_sees_each_batch(
    db: sqlite_utils.Database, db_path: Path, roster_dir: Path
) -> None:
    """A serving process reading the roster between two batches reads what is stored, never
    a cached answer from before the batch (each batch bumps the roster version)."""
    reader = connect(db_path)
    day = dt.date(2026, 3, 2)
    seen: list[tuple[int, int]] = []

    def between(sheet: str, rows: int) -> None:
        if sheet != "subjects":
            return
        stored = len(village_subjects(reader, "HX", day))
        seen.append((len(cached_village(reader, "HX01", day).rows), stored))

    try:
        run_import(db, roster_dir, batch_rows=7, on_batch=between)
    finally:
        reader.close()
    assert [cached for cached, _ in seen] == [stored for _, stored in seen]
    assert len({stored for _, stored in seen}) == len(seen) > 1  # it grew batch by batch


# ---------------------------------------------------------------- formulas are text (DESIGN §6)

FORMULA_LIKE = ['=HYPERLINK("http://x","y")', "+8613800000000", "-1", "@SUM(A1)"]


def formula_roster() -> Tables:
    """The demo with names and addresses a spreadsheet would run."""
    return edited(
        set_cell("units", 6, "名称", '=HX02&"网格"'),
        set_cell("people", 8, "姓名", "-吴秀兰"),  # a member, named in subjects below
        *[set_cell("subjects", line, "网格员", "-吴秀兰") for line in range(17, 32)],
        set_cell("subjects", 2, "姓名", FORMULA_LIKE[0]),
        set_cell("subjects", 3, "地址", FORMULA_LIKE[1]),
        set_cell("subjects", 4, "地址", FORMULA_LIKE[2]),
        set_cell("subjects", 5, "姓名", FORMULA_LIKE[3]),
    )


def test_formula_like_values_export_as_text_and_reimport_unchanged(
    db: sqlite_utils.Database,
    make_db: Callable[[str], sqlite_utils.Database],
    tmp_path: Path,
    dump_db: Callable[[sqlite_utils.Database], str],
) -> None:
    tables = formula_roster()
    assert run_import(db, write_csv(tables, tmp_path / "roster")).errors == []
    path = tmp_path / "export.xlsx"
    export_roster(db, path)

    book = openpyxl.load_workbook(path)
    try:
        cells = {
            cell.value: cell.data_type
            for sheet in book.worksheets
            for row in sheet.iter_rows()
            for cell in row
            if isinstance(cell.value, str) and cell.value[:1] in "=+-@"
        }
    finally:
        book.close()
    risky = [*FORMULA_LIKE, '=HX02&"网格"', "-吴秀兰"]
    assert {value: cells.get(value) for value in risky} == dict.fromkeys(risky, "s")

    before = dump_db(db)
    again = run_import(db, path)
    assert again.errors == [] and again.batches == 0
    assert again.unchanged == {"units": 5, "people": 9, "subjects": 30}
    assert dump_db(db) == before
    fresh = make_db("fresh.db")
    assert run_import(fresh, path).errors == []
    assert snapshot(fresh) == snapshot(db)
    names = {row[0] for row in fresh.execute("SELECT name FROM subjects")}
    assert {FORMULA_LIKE[0], FORMULA_LIKE[3]} <= names
    addresses = {row[0] for row in fresh.execute("SELECT address FROM subjects")}
    assert {FORMULA_LIKE[1], FORMULA_LIKE[2]} <= addresses


def test_the_bench_county_is_a_good_roster(db: sqlite_utils.Database, tmp_path: Path) -> None:
    """bench/roster.py imports bench/county.py's county through the CLI: a small one here."""
    from bench.roster import write_county_roster

    counts = write_county_roster(tmp_path / "county", villages=4, subjects=400)
    report = run_import(db, tmp_path / "county", batch_rows=50)
    assert report.errors == []
    assert report.created == counts
    assert run_import(db, tmp_path / "county").batches == 0


def edit_subject(roster_dir: Path, name: str, **changes: str) -> None:
    """Change one subject's row of the demo roster's subjects.csv (Chinese headers)."""
    path = roster_dir / "subjects.csv"
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    header = rows[0]
    for row in rows[1:]:
        if row[0] == name:
            for column, value in changes.items():
                row[header.index(column)] = value
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)


def append_subject(roster_dir: Path, name: str, start: str) -> None:
    """A second row for a subject of the demo roster: the same person, a later period."""
    path = roster_dir / "subjects.csv"
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    again = list(next(row for row in rows if row[0] == name))
    again[rows[0].index("开始日期")] = start
    with path.open("a", encoding="utf-8", newline="") as out:
        csv.writer(out).writerow(again)


def test_reimporting_an_unchanged_row_keeps_an_extension_made_in_chat(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    """DESIGN §2: 延长 李四 7天 in chat, then the unchanged file again: 李四 keeps 21 days."""
    loaded_db.execute("UPDATE subjects SET days = 21 WHERE name = '李四'")  # as 延长 does
    report = run_import(loaded_db, roster_dir)
    assert report.errors == [] and report.overrides == []
    days = loaded_db.execute("SELECT days FROM subjects WHERE name = '李四'").fetchone()[0]
    assert days == 21


def test_a_row_changed_in_the_file_wins_and_the_import_says_so(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    loaded_db.execute("UPDATE subjects SET days = 21 WHERE name = '李四'")
    edit_subject(roster_dir, "李四", 天数="10")
    report = run_import(loaded_db, roster_dir)
    assert report.overrides == [
        "subjects 第3行：李四 的天数按文件改为 10，覆盖了群聊中的延长（原为 21 天）"
    ]
    assert "覆盖了群聊中的延长" in report.summary()
    days = loaded_db.execute("SELECT days FROM subjects WHERE name = '李四'").fetchone()[0]
    assert days == 10


def test_a_later_start_after_the_period_ended_opens_a_second_period(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    """何平 was monitored 2/16–3/1; back from travel, the file lists him again from 4/1.
    The first period stays (history, and the file's first row); a second one opens."""
    append_subject(roster_dir, "何平", "2026-04-01")
    report = run_import(loaded_db, roster_dir)
    assert report.errors == [] and report.created["subjects"] == 1
    periods = loaded_db.execute(
        "SELECT start_date, end_date FROM subjects WHERE name = '何平' ORDER BY start_date"
    ).fetchall()
    assert periods == [("2026-02-16", "2026-03-01"), ("2026-04-01", "2026-04-14")]
    assert run_import(loaded_db, roster_dir).created == dict.fromkeys(SHEETS, 0)


def test_a_start_date_moved_within_a_running_period_updates_it(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    edit_subject(roster_dir, "张三", 开始日期="2026-02-26")
    report = run_import(loaded_db, roster_dir)
    assert report.created["subjects"] == 0 and report.updated["subjects"] == 1
    start = loaded_db.execute("SELECT start_date FROM subjects WHERE name = '张三'").fetchall()
    assert start == [("2026-02-26",)]


def test_the_same_period_twice_in_a_file_is_still_a_duplicate(
    db: sqlite_utils.Database, roster_dir: Path
) -> None:
    append_subject(roster_dir, "何平", "2026-02-16")
    report = run_import(db, roster_dir)
    assert any("第32行" in error and "重复" in error for error in report.errors)


def test_two_periods_of_one_person_in_one_file_in_any_order(
    loaded_db: sqlite_utils.Database, roster_dir: Path
) -> None:
    """The later period listed first: both open, and importing again changes nothing."""
    append_subject(roster_dir, "何平", "2026-05-01")
    append_subject(roster_dir, "何平", "2026-04-01")
    assert run_import(loaded_db, roster_dir).created["subjects"] == 2
    periods = loaded_db.execute(
        "SELECT start_date FROM subjects WHERE name = '何平' ORDER BY start_date"
    ).fetchall()
    assert periods == [("2026-02-16",), ("2026-04-01",), ("2026-05-01",)]
    again = run_import(loaded_db, roster_dir)
    assert again.created == dict.fromkeys(SHEETS, 0) and again.updated == dict.fromkeys(SHEETS, 0)


def test_overlapping_periods_of_one_person_are_refused(
    db: sqlite_utils.Database, roster_dir: Path
) -> None:
    append_subject(roster_dir, "何平", "2026-02-20")  # inside 2/16–3/1
    report = run_import(db, roster_dir)
    assert any("第32行" in e and "监测期与第" in e and "重叠" in e for e in report.errors)


# ---------------------------------------------------------------- people who leave


def test_a_person_the_file_no_longer_lists_is_retired(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    """梁红 left: the new file lists her subjects under 韩冰 and no longer lists her. She is
    deactivated (no chat, no page, no prompts), named in the report, and listed again she
    comes back."""
    tables = demo_tables()
    assert run_import(db, write_csv(tables, tmp_path / "before")).errors == []
    people, subjects = tables["people"], tables["subjects"]
    assert people is not None and subjects is not None
    column = subjects[0].index("网格员")
    tables["people"] = [row for row in people if row[0] != "梁红"]
    for row in subjects[1:]:
        row[column] = "、".join(
            dict.fromkeys("韩冰" if m == "梁红" else m for m in row[column].split("、"))
        )
    report = run_import(db, write_csv(tables, tmp_path / "after"))
    assert report.errors == [] and report.retired == ["梁红（HX01）"]
    assert "停用（文件中已无此人）：梁红（HX01）" in report.summary()
    assert db.execute("SELECT active FROM people WHERE name = '梁红'").fetchone() == (0,)
    assert (
        person_by_wechat_id(db, "lianghong") is None
    )  # her messages get the binding sentence only
    again = run_import(db, write_csv(tables, tmp_path / "after"))
    assert again.retired == [] and again.updated == dict.fromkeys(SHEETS, 0)
    back = run_import(db, write_csv(demo_tables(), tmp_path / "back"))
    assert back.retired == []
    assert db.execute("SELECT active FROM people WHERE name = '梁红'").fetchone() == (1,)


def test_a_file_of_another_village_retires_nobody_here(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    assert run_import(db, write_csv(demo_tables(), tmp_path / "demo")).errors == []
    other: Tables = {
        "units": [
            ["编码", "名称", "层级", "上级"],
            ["HD", "河东村", "村", ""],
            ["HD01", "河东一格", "网格", "HD"],
        ],
        "people": [
            ["姓名", "手机", "微信号", "角色", "所属单位"],
            ["钱村", "13800000092", "qiancun", "书记", "HD"],
        ],
        "subjects": [["姓名", "手机", "类别", "地址", "所属单位", "开始日期", "天数", "网格员"]],
    }
    report = run_import(db, write_csv(other, tmp_path / "hd"))
    assert report.errors == [] and report.retired == []
    assert db.execute("SELECT count(*) FROM people WHERE active").fetchone()[0] == 10


def test_a_file_that_drops_a_member_its_subjects_still_name_is_refused(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    """The people sheet no longer lists 梁红 but her subjects still name her: the file is
    refused whole (nobody would be prompted for them), and she stays."""
    tables = demo_tables()
    assert run_import(db, write_csv(tables, tmp_path / "before")).errors == []
    people = tables["people"]
    assert people is not None
    tables["people"] = [row for row in people if row[0] != "梁红"]
    report = run_import(db, write_csv(tables, tmp_path / "after"))
    assert report.errors and all("梁红" in error for error in report.errors)
    assert not report.applied and report.retired == []
    assert db.execute("SELECT active FROM people WHERE name = '梁红'").fetchone() == (1,)


def test_a_retired_secretary_or_medic_is_named_with_the_role(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    tables = demo_tables()
    assert run_import(db, write_csv(tables, tmp_path / "before")).errors == []
    people = tables["people"]
    assert people is not None
    tables["people"] = [row for row in people if row[0] != "黄永红"]
    report = run_import(db, write_csv(tables, tmp_path / "after"))
    assert report.retired == ["黄永红（HX，医护）"]
