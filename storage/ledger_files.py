"""The ledger as CSV (for scripts) and as an Excel workbook (for people)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from storage.ledger import LEDGER_COLUMNS, LEDGER_HEADERS_CN
from storage.spreadsheet import append_row, csv_cell

SLOT_CN = {"morning": "早", "noon": "中", "evening": "晚"}
STATUS_CN = {"normal": "正常", "abnormal": "异常", "unreachable": "未联系上", "absent": "外出"}


def ledger_csv(rows: Sequence[dict]) -> str:
    """A value starting with = + - @ gets a leading ' (storage/spreadsheet.py)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEDGER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = {
            **row,
            "symptoms": "、".join(row["symptoms"]),
            "late": "yes" if row["late"] else "no",
        }
        writer.writerow({key: csv_cell(value) for key, value in values.items()})
    return out.getvalue()


def ledger_xlsx(rows: Sequence[dict], unit_names: dict[str, str] | None = None) -> bytes:
    """Chinese headers, frozen header row, widths that fit the content; every string is text,
    never a formula."""
    import openpyxl
    from openpyxl.styles import Font, PatternFill

    unit_names = unit_names or {}
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "台账"
    sheet.append([LEDGER_HEADERS_CN[c] for c in LEDGER_COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    red = PatternFill("solid", fgColor="F8D7DA")
    for row in rows:
        append_row(
            sheet,
            [
                row["date"],
                SLOT_CN[row["slot"]],
                unit_names.get(row["unit"], row["unit"]),
                row["subject"],
                row["category"],
                row["member"],
                row["temperature"],
                STATUS_CN[row["status"]],
                "、".join(row["symptoms"]),
                row["reported_at"].replace("T", " ")[:16],
                "是" if row["late"] else "",
            ],
        )
        if row["status"] == "abnormal":
            for cell in sheet[sheet.max_row]:
                cell.fill = red
    temperature = LEDGER_COLUMNS.index("temperature") + 1
    for (cell,) in sheet.iter_rows(min_row=2, min_col=temperature, max_col=temperature):
        cell.number_format = "0.0"
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    for column in sheet.columns:
        width = max(sum(2 if ord(ch) > 0x2E7F else 1 for ch in str(c.value or "")) for c in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 6), 40)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
