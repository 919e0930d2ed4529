"""Exports never run a value as a formula (DESIGN §6): .xlsx keeps text, .csv neutralises."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from storage.ledger_files import ledger_csv, ledger_xlsx
from storage.spreadsheet import append_row, csv_cell

RISKY = ['=HYPERLINK("http://x","y")', "+8613800000000", "-1", "@SUM(A1)", "=1+1"]
PLAIN = ["张三", "河西村1组12号", "13800000001", "a=b", "36.5"]


def saved_row(values: list[object], tmp_path: Path) -> list[tuple[object, str]]:
    """The values written by append_row, read back from the saved file: (value, data_type)."""
    book = openpyxl.Workbook()
    append_row(book.active, values)
    path = tmp_path / "cells.xlsx"
    book.save(path)
    loaded = openpyxl.load_workbook(path)
    try:
        return [(cell.value, cell.data_type) for cell in next(loaded.active.iter_rows())]
    finally:
        loaded.close()


@pytest.mark.parametrize("value", RISKY + PLAIN)
def test_an_xlsx_string_stays_the_same_text(value: str, tmp_path: Path) -> None:
    assert saved_row([value], tmp_path) == [(value, "s")]


def test_numbers_stay_numbers(tmp_path: Path) -> None:
    assert saved_row([-1.5, 36.6, 0], tmp_path) == [(-1.5, "n"), (36.6, "n"), (0, "n")]


def test_a_risky_xlsx_cell_is_marked_as_typed_text(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    append_row(book.active, ["=1+1", "张三"])
    first, second = book.active[1]
    assert (first.data_type, first.quotePrefix) == ("s", True)
    assert (second.data_type, second.quotePrefix) == ("s", False)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+8613800000000", "'+8613800000000"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("张三", "张三"),
        ("a=b", "a=b"),
        ("", ""),
        (-1.5, -1.5),
        (None, None),
    ],
)
def test_a_csv_cell_is_neutralised_with_a_quote(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def ledger_row(**changes: object) -> dict:
    row = {
        "date": "2026-03-02",
        "slot": "morning",
        "unit": "HX01",
        "subject": "张三",
        "category": "涉鄂人员",
        "member": "梁红",
        "temperature": -1.0,  # a number, even a wrong one, stays a number
        "status": "normal",
        "symptoms": [],
        "reported_at": "2026-03-02T08:30:00+08:00",
        "late": False,
    }
    return row | changes


def test_the_ledger_csv_neutralises_risky_names() -> None:
    text = ledger_csv(
        [ledger_row(subject='=HYPERLINK("http://x","y")', member="@梁红")], {"HX01": "+第一网格"}
    )
    assert text.startswith("\ufeff")
    header, row = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    values = dict(zip(header, row, strict=True))
    assert values["监测对象"] == '\'=HYPERLINK("http://x","y")'
    assert values["网格员"] == "'@梁红"
    assert values["体温"] == "-1.0"
    assert values["单位"] == "'+第一网格"


def test_the_ledger_xlsx_keeps_risky_names_as_text(tmp_path: Path) -> None:
    path = tmp_path / "ledger.xlsx"
    path.write_bytes(
        ledger_xlsx([ledger_row(subject="=1+1", member="-梁红")], {"HX01": "+河西村第一网格"})
    )
    book = openpyxl.load_workbook(path)
    try:
        cells = list(book.active.iter_rows(min_row=2))[0]
    finally:
        book.close()
    by_value = {cell.value: cell.data_type for cell in cells}
    assert by_value["=1+1"] == "s"
    assert by_value["-梁红"] == "s"
    assert by_value["+河西村第一网格"] == "s"
    assert by_value[-1.0] == "n"
