"""The ledger as CSV and as an Excel workbook, both for people: the same Chinese headers and
cells (the CSV as UTF-8 with a BOM, so that Excel on a Chinese Windows reads it). Scripts read
`--format json`, whose keys are DESIGN §7's."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from storage.ledger import LEDGER_COLUMNS, LEDGER_HEADERS_CN
from storage.spreadsheet import append_row, csv_cell

SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
STATUS_CN = {"normal": "正常", "abnormal": "异常", "unreachable": "未联系上", "absent": "外出"}


def ledger_table(
    rows: Sequence[dict], unit_names: dict[str, str] | None = None
) -> list[list[object]]:
    """The header and one list of cells per row, as a person reads them: 早/中/晚, 正常…, unit
    names, reported_at as `2026-03-02 08:30`, 迟报 是; an empty cell is None."""
    unit_names = unit_names or {}
    table: list[list[object]] = [[LEDGER_HEADERS_CN[c] for c in LEDGER_COLUMNS]]
    for row in rows:
        table.append(
            [
                row["date"],
                SLOT_CN[row["slot"]],
                unit_names.get(row["unit"], row["unit"]),
                row["subject"],
                row["category"],
                row["member"] or None,
                row["temperature"],
                STATUS_CN[row["status"]],
                "、".join(row["symptoms"]) or None,
                row["reported_at"].replace("T", " ")[:16],
                "是" if row["late"] else None,
            ]
        )
    return table


def ledger_csv(rows: Sequence[dict], unit_names: dict[str, str] | None = None) -> str:
    """Starts with a BOM; a value starting with = + - @ gets a leading ' (spreadsheet.py)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\n")
    for cells in ledger_table(rows, unit_names):
        writer.writerow(["" if value is None else csv_cell(value) for value in cells])
    return out.getvalue()


PROBLEM_HEADERS = [
    "编号", "监测对象", "类别", "需求", "登记时间", "层级", "包干负责", "办结期限", "状态",
    "逾期", "办结时间", "办结人", "办结说明",
]  # fmt: skip
LEVEL_CN = {"village": "村", "town": "镇", "county": "县"}


def _moment(stamp: str | None) -> str | None:
    return stamp.replace("T", " ")[:16] if stamp else None


def problems_table(items: Sequence[dict]) -> list[list[object]]:
    """The problem ledger (问题台账) as a person reads it: items of storage.needs.problem_item."""
    table: list[list[object]] = [list(PROBLEM_HEADERS)]
    for item in items:
        table.append(
            [
                item["id"],
                item["subject"],
                item["kind"],
                item["text"] or None,
                _moment(item["opened_at"]),
                LEVEL_CN.get(item["level"], item["level"]),
                item["owner"] or None,
                _moment(item["due_at"]) if item["status"] == "open" else None,
                "待办" if item["status"] == "open" else "已办结",
                "是" if item["overdue"] else None,
                _moment(item["closed_at"]),
                item["closed_by"] or None,
                item["note"] or None,
            ]
        )
    return table


def _fit(sheet: object) -> None:
    for column in sheet.columns:  # type: ignore[attr-defined]
        width = max(sum(2 if ord(ch) > 0x2E7F else 1 for ch in str(c.value or "")) for c in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 6), 40)  # type: ignore[attr-defined]


def ledger_xlsx(
    rows: Sequence[dict],
    unit_names: dict[str, str] | None = None,
    problems: Sequence[dict] | None = None,
) -> bytes:
    """Chinese headers, frozen header row, widths that fit the content; every string is text,
    never a formula. With `problems` (storage.needs.problem_item), a second sheet 问题台账."""
    import openpyxl
    from openpyxl.styles import Font, PatternFill

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "台账"
    header, *cells = ledger_table(rows, unit_names)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    red = PatternFill("solid", fgColor="F8D7DA")
    for row, values in zip(rows, cells, strict=True):
        append_row(sheet, values)
        if row["status"] == "abnormal":
            for cell in sheet[sheet.max_row]:
                cell.fill = red
    temperature = LEDGER_COLUMNS.index("temperature") + 1
    for (cell,) in sheet.iter_rows(min_row=2, min_col=temperature, max_col=temperature):
        cell.number_format = "0.0"
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    _fit(sheet)
    if problems is not None:
        ledger = book.create_sheet("问题台账")
        header, *lines = problems_table(problems)
        ledger.append(header)
        for cell in ledger[1]:
            cell.font = Font(bold=True)
        for item, values in zip(problems, lines, strict=True):
            append_row(ledger, values)
            if item["overdue"]:
                for cell in ledger[ledger.max_row]:
                    cell.fill = red
        ledger.freeze_panes = "A2"
        ledger.auto_filter.ref = ledger.dimensions
        _fit(ledger)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
