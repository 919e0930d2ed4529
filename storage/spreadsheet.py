"""Cells that a spreadsheet would run: values starting with = + - @ (DESIGN §6).

A name like `=HYPERLINK("http://…","点此")` in the roster must stay a name in every export.
In .xlsx a string is stored as a string cell (openpyxl turns a str starting with "=" into a
formula unless told otherwise) and marked quotePrefix, as Excel marks a typed 'text, so
editing it keeps it text; the value itself is unchanged, and a roster export re-imports as
it was. CSV has no cell types: there the value gets a leading ' (the usual neutraliser,
which Excel and LibreOffice show as text); scripts wanting exact values use --format json.
Numbers (a temperature) are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@")
# a tab or carriage return first also lets some spreadsheets read the rest as a formula
CSV_FORMULA_START = (*FORMULA_START, "\t", "\r")


def looks_like_formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def append_row(sheet: Any, values: Iterable[object]) -> None:
    """`sheet.append(values)` (an openpyxl worksheet), every string stored as text."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if looks_like_formula(cell.value):
            cell.data_type = "s"
            cell.quotePrefix = True


def csv_cell(value: object) -> object:
    """The value as a CSV cell that no spreadsheet runs."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value
