"""Roster import: validate every row first (reads only), then write in short transactions."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from storage.audit import record_change
from storage.db import (
    checkpoint_after,
    fetch_all,
    insert_row,
    passive_checkpoint,
    transaction,
    update_row,
)
from storage.purge import PERSONAL
from storage.roster_file import SHEETS, Row, read_roster
from storage.units import get_unit

LEVELS = {
    "county": "county",
    "town": "town",
    "village": "village",
    "grid": "grid",
    "县": "county",
    "市": "county",
    "区": "county",
    "县(市、区)": "county",
    "镇": "town",
    "乡": "town",
    "乡镇": "town",
    "街道": "town",
    "乡镇(街道)": "town",
    "村": "village",
    "社区": "village",
    "村(社)": "village",
    "网格": "grid",
}
LEVEL_RANK = {"county": 0, "town": 1, "village": 2, "grid": 3}
LEVEL_CN = {"county": "县", "town": "镇", "village": "村", "grid": "网格"}
ROLES = {
    "member": "member",
    "secretary": "secretary",
    "monitor": "monitor",
    "medic": "medic",
    "admin": "admin",
    "网格员": "member",
    "联户党员": "member",
    "书记": "secretary",
    "村书记": "secretary",
    "督查员": "monitor",
    "医护": "medic",
    "医护人员": "medic",
    "医生": "medic",
    "管理员": "admin",
}
ROLE_ORDER = ("member", "secretary", "monitor", "medic", "admin")
ROLE_CN = {
    "member": "网格员",
    "secretary": "书记",
    "monitor": "督查员",
    "medic": "医护",
    "admin": "管理员",
}
_SPLIT = re.compile(r"[,，、;；/\s]+")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_PHONE = re.compile(r"^1\d{10}$")
# An import writes in transactions of this many file rows, and holds the write lock no longer
# than BATCH_SECONDS for one: WeChat callbacks store their messages between two batches.
BATCH_ROWS = 500
BATCH_SECONDS = 0.05
BATCH_PAUSE = 0.002  # seconds between two batches, lock free
CHECKPOINT_EVERY = 8  # batches: ~1,000 pages of WAL for a county's first import


_ROLE_CN = {"secretary": "书记", "monitor": "督查员", "medic": "医护"}


@dataclass
class ImportReport:
    errors: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    applied: bool = False
    batches: int = 0  # transactions written
    longest_batch: float = 0.0  # seconds the longest of them held the write lock
    # rows whose file value replaced what a secretary changed in chat (延长)
    overrides: list[str] = field(default_factory=list)
    # people of the file's units that the file no longer lists: deactivated (姓名（单位）)
    retired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for sheet in SHEETS:
            parts.append(
                f"{sheet}: 新增 {self.created[sheet]}，更新 {self.updated[sheet]}，"
                f"未变 {self.unchanged[sheet]}"
            )
        retired = [f"停用（文件中已无此人）：{'、'.join(self.retired)}"] if self.retired else []
        return "\n".join(["；".join(parts), *self.overrides, *retired])


def _line_of(message: str) -> int:
    """The line number of a "units 第N行：…" message (0 when it names no line)."""
    match = re.match(r"\S+ 第(\d+)行", message)
    return int(match[1]) if match else 0


def _ring_text(ring: list[str], start: str) -> str:
    """A ring of units as read from `start`: A 的上级是 B，B 的上级是 A."""
    at = ring.index(start)
    ring = ring[at:] + ring[:at]
    return "，".join(f"{unit} 的上级是 {ring[(i + 1) % len(ring)]}" for i, unit in enumerate(ring))


def split_list(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text.strip()) if part]


def parse_date(text: str) -> dt.date | None:
    text = text.strip()
    match = _DATE.match(text)
    if match:
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None
    if re.fullmatch(r"\d{8}", text):
        try:
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            return None
    return None


def _normal_phone(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


@dataclass
class _Plan:
    units: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[dict[str, Any]] = field(default_factory=list)


class _Validator:
    """Checks every row against the file and the database; collects every problem."""

    def __init__(self, db: sqlite_utils.Database, categories: Sequence[str], period: int):
        self.db = db
        self.categories = tuple(categories)
        self.period = period
        self.errors: list[str] = []
        self.plan = _Plan()
        self.db_units = {
            r["code"]: r for r in fetch_all(db, "SELECT code, name, level, parent FROM units")
        }
        self.unit_levels = {code: r["level"] for code, r in self.db_units.items()}
        self.unit_names: dict[str, list[str]] = {}
        for code, r in self.db_units.items():
            self.unit_names.setdefault(r["name"], []).append(code)

    def fail(self, row: Row, message: str) -> None:
        self.errors.append(f"{row.where()}：{message}")

    def name_and_phone(self, row: Row, phones: dict[str, int], duplicate: str) -> tuple[str, bool]:
        """The row's normalised phone, and whether its name and phone are acceptable; a phone
        seen on an earlier row of the sheet is a duplicate."""
        ok = True
        if not row.values["name"]:
            self.fail(row, "name（姓名）不能为空")
            ok = False
        phone = _normal_phone(row.values["phone"])
        if phone and not _PHONE.match(phone):
            self.fail(row, f"手机号“{row.values['phone']}”格式不对，应为11位数字，如 13800000001")
            ok = False
        elif phone in phones:
            self.fail(row, f"手机号 {phone} 与第{phones[phone]}行重复（{duplicate}）")
            ok = False
        elif phone:
            phones[phone] = row.line
        return phone, ok

    def resolve_unit(self, row: Row, text: str, column: str) -> str | None:
        if not text:
            self.fail(row, f"{column} 不能为空")
            return None
        if text in self.unit_levels:
            return text
        codes = self.unit_names.get(text, [])
        if len(codes) == 1:
            return codes[0]
        if len(codes) > 1:
            self.fail(row, f"单位名称“{text}”不唯一，请填写单位编码（{'、'.join(codes)}）")
            return None
        self.fail(row, f"单位“{text}”不存在，请先在 units 表中填写")
        return None

    def units(self, rows: list[Row]) -> None:
        """The rows, and the tree they make with the units already in the database: every
        parent exists, is of a higher level (grid < village < town < county), and no chain of
        parents comes back to where it started. Errors in line order."""
        errors_before = len(self.errors)
        seen: dict[str, int] = {}
        file_units: list[tuple[Row, str]] = []
        for row in rows:
            v = row.values
            ok = True
            if not v["code"]:
                self.fail(row, "code（编码）不能为空")
                ok = False
            elif v["code"] in seen:
                self.fail(row, f"编码 {v['code']} 与第{seen[v['code']]}行重复")
                ok = False
            else:
                seen[v["code"]] = row.line
            if not v["name"]:
                self.fail(row, "name（名称）不能为空")
                ok = False
            level = LEVELS.get(v["level"].strip().lower()) or LEVELS.get(v["level"].strip())
            if not level:
                self.fail(
                    row,
                    f"层级“{v['level']}”无法识别，应为 county/town/village/grid 或 县/镇/村/网格",
                )
                ok = False
            if ok:
                self.unit_levels[v["code"]] = level
                self.unit_names.setdefault(v["name"], []).append(v["code"])
                file_units.append((row, level))
        # the tree after the import: the database's units, with the file's rows over them
        tree = {code: (unit["level"], unit["parent"]) for code, unit in self.db_units.items()}
        from_file: dict[str, Row] = {}
        planned: list[dict[str, Any]] = []
        for row, level in file_units:
            v = row.values
            parent = None
            if v["parent"]:
                parent = self.resolve_unit(row, v["parent"], "parent（上级）")
                if parent is None:
                    tree[v["code"]] = (level, None)
                    continue
            tree[v["code"]] = (level, parent)
            from_file[v["code"]] = row
            if parent == v["code"]:
                self.fail(row, "上级不能是自己")
                continue
            if parent is not None:
                parent_level = self.unit_levels[parent]
                if LEVEL_RANK[parent_level] >= LEVEL_RANK[level]:
                    self.fail(
                        row,
                        f"{LEVEL_CN[level]}的上级不能是{LEVEL_CN[parent_level]}（{v['parent']}）",
                    )
                    continue
            if level == "grid" and (parent is None or self.unit_levels[parent] != "village"):
                self.fail(row, "网格的上级必须是村(社)")
                continue
            planned.append({"code": v["code"], "name": v["name"], "level": level, "parent": parent})
        self._relevelled(tree, from_file)
        self._cycles(tree, from_file)
        unit_errors = self.errors[errors_before:]
        if unit_errors:
            # each message names its line; the checks above run in passes, the user reads in order
            del self.errors[errors_before:]
            self.errors.extend(sorted(unit_errors, key=lambda m: _line_of(m) or 10**9))
        self.plan.units.extend(planned)

    def _relevelled(self, tree: dict[str, tuple[str, str | None]], rows: dict[str, Row]) -> None:
        """A unit whose level the file changes must still fit above the units under it that
        the file does not mention, and hold subjects only as a village or grid."""
        children: dict[str, list[str]] = {}
        for code, (_, parent) in tree.items():
            if parent is not None and code not in rows:
                children.setdefault(parent, []).append(code)
        for code, row in rows.items():
            before = self.db_units.get(code)
            level = tree[code][0]
            if before is None or before["level"] == level:
                continue
            for child in sorted(children.get(code, [])):
                child_level = tree[child][0]
                if LEVEL_RANK[level] >= LEVEL_RANK[child_level] or (
                    child_level == "grid" and level != "village"
                ):
                    self.fail(
                        row,
                        f"改为{LEVEL_CN[level]}后，已有的下级单位“{child}”"
                        f"（{LEVEL_CN[child_level]}）不能在它之下，请同时改填“{child}”的上级",
                    )
            if level not in ("village", "grid"):
                held = self.db.execute(
                    "SELECT count(*) FROM subjects WHERE unit = ?", [code]
                ).fetchone()[0]
                if held:
                    self.fail(row, f"已有 {held} 名监测对象属于“{code}”，不能改为{LEVEL_CN[level]}")

    def _cycles(self, tree: dict[str, tuple[str, str | None]], rows: dict[str, Row]) -> None:
        """Every chain of parents that comes back to where it started (a unit its own parent
        is told apart above), named on each row of the file that is part of it."""
        state: dict[str, int] = {}  # 1: on the path being walked, 2: done
        for start in tree:
            path: list[str] = []
            code: str | None = start
            while code is not None and code in tree and code not in state:
                state[code] = 1
                path.append(code)
                code = tree[code][1]
            if code is not None and state.get(code) == 1:
                ring = path[path.index(code) :]
                if len(ring) > 1:
                    named = [unit for unit in ring if unit in rows]
                    for unit in named:  # each row reads the ring from its own unit
                        self.fail(rows[unit], f"上级关系成环：{_ring_text(ring, unit)}")
                    if not named:
                        self.errors.append(
                            f"units：数据库中已有的单位上级关系成环：{_ring_text(ring, ring[0])}，"
                            "请在 units 表中重新填写其中一个的上级"
                        )
            for unit in path:
                state[unit] = 2

    def people(self, rows: list[Row]) -> None:
        phones: dict[str, int] = {}
        wechat_ids: dict[str, int] = {}
        names: dict[tuple[str, str], int] = {}
        # wechat_id is unique in the table: a row may not take one held by another person
        held = {
            r["wechat_id"]: r
            for r in self.db.query("SELECT id, name, unit, wechat_id FROM people")
            if r["wechat_id"]
        }
        for row in rows:
            v = row.values
            phone, ok = self.name_and_phone(row, phones, "人员重复")
            if v["wechat_id"] in wechat_ids:
                self.fail(row, f"微信号 {v['wechat_id']} 与第{wechat_ids[v['wechat_id']]}行重复")
                ok = False
            elif v["wechat_id"]:
                wechat_ids[v["wechat_id"]] = row.line
            roles = []
            for part in split_list(v["roles"]):
                role = ROLES.get(part.lower()) or ROLES.get(part)
                if role is None:
                    self.fail(
                        row,
                        f"角色“{part}”无法识别，应为 网格员/书记/督查员/医护"
                        "（member/secretary/monitor/medic），多个用、分隔",
                    )
                    ok = False
                elif role not in roles:
                    roles.append(role)
            if not v["roles"].strip():
                self.fail(row, "roles（角色）不能为空，如：网格员")
                ok = False
            unit = self.resolve_unit(row, v["unit"], "unit（所属单位）")
            if unit is None:
                ok = False
            elif (v["name"], unit) in names:
                self.fail(
                    row, f"人员“{v['name']}”与第{names[(v['name'], unit)]}行重复（同一单位同名）"
                )
                ok = False
            else:
                names[(v["name"], unit)] = row.line
            holder = held.get(v["wechat_id"])
            if ok and holder:
                match = _find_existing(
                    self.db, "people", {"phone": phone or None, "name": v["name"], "unit": unit}
                )
                if match is None or match["id"] != holder["id"]:
                    self.fail(
                        row,
                        f"微信号 {v['wechat_id']} 已属于“{holder['name']}”（{holder['unit']}），"
                        "不能重复",
                    )
                    ok = False
            if ok:
                self.plan.people.append(
                    {
                        "name": v["name"],
                        "phone": phone or None,
                        "wechat_id": v["wechat_id"] or None,
                        "roles": ",".join(r for r in ROLE_ORDER if r in roles),
                        "unit": unit,
                        "line": row.line,
                    }
                )

    def _people_index(self) -> tuple[dict[str, list[dict]], dict[str, dict]]:
        by_name: dict[str, list[dict]] = {}
        by_phone: dict[str, dict] = {}
        planned = {(p["name"], p["unit"]) for p in self.plan.people}
        planned_phones = {p["phone"] for p in self.plan.people if p["phone"]}
        for person in self.plan.people:
            by_name.setdefault(person["name"], []).append(person)
            if person["phone"]:
                by_phone[person["phone"]] = person
        # the people of the file's units are those its people sheet lists: the others leave
        # with this import (`_Writer.retire`), so no subject row may still name them
        listed_units = {unit["code"] for unit in self.plan.units}
        for person in self.db.query("SELECT name, phone, roles, unit FROM people WHERE active"):
            if (person["name"], person["unit"]) in planned or person["phone"] in planned_phones:
                continue
            if person["unit"] in listed_units:
                continue
            by_name.setdefault(person["name"], []).append(person)
            if person["phone"]:
                by_phone[person["phone"]] = person
        return by_name, by_phone

    def subjects(self, rows: list[Row]) -> None:
        by_name, by_phone = self._people_index()
        phones: dict[tuple[str, str], int] = {}
        names: dict[tuple[str, str, str], int] = {}
        periods: dict[tuple[str, str], list[tuple[dt.date, dt.date, int]]] = {}
        for row in rows:
            v = row.values
            # a person may come back for a second period: rows repeat only with one start date
            start = parse_date(v["start_date"])
            period = start.isoformat() if start else v["start_date"]
            phone, ok = self.name_and_phone(row, {}, "监测对象重复")
            if phone and (phone, period) in phones:
                self.fail(
                    row, f"手机号 {phone} 与第{phones[(phone, period)]}行重复（监测对象重复）"
                )
                ok = False
            elif phone:
                phones[(phone, period)] = row.line
            if v["category"] not in self.categories:
                self.fail(row, f"类别“{v['category']}”无法识别，应为：{'、'.join(self.categories)}")
                ok = False
            unit = self.resolve_unit(row, v["unit"], "unit（所属单位）")
            if unit is None:
                ok = False
            elif self.unit_levels[unit] not in ("village", "grid"):
                self.fail(row, f"所属单位“{v['unit']}”应为村(社)或网格")
                ok = False
            elif (v["name"], unit, period) in names:
                self.fail(
                    row,
                    f"监测对象“{v['name']}”与第{names[(v['name'], unit, period)]}行重复"
                    "（同一单位同名）",
                )
                ok = False
            else:
                names[(v["name"], unit, period)] = row.line
            if start is None:
                self.fail(row, f"开始日期“{v['start_date']}”无法识别，应写成 2026-03-01 这样的日期")
                ok = False
            days = self.period
            if v["days"]:
                text = v["days"].removesuffix("天").strip()
                if text.isdigit() and 1 <= int(text) <= 365:
                    days = int(text)
                else:
                    self.fail(row, f"天数“{v['days']}”应为 1 到 365 的整数，如 14")
                    ok = False
            members = []
            for ref in split_list(v["members"]):
                found = by_phone.get(_normal_phone(ref))
                candidates = [found] if found else by_name.get(ref, [])
                if not candidates:
                    self.fail(row, f"网格员“{ref}”不存在，请先在 people 表中填写")
                    ok = False
                elif len(candidates) > 1:
                    self.fail(row, f"网格员“{ref}”有重名，请改填手机号")
                    ok = False
                elif "member" not in candidates[0]["roles"].split(","):
                    self.fail(row, f"“{ref}”的角色不是网格员")
                    ok = False
                else:
                    key = (candidates[0]["name"], candidates[0]["unit"])
                    if key not in members:
                        members.append(key)
            if not members and v["members"].strip() == "":
                self.fail(row, "members（网格员）不能为空，至少填一名网格员")
                ok = False
            if ok:
                assert start is not None and unit is not None
                end = start + dt.timedelta(days=days - 1)
                seen = periods.setdefault((v["name"], unit), [])
                clash = next((line for s0, e0, line in seen if s0 <= end and e0 >= start), None)
                if clash is not None:
                    self.fail(row, f"监测对象“{v['name']}”的监测期与第{clash}行重叠")
                    ok = False
                seen.append((start, end, row.line))
            if ok:
                assert start is not None and unit is not None
                self.plan.subjects.append(
                    {
                        "name": v["name"],
                        "phone": phone or None,
                        "category": v["category"],
                        "address": v["address"],
                        "unit": unit,
                        "start_date": start.isoformat(),
                        "days": days,
                        "members": members,
                        "line": row.line,
                    }
                )


def _find_existing(
    db: sqlite_utils.Database, table: str, record: dict[str, Any]
) -> dict[str, Any] | None:
    """The row a file row stands for: the one with its phone, else its name in its unit."""
    if record.get("phone"):
        # `phone != ''` lets SQLite use people's partial index (phones are unique there)
        rows = fetch_all(
            db,
            f"SELECT * FROM {table} WHERE phone = ? AND phone != '' ORDER BY id LIMIT 1",
            [record["phone"]],
        )
        if rows:
            return rows[0]
    rows = fetch_all(
        db,
        f"SELECT * FROM {table} WHERE name = ? AND unit = ? ORDER BY id LIMIT 1",
        [record["name"], record["unit"]],
    )
    return rows[0] if rows else None


def _changed_in_chat(subject: dict[str, Any]) -> bool:
    """Whether its days differ from those of the last file imported (a 延长 in chat)."""
    return subject["file_days"] is not None and subject["days"] != subject["file_days"]


def _find_period(db: sqlite_utils.Database, record: dict[str, Any]) -> dict[str, Any] | None:
    """The subject row (one monitoring period) a file row stands for. The person's periods
    are found by phone and by name in the unit; of those, the one with the row's start
    date, else the one the row's period overlaps (its start moved). None when it overlaps
    none: a period of its own (the person came back, or an earlier period is listed)."""
    found: dict[int, dict[str, Any]] = {}
    if record.get("phone"):
        for row in fetch_all(db, "SELECT * FROM subjects WHERE phone = ?", [record["phone"]]):
            found[row["id"]] = row
    for row in fetch_all(
        db, "SELECT * FROM subjects WHERE name = ? AND unit = ?", [record["name"], record["unit"]]
    ):
        found[row["id"]] = row
    start = dt.date.fromisoformat(record["start_date"])
    for period in found.values():
        if period["start_date"] == record["start_date"]:
            return period
    end = (start + dt.timedelta(days=int(record.get("days") or 1) - 1)).isoformat()
    overlapping = [
        p for p in found.values() if p["start_date"] <= end and p["end_date"] >= start.isoformat()
    ]
    if not overlapping:
        return None
    return min(
        overlapping, key=lambda p: abs((dt.date.fromisoformat(p["start_date"]) - start).days)
    )


def _changes(record: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    if existing is None:
        return dict(record)
    return {k: v for k, v in record.items() if existing.get(k) != v}


class _Writer:
    """Applies a checked plan in short transactions (see import_roster).

    Each file row is first compared with the database by reads alone; only rows that differ
    are written, a batch at a time, and each is compared again inside its batch (a command in
    chat may have changed it meanwhile), so a row is written from what is there, never from
    an old look at it."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        report: ImportReport,
        now: dt.datetime,
        actor: str,
        batch_rows: int,
        on_batch: Callable[[str, int], None] | None,
    ) -> None:
        self.db, self.report, self.now, self.actor = db, report, now, actor
        self.batch_rows = max(1, batch_rows)
        self.on_batch = on_batch
        self.person_ids: dict[tuple[str, str], int] = {}
        self.listed: set[int] = set()  # the people the file lists

    def audit(self, table: str, key: Any, action: str, before: Any, after: Any) -> None:
        record_change(self.db, self.now, self.actor, table, key, action, before, after)

    def batches(self, sheet: str, pending: list[Any], write: Callable[[Any], None]) -> None:
        """`write` each pending row, `batch_rows` (or BATCH_SECONDS of lock) per transaction."""
        done = 0
        while done < len(pending):
            with transaction(self.db):
                started = time.perf_counter()
                end = done
                while end < len(pending) and end - done < self.batch_rows:
                    write(pending[end])
                    end += 1
                    if time.perf_counter() - started > BATCH_SECONDS:
                        break
                held = time.perf_counter() - started
            if self.report.batches % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
                # copy the WAL back now, outside the write lock: writers go on meanwhile
                passive_checkpoint(self.db)
            done = end
            self.report.batches += 1
            self.report.longest_batch = max(self.report.longest_batch, held)
            if self.on_batch is not None:
                self.on_batch(sheet, done)
            if done < len(pending):
                # flock hands the lock to nobody: a writer woken by our unlock must get to run
                # before we take it again, or a callback could wait out the whole import
                time.sleep(BATCH_PAUSE)

    def count(self, sheet: str, existing: dict | None, changed: bool) -> None:
        if existing is None:
            self.report.created[sheet] += 1
        elif changed:
            self.report.updated[sheet] += 1
        else:
            self.report.unchanged[sheet] += 1

    # units: parents before children (the file may list them in any order)

    def units(self, units: list[dict[str, Any]]) -> None:
        ordered = sorted(units, key=lambda unit: LEVEL_RANK[unit["level"]])
        pending = []
        for unit in ordered:
            existing = get_unit(self.db, unit["code"])
            if existing is not None and not _changes(unit, existing):
                self.report.unchanged["units"] += 1
            else:
                pending.append(unit)
        self.batches("units", pending, self.write_unit)

    def write_unit(self, unit: dict[str, Any]) -> None:
        existing = get_unit(self.db, unit["code"])
        changes = _changes(unit, existing)
        if existing is None:
            insert_row(self.db, "units", unit)
            self.audit("units", unit["code"], "create", None, unit)
        elif changes:
            sets = ", ".join(f"{column} = ?" for column in changes)
            self.db.conn.execute(
                f"UPDATE units SET {sets} WHERE code = ?", [*changes.values(), unit["code"]]
            )
            before = {k: existing[k] for k in changes}
            self.audit("units", unit["code"], "update", before, changes)
        self.count("units", existing, bool(changes))

    # people

    def person(self, person: dict[str, Any]) -> tuple[dict[str, Any], dict | None, dict]:
        record = {k: v for k, v in person.items() if k != "line"}
        record["active"] = 1
        existing = _find_existing(self.db, "people", record)
        if record["wechat_id"] is None and existing is not None and existing["wechat_id"]:
            # an empty 微信号 cell keeps the id the person bound in chat (绑定 123456)
            del record["wechat_id"]
        return record, existing, _changes(record, existing)

    def people(self, people: list[dict[str, Any]]) -> None:
        pending = []
        for person in people:
            _, existing, changes = self.person(person)
            if existing is not None and not changes:
                self.report.unchanged["people"] += 1
                self.person_ids[(person["name"], person["unit"])] = existing["id"]
                self.listed.add(existing["id"])
            else:
                pending.append(person)
        self.batches("people", pending, self.write_person)
        for row in self.db.conn.execute("SELECT id, name, unit FROM people ORDER BY id"):
            self.person_ids.setdefault((row[1], row[2]), row[0])

    def write_person(self, person: dict[str, Any]) -> None:
        record, existing, changes = self.person(person)
        if existing is None:
            key = insert_row(self.db, "people", record)
            self.audit("people", key, "create", None, record)
        else:
            key = existing["id"]
            if changes:
                update_row(self.db, "people", key, changes)
                before = {k: existing.get(k) for k in changes}
                self.audit("people", key, "update", before, changes)
        self.person_ids[(person["name"], person["unit"])] = key
        self.listed.add(key)
        self.count("people", existing, bool(changes))

    def retire(self, codes: set[str]) -> None:
        """A file speaks for the units it lists: their people it no longer lists leave (a
        departed member's chat, page links and alerts stop). Others' units are untouched, so
        one village's file never retires another village's people."""
        if not codes:
            return
        marks = ",".join("?" * len(codes))
        leaving = [
            row
            for row in self.db.conn.execute(
                f"SELECT id, name, unit, roles FROM people WHERE active AND unit IN ({marks})",
                sorted(codes),
            )
            if row[0] not in self.listed
        ]
        with transaction(self.db):
            for key, name, unit, roles in leaving:
                update_row(self.db, "people", key, {"active": 0})
                self.audit("people", key, "update", {"active": 1}, {"active": 0})
                # a secretary, monitor or medic leaving stops alerts and digests: say so
                held = [_ROLE_CN[r] for r in (roles or "").split(",") if r in _ROLE_CN]
                self.report.retired.append(
                    f"{name}（{unit}{'，' + '、'.join(held) if held else ''}）"
                )

    # subjects and who is assigned to them

    def subject(self, subject: dict[str, Any]) -> tuple[dict, dict | None, dict, list, list]:
        record = {k: v for k, v in subject.items() if k not in ("members", "line")}
        record["file_days"] = record["days"]
        existing = _find_period(self.db, record)
        if existing is not None and existing.get("purged_on"):
            # erased after its retention (storage/purge.py): the file does not bring it back
            record = {k: v for k, v in record.items() if k not in PERSONAL}
        if existing is not None and _changed_in_chat(existing):
            if record["days"] == existing["file_days"]:  # the file's row did not change
                del record["days"]  # what a secretary changed in chat (延长) stays
        wanted = [self.person_ids[key] for key in subject["members"]]
        current = []
        if existing is not None:
            current = [
                row[0]
                for row in self.db.conn.execute(
                    "SELECT person_id FROM assignments WHERE subject_id = ? ORDER BY position",
                    [existing["id"]],
                )
            ]
        return record, existing, _changes(record, existing), wanted, current

    def overridden(self, subject: dict[str, Any], existing: dict | None, changes: dict) -> None:
        """Say which rows replaced what was changed in chat since the last import."""
        if existing is not None and "days" in changes and _changed_in_chat(existing):
            self.report.overrides.append(
                f"subjects 第{subject['line']}行：{subject['name']} 的天数按文件改为 "
                f"{changes['days']}，覆盖了群聊中的延长（原为 {existing['days']} 天）"
            )

    def subjects(self, subjects: list[dict[str, Any]]) -> None:
        pending = []
        for subject in subjects:
            _, existing, changes, wanted, current = self.subject(subject)
            if existing is not None and not changes and wanted == current:
                self.report.unchanged["subjects"] += 1
            else:
                pending.append(subject)
        self.batches("subjects", pending, self.write_subject)

    def write_subject(self, subject: dict[str, Any]) -> None:
        record, existing, changes, wanted, current = self.subject(subject)
        self.overridden(subject, existing, changes)
        if existing is None:
            key = insert_row(self.db, "subjects", record)
            self.audit("subjects", key, "create", None, record)
        else:
            key = existing["id"]
            if changes:
                update_row(self.db, "subjects", key, changes)
                before = {k: existing.get(k) for k in changes}
                self.audit("subjects", key, "update", before, changes)
        if current != wanted:
            self.db.conn.execute("DELETE FROM assignments WHERE subject_id = ?", [key])
            self.db.conn.executemany(
                "INSERT INTO assignments (subject_id, person_id, position) VALUES (?, ?, ?)",
                [(key, pid, position) for position, pid in enumerate(wanted)],
            )
            self.audit("subjects", key, "assign", {"members": current}, {"members": wanted})
        self.count("subjects", existing, bool(changes) or current != wanted)


def import_roster(
    db: sqlite_utils.Database,
    path: str | Path,
    *,
    now: dt.datetime,
    categories: Sequence[str],
    period: int = 14,
    dry_run: bool = False,
    actor: str = "roster import",
    batch_rows: int = BATCH_ROWS,
    on_batch: Callable[[str, int], None] | None = None,
) -> ImportReport:
    """Validate the whole file, then apply it in short transactions if it has no error.

    Validation only reads (no write lock is held while 50,000 rows are checked): every row,
    and the unit tree the file would make with the units already stored. A file with any
    error changes nothing. Then units, people and subjects are written in batches of at most
    `batch_rows` file rows (and BATCH_SECONDS of write lock), each its own transaction, so a
    WeChat callback waiting to store its message gets the lock between two batches. A row
    that is already as the file says is not written at all: re-importing the same file
    changes nothing and takes no write lock.

    Each batch bumps the roster version (by trigger, storage/migrations.py), so the roster
    cache of every process reads the new rows after each batch, never stale ones.

    A crash (or a kill) mid-import leaves the batches committed so far, each whole: a subject
    with its members and audit rows, never one without the other. Running the same import
    again completes it, since import is idempotent: the rows already written are found
    unchanged, the rest are written, and the result is the same as one clean import.
    `on_batch(sheet, rows_done)` is called after each committed batch (tests use it).
    """
    roster = read_roster(path)
    validator = _Validator(db, categories, period)
    validator.errors.extend(roster.errors)
    validator.units(roster.rows["units"])
    validator.people(roster.rows["people"])
    validator.subjects(roster.rows["subjects"])
    report = ImportReport(errors=validator.errors)
    if report.errors or dry_run:
        return report
    plan = validator.plan
    writer = _Writer(db, report, now, actor, batch_rows, on_batch)
    with checkpoint_after(db):  # the writer also checkpoints between batches
        writer.units(plan.units)
        writer.people(plan.people)
        writer.subjects(plan.subjects)
        writer.retire({unit["code"] for unit in plan.units})
    report.applied = True
    return report
