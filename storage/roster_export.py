"""Roster export: the roster as an .xlsx with Chinese headers, importable as it is."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from storage.roster import LEVEL_CN, ROLE_CN
from storage.roster_file import COLUMNS
from storage.spreadsheet import append_row


def export_roster(db: sqlite_utils.Database, path: str | Path) -> None:
    """Write the roster as an .xlsx with Chinese headers, importable as it is (every value
    as text: a name starting with = is a name, storage/spreadsheet.py)."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    sheet = book.create_sheet("units")
    append_row(sheet, [COLUMNS["units"][c][1] for c in COLUMNS["units"]])
    for unit in db.query(
        "SELECT * FROM units ORDER BY CASE level WHEN 'county' THEN 0 WHEN 'town' THEN 1 "
        "WHEN 'village' THEN 2 ELSE 3 END, code"
    ):
        append_row(
            sheet, [unit["code"], unit["name"], LEVEL_CN[unit["level"]], unit["parent"] or ""]
        )
    sheet = book.create_sheet("people")
    append_row(sheet, [COLUMNS["people"][c][1] for c in COLUMNS["people"]])
    for person in db.query("SELECT * FROM people WHERE active ORDER BY id"):
        roles = "、".join(ROLE_CN[r] for r in person["roles"].split(",") if r)
        append_row(
            sheet,
            [
                person["name"],
                person["phone"] or "",
                person["wechat_id"] or "",
                roles,
                person["unit"],
            ],
        )
    sheet = book.create_sheet("subjects")
    append_row(sheet, [COLUMNS["subjects"][c][1] for c in COLUMNS["subjects"]])
    # members by name, as a person reads them; by phone only where a name is shared (the
    # import reads either, and refuses a name that two people hold)
    shared = {
        r["name"]
        for r in db.query("SELECT name FROM people WHERE active GROUP BY name HAVING count(*) > 1")
    }
    for subject in db.query("SELECT * FROM subjects ORDER BY id"):
        members = [
            (r["phone"] or r["name"]) if r["name"] in shared else r["name"]
            for r in db.query(
                "SELECT p.name, p.phone FROM assignments a JOIN people p ON p.id = a.person_id "
                "WHERE a.subject_id = ? ORDER BY a.position",
                [subject["id"]],
            )
        ]
        append_row(
            sheet,
            [
                subject["name"],
                subject["phone"] or "",
                subject["category"],
                subject["address"],
                subject["unit"],
                subject["start_date"],
                subject["days"],
                "、".join(members),
            ],
        )
    for ws in book.worksheets:
        ws.freeze_panes = "A2"
        for column in ws.columns:
            width = max(len(str(c.value or "")) for c in column) * 2 + 2
            ws.column_dimensions[column[0].column_letter].width = min(max(width, 8), 40)
    book.save(path)
