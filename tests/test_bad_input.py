"""Bad input not covered elsewhere (DESIGN §10). Already covered: bombs, external entities,
malformed XML, bad and missing WeCom signatures, a wrong CorpId and oversized bodies in
tests/test_wechat_callback.py and tests/test_wechat_xml.py; retries of one MsgId there too;
garbage chat in tests/test_pipeline.py and tests/test_commands.py; GBK CSV, empty sheets and
a fake .xlsx in tests/test_roster.py."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
import sqlite_utils
from flask.testing import FlaskClient

from bot.wechat.crypto import sign
from tests.fake_wechat import MP, WORK
from tests.test_wechat_callback import (
    CREATED,
    inner_xml,
    open_reply,
    wecom_request,
)

Dump = Callable[[sqlite_utils.Database], str]


def test_a_1_mb_body_is_refused_unread(
    work: FlaskClient, loaded_db: sqlite_utils.Database, dump_db: Dump
) -> None:
    """A 1 MB body (a real message is a few KB) is refused: 413 by its Content-Length, and
    without one (chunked) it is read up to the limit only and refused too; nothing is
    stored, and the next message is handled."""
    before = dump_db(loaded_db)
    query, body = wecom_request(WORK, inner_xml("lianghong", "text", "<Content>x</Content>", 1,
                                                CREATED))  # fmt: skip
    huge = body.encode() + b" " * (1 << 20)
    assert work.post("/wechat", query_string=query, data=huge).status_code == 413
    chunked = work.post(
        "/wechat",
        query_string=query,
        input_stream=io.BytesIO(huge),
        headers={"Transfer-Encoding": "chunked"},
    )
    assert chunked.status_code in (400, 413)
    assert dump_db(loaded_db) == before
    assert work.post("/wechat", query_string=query, data=body.encode()).status_code == 200


def test_a_msgid_replayed_days_later_is_not_recorded_again(
    work: FlaskClient, loaded_db: sqlite_utils.Database
) -> None:
    """The same MsgId replayed two days later with a fresh, valid signature: the same reply,
    one inbox row, one contact (replays are caught by MsgId, never by the timestamp)."""
    xml = inner_xml("lianghong", "text", "<Content>张三 36.5 正常</Content>", 31337, CREATED)
    query, body = wecom_request(WORK, xml)
    ciphertext = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    later = dict(query, timestamp=str(CREATED + 2 * 86400))
    later["msg_signature"] = sign(WORK.token, later["timestamp"], later["nonce"], ciphertext)
    texts = []
    for args in (query, later):
        answer = work.post("/wechat", query_string=args, data=body.encode())
        texts.append(open_reply(WORK, answer.get_data(as_text=True)).findtext("Content"))
    assert texts[0] == texts[1] and "已记录" in texts[0]
    assert loaded_db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 1
    assert loaded_db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 1


@pytest.mark.parametrize(
    "name, change, status",
    [
        ("wrong AppId inside", {"receiver": "wx0000000000000000"}, 403),
        ("no msg_signature", {"drop": "msg_signature"}, 400),
        ("no timestamp", {"drop": "timestamp"}, 400),
        ("bad msg_signature", {"msg_signature": "0" * 40}, 403),
    ],
)
def test_mp_safe_mode_refusals(
    mp: FlaskClient,
    loaded_db: sqlite_utils.Database,
    dump_db: Dump,
    name: str,
    change: dict,
    status: int,
) -> None:
    """The Official Account in safe mode: a message sealed for another AppId, or a missing
    or bad signature, is refused with a 4xx and changes nothing."""
    before = dump_db(loaded_db)
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 2, CREATED)
    query, body = wecom_request(MP, xml, change.get("receiver"))
    query.pop(change.get("drop", ""), None)
    query.update({k: v for k, v in change.items() if k not in ("receiver", "drop")})
    assert mp.post("/wechat", query_string=query, data=body.encode()).status_code == status
    assert dump_db(loaded_db) == before


@pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce"])
def test_mp_plaintext_without_signature_parts_is_refused(
    mp_plaintext: FlaskClient, loaded_db: sqlite_utils.Database, dump_db: Dump, missing: str
) -> None:
    """The plaintext mode's signature covers only token, timestamp and nonce: without any of
    them the post is a 400 and changes nothing."""
    before = dump_db(loaded_db)
    query = {"timestamp": str(CREATED), "nonce": "42"}
    query["signature"] = sign(MP.token, query["timestamp"], query["nonce"])
    del query[missing]
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 3, CREATED)
    assert mp_plaintext.post("/wechat", query_string=query, data=xml.encode()).status_code == 400
    assert dump_db(loaded_db) == before


def test_work_callback_refuses_an_mp_style_message(
    work: FlaskClient, loaded_db: sqlite_utils.Database, dump_db: Dump
) -> None:
    """A plaintext (mp-style) post to a WeCom callback: WeCom always encrypts, so it is
    refused (400: no msg_signature) and changes nothing."""
    before = dump_db(loaded_db)
    query = {"timestamp": str(CREATED), "nonce": "42"}
    query["signature"] = sign(WORK.token, query["timestamp"], query["nonce"])
    xml = inner_xml("lianghong", "text", "<Content>帮助</Content>", 4, CREATED)
    assert work.post("/wechat", query_string=query, data=xml.encode()).status_code == 400
    assert dump_db(loaded_db) == before


# -- broken roster files ----------------------------------------------------------------------


def merged_workbook(roster_dir: Path, target: Path) -> Path:
    """The demo roster as one .xlsx whose subjects sheet merges the 网格员 cells of rows 2–4
    (what people do to show one member for several subjects)."""
    import csv

    book = openpyxl.Workbook()
    book.remove(book.active)
    for sheet in ("units", "people", "subjects"):
        page = book.create_sheet(sheet)
        with open(roster_dir / f"{sheet}.csv", encoding="utf-8-sig", newline="") as file:
            for row in csv.reader(file):
                page.append(row)
    subjects = book["subjects"]
    column = [c.value for c in subjects[1]].index("网格员") + 1
    subjects.merge_cells(start_row=2, end_row=4, start_column=column, end_column=column)
    book.save(target)
    return target


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("merged cells", "merged", "subjects 第3行：members（网格员）不能为空"),
        ("UTF-16 CSV", "utf16", "无法识别文件编码"),
        ("binary CSV", "binary", "units"),
        ("a PDF named .xlsx", "pdf", "不是有效的 Excel"),
        ("an empty .xlsx file", "zero", "不是有效的 Excel"),
    ],
)
def test_broken_roster_files_get_a_clear_answer_and_change_nothing(
    run_cli,
    loaded_db: sqlite_utils.Database,
    roster_dir: Path,
    tmp_path: Path,
    dump_db: Dump,
    name: str,
    make: str,
    expected: str,
) -> None:
    """`gridwatch roster import` of a broken file: exit code 1, the reason in Chinese (with
    the sheet and line where there is one), no traceback, the database unchanged."""
    folder = tmp_path / "broken"
    shutil.copytree(roster_dir, folder)
    if make == "merged":
        path = merged_workbook(roster_dir, tmp_path / "merged.xlsx")
    elif make == "utf16":
        text = (folder / "units.csv").read_text(encoding="utf-8-sig")
        (folder / "units.csv").write_text(text, encoding="utf-16")
        path = folder
    elif make == "binary":
        (folder / "units.csv").write_bytes(bytes(range(256)) * 4)
        path = folder
    elif make == "pdf":
        path = tmp_path / "roster.xlsx"
        path.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n")
    else:
        path = tmp_path / "roster.xlsx"
        path.write_bytes(b"")
    before = dump_db(loaded_db)
    result = run_cli("roster", "import", path)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert dump_db(loaded_db) == before


def test_a_csv_with_a_huge_cell_is_a_clear_error(
    run_cli, loaded_db: sqlite_utils.Database, roster_dir: Path, dump_db: Dump
) -> None:
    """A CSV cell of 200,000 characters (a pasted blob, or a stray quote that swallows the
    rest of the file): a clear error naming the file, not csv's internal exception."""
    (roster_dir / "units.csv").write_text(
        '编码,名称,层级,上级\nHX,"' + "河" * 200_000 + '",村,\n', encoding="utf-8"
    )
    before = dump_db(loaded_db)
    result = run_cli("roster", "import", roster_dir)
    assert result.exit_code == 1 and "units" in result.output
    assert dump_db(loaded_db) == before
