"""Reading a roster file: an .xlsx with sheets or a folder of .csv files, either header language."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

SHEETS = ("units", "people", "subjects")
SHEET_ALIASES = {
    "units": ("units", "单位"),
    "people": ("people", "人员"),
    "subjects": ("subjects", "监测对象"),
}

# canonical column → (English, Chinese); the Chinese is what export writes
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "units": {
        "code": ("code", "编码"),
        "name": ("name", "名称"),
        "level": ("level", "层级"),
        "parent": ("parent", "上级"),
    },
    "people": {
        "name": ("name", "姓名"),
        "phone": ("phone", "手机"),
        "wechat_id": ("wechat_id", "微信号"),
        "roles": ("roles", "角色"),
        "unit": ("unit", "所属单位"),
    },
    "subjects": {
        "name": ("name", "姓名"),
        "phone": ("phone", "手机"),
        "category": ("category", "类别"),
        "address": ("address", "地址"),
        "unit": ("unit", "所属单位"),
        "start_date": ("start_date", "开始日期"),
        "days": ("days", "天数"),
        "members": ("members", "网格员"),
    },
}
REQUIRED = {
    "units": ("code", "name", "level"),
    "people": ("name", "roles", "unit"),
    "subjects": ("name", "category", "unit", "start_date", "members"),
}


class RosterFileError(Exception):
    "The roster file cannot be read at all (missing, wrong type, not a spreadsheet)."


@dataclass(frozen=True)
class Row:
    sheet: str
    line: int
    values: dict[str, str]

    def where(self) -> str:
        return f"{self.sheet} 第{self.line}行"


@dataclass
class RosterFile:
    rows: dict[str, list[Row]]
    errors: list[str]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _header_map(sheet: str, header: list[str], errors: list[str]) -> dict[int, str]:
    known = {}
    for canonical, (english, chinese) in COLUMNS[sheet].items():
        known[english.lower()] = canonical
        known[chinese] = canonical
    mapping: dict[int, str] = {}
    for index, title in enumerate(header):
        key = title.strip().lstrip("\ufeff")
        canonical = known.get(key.lower()) or known.get(key)
        if canonical:
            mapping[index] = canonical
    present = set(mapping.values())
    for column in REQUIRED[sheet]:
        if column not in present:
            english, chinese = COLUMNS[sheet][column]
            errors.append(f"{sheet} 第1行：缺少列 {english}（{chinese}）")
    return mapping


def _rows(sheet: str, table: list[tuple[int, list[str]]], errors: list[str]) -> list[Row]:
    if not table:
        errors.append(f"{sheet}：工作表是空的，第1行应是表头")
        return []
    _, header = table[0]
    found = len(errors)
    mapping = _header_map(sheet, header, errors)
    if len(errors) > found:
        return []  # without a required column every row would fail: name the column once
    rows = []
    for line, cells in table[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        values = {column: "" for column in COLUMNS[sheet]}
        for index, canonical in mapping.items():
            if index < len(cells):
                values[canonical] = cells[index].strip()
        rows.append(Row(sheet, line, values))
    return rows


def _read_csv(path: Path) -> list[tuple[int, list[str]]]:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # a UTF-16 file, say: gb18030 refuses some byte sequences
        raise RosterFileError(f"{path.name}：无法识别文件编码，请另存为 UTF-8 的 CSV")
    reader = csv.reader(io.StringIO(text, newline=""))
    table = []
    start = 1
    try:
        for cells in reader:
            table.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as error:  # a cell past csv's limit: a pasted blob or an unclosed quote
        raise RosterFileError(
            f"{path.name} 第{start}行起：无法读取（{error}），请检查是否有未闭合的引号或超长内容"
        ) from None
    return table


def _read_xlsx(path: Path) -> dict[str, list[tuple[int, list[str]]]]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as error:
        raise RosterFileError(f"{path.name}：不是有效的 Excel 文件（{error}）") from None
    try:
        sheets = {}
        for sheet in book.worksheets:
            table = []
            for index, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                table.append((index, [_cell_text(value) for value in row]))
            sheets[sheet.title.strip()] = table
        return sheets
    finally:
        book.close()


def read_roster(path: str | Path) -> RosterFile:
    """Read every sheet; structural problems (missing sheet or column) go to errors."""
    source = Path(path)
    if not source.exists():
        raise RosterFileError(f"{source}：文件不存在")
    tables: dict[str, list[tuple[int, list[str]]]] = {}
    errors: list[str] = []
    if source.is_dir():
        files = {p.stem.strip(): p for p in source.iterdir() if p.suffix.lower() == ".csv"}
        for sheet, aliases in SHEET_ALIASES.items():
            found = next((files[a] for a in aliases if a in files), None)
            if found is not None:
                tables[sheet] = _read_csv(found)
    elif source.suffix.lower() in (".xlsx", ".xlsm"):
        book = _read_xlsx(source)
        for sheet, aliases in SHEET_ALIASES.items():
            found = next((book[a] for a in aliases if a in book), None)
            if found is not None:
                tables[sheet] = found
    else:
        raise RosterFileError(
            f"{source.name}：请提供 .xlsx 文件（含 units、people、subjects 三个工作表）"
            "或包含 units.csv、people.csv、subjects.csv 的文件夹"
        )
    rows: dict[str, list[Row]] = {}
    for sheet in SHEETS:
        if sheet not in tables:
            errors.append(f"缺少工作表 {sheet}（{SHEET_ALIASES[sheet][1]}）")
            rows[sheet] = []
        else:
            rows[sheet] = _rows(sheet, tables[sheet], errors)
    return RosterFile(rows, errors)
