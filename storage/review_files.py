"""The weekly pack (DESIGN §11) as an Excel workbook: one sheet per part, Chinese headers.
Names and texts come from users: every string is stored as text, never a formula
(storage/spreadsheet.py)."""

from __future__ import annotations

import io

from storage.needs import LEVEL_CN
from storage.spreadsheet import append_row

FLAG_CN = {
    "copy_paste": "文字重复",
    "flat_readings": "体温雷同",
    "burst": "秒报",
    "before_prompt": "提示前上报",
    "cover_heavy": "多由他人代报",
}


def review_sheets(pack: dict) -> dict[str, list[list[object]]]:
    """Sheet name → rows (the first is the header)."""
    subjects, problems = pack["subjects"], pack["problems"]
    return {
        "概况": [
            ["项目", "值"],
            ["单位", pack["unit_name"]],
            ["编码", pack["unit"]],
            ["周", pack["week"]],
            ["起", pack["from"]],
            ["止", pack["to"]],
            ["在管", subjects["active"]],
            ["新增", subjects["new"]],
            ["解除", subjects["released"]],
            ["出现异常", subjects["abnormal"]],
            *(
                [label, pack["totals"][key]]
                for label, key in (
                    ("应报（对象·时段）", "expected"),
                    ("按时", "on_time"),
                    ("迟报", "late"),
                    ("未报", "missed"),
                )
            ),
            ["问题新增", problems["opened"]],
            ["问题办结", problems["closed"]],
            ["问题未办结", problems["open"]],
            ["问题逾期", problems["overdue"]],
        ],
        "考核": [
            ["网格员", "应报", "按时", "迟报", "未报", "提示到上报中位分钟", "请核实"],
            *(
                [
                    m["member"],
                    m["expected"],
                    m["on_time"],
                    m["late"],
                    m["missed"],
                    m["median_minutes"],
                    "、".join(FLAG_CN[k] for k in m["flags"]) or None,
                ]
                for m in pack["members"]
            ),
        ],
        "问题": [
            [
                "编号",
                "监测对象",
                "类别",
                "内容",
                "包干负责",
                "层级",
                "提出",
                "期限",
                "办结",
                "状态",
                "逾期",
                "办结说明",
            ],
            *(
                [
                    p["id"],
                    p["subject"],
                    p["kind"],
                    p["text"],
                    p["owner"] or None,
                    LEVEL_CN.get(p["level"], p["level"]),
                    _minute(p["opened_at"]),
                    _minute(p["due_at"]),
                    _minute(p["closed_at"]),
                    "未办结" if p["status"] == "open" else "已办结",
                    "是" if p["overdue"] else None,
                    p["note"] or None,
                ]
                for p in problems["items"]
            ),
        ],
        "请核实": [
            ["类型", "网格员", "日期", "依据"],
            *([FLAG_CN[f["kind"]], f["member"], f["date"], f["detail"]] for f in pack["flags"]),
        ],
    }


def review_xlsx(pack: dict) -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in review_sheets(pack).items():
        sheet = book.create_sheet(title)
        for row in rows:
            append_row(sheet, row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(max(width * 1.6, 8), 60)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _minute(stamp: str | None) -> str | None:
    """2026-03-02T08:40:00+08:00 → 2026-03-02 08:40 (a problem's times, as read in a sheet)."""
    return stamp.replace("T", " ")[:16] if stamp else None
