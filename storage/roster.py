"""Roster import and export: validate every row first, then apply all or nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from storage.audit import record_change
from storage.db import transaction
from storage.roster_file import SHEETS, Row, read_roster

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


@dataclass
class ImportReport:
    errors: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHEETS, 0))
    applied: bool = False

    def summary(self) -> str:
        parts = []
        for sheet in SHEETS:
            parts.append(
                f"{sheet}: 新增 {self.created[sheet]}，更新 {self.updated[sheet]}，"
                f"未变 {self.unchanged[sheet]}"
            )
        return "；".join(parts)


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
        self.unit_levels = {
            r["code"]: r["level"] for r in db.query("SELECT code, level FROM units")
        }
        self.unit_names: dict[str, list[str]] = {}
        for r in db.query("SELECT code, name FROM units"):
            self.unit_names.setdefault(r["name"], []).append(r["code"])

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
        seen: dict[str, int] = {}
        file_units = []
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
        for row, level in file_units:
            v = row.values
            parent = None
            if v["parent"]:
                parent = self.resolve_unit(row, v["parent"], "parent（上级）")
                if parent is None:
                    continue
                if parent == v["code"]:
                    self.fail(row, "上级不能是自己")
                    continue
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
            self.plan.units.append(
                {"code": v["code"], "name": v["name"], "level": level, "parent": parent}
            )

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
        for person in self.db.query("SELECT name, phone, roles, unit FROM people WHERE active"):
            if (person["name"], person["unit"]) in planned or person["phone"] in planned_phones:
                continue
            by_name.setdefault(person["name"], []).append(person)
            if person["phone"]:
                by_phone[person["phone"]] = person
        return by_name, by_phone

    def subjects(self, rows: list[Row]) -> None:
        by_name, by_phone = self._people_index()
        phones: dict[str, int] = {}
        names: dict[tuple[str, str], int] = {}
        for row in rows:
            v = row.values
            phone, ok = self.name_and_phone(row, phones, "监测对象重复")
            if v["category"] not in self.categories:
                self.fail(row, f"类别“{v['category']}”无法识别，应为：{'、'.join(self.categories)}")
                ok = False
            unit = self.resolve_unit(row, v["unit"], "unit（所属单位）")
            if unit is None:
                ok = False
            elif self.unit_levels[unit] not in ("village", "grid"):
                self.fail(row, f"所属单位“{v['unit']}”应为村(社)或网格")
                ok = False
            elif (v["name"], unit) in names:
                self.fail(
                    row,
                    f"监测对象“{v['name']}”与第{names[(v['name'], unit)]}行重复（同一单位同名）",
                )
                ok = False
            else:
                names[(v["name"], unit)] = row.line
            start = parse_date(v["start_date"])
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
                    }
                )


def _find_existing(
    db: sqlite_utils.Database, table: str, record: dict[str, Any]
) -> dict[str, Any] | None:
    if record.get("phone"):
        rows = list(db.query(f"SELECT * FROM {table} WHERE phone = ?", [record["phone"]]))
        if rows:
            return rows[0]
    rows = list(
        db.query(
            f"SELECT * FROM {table} WHERE name = ? AND unit = ? ORDER BY id",
            [record["name"], record["unit"]],
        )
    )
    return rows[0] if rows else None


def _upsert(
    db: sqlite_utils.Database,
    table: str,
    record: dict[str, Any],
    existing: dict[str, Any] | None,
    report: ImportReport,
    sheet: str,
    actor: str,
    now: dt.datetime,
    key: str = "id",
) -> Any:
    if existing is None:
        inserted = db[table].insert(record).last_pk
        record_change(db, now, actor, table, inserted, "create", None, record)
        report.created[sheet] += 1
        return record.get(key, inserted)
    changes = {k: v for k, v in record.items() if existing.get(k) != v}
    if changes:
        db[table].update(existing[key], changes)
        before = {k: existing.get(k) for k in changes}
        record_change(db, now, actor, table, existing[key], "update", before, changes)
        report.updated[sheet] += 1
    else:
        report.unchanged[sheet] += 1
    return existing[key]


def import_roster(
    db: sqlite_utils.Database,
    path: str | Path,
    *,
    now: dt.datetime,
    categories: Sequence[str],
    period: int = 14,
    dry_run: bool = False,
    actor: str = "roster import",
) -> ImportReport:
    """Validate the whole file; apply it in one transaction only if it has no error."""
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
    with transaction(db):
        # parents first: a unit's parent may come later in the file
        pending = list(plan.units)
        known = {r["code"] for r in db.query("SELECT code FROM units")}
        while pending:
            ready = [u for u in pending if u["parent"] is None or u["parent"] in known]
            for unit in ready:
                existing = next(
                    db.query("SELECT * FROM units WHERE code = ?", [unit["code"]]), None
                )
                _upsert(db, "units", unit, existing, report, "units", actor, now, key="code")
                known.add(unit["code"])
            pending = [u for u in pending if u not in ready]
            if not ready:  # a cycle: impossible after rank checks, kept as a guard
                raise RuntimeError("unit tree has a cycle")
        person_ids: dict[tuple[str, str], int] = {}
        for person in plan.people:
            record = {k: v for k, v in person.items() if k != "line"}
            record["active"] = 1
            existing = _find_existing(db, "people", record)
            if record["wechat_id"] is None and existing is not None and existing["wechat_id"]:
                # an empty 微信号 cell keeps the id the person bound in chat (绑定 123456)
                del record["wechat_id"]
            pid = _upsert(
                db,
                "people",
                record,
                existing,
                report,
                "people",
                actor,
                now,
            )
            person_ids[(person["name"], person["unit"])] = pid
        for row in db.query("SELECT id, name, unit FROM people"):
            person_ids.setdefault((row["name"], row["unit"]), row["id"])
        for subject in plan.subjects:
            record = {k: v for k, v in subject.items() if k != "members"}
            existing = _find_existing(db, "subjects", record)
            before = report.unchanged["subjects"]
            sid = _upsert(db, "subjects", record, existing, report, "subjects", actor, now)
            wanted = [person_ids[key] for key in subject["members"]]
            current = [
                r["person_id"]
                for r in db.query(
                    "SELECT person_id FROM assignments WHERE subject_id = ? ORDER BY position",
                    [sid],
                )
            ]
            if current != wanted:
                db.execute("DELETE FROM assignments WHERE subject_id = ?", [sid])
                for position, pid in enumerate(wanted):
                    db["assignments"].insert(
                        {"subject_id": sid, "person_id": pid, "position": position}
                    )
                record_change(
                    db,
                    now,
                    actor,
                    "subjects",
                    sid,
                    "assign",
                    {"members": current},
                    {"members": wanted},
                )
                if report.unchanged["subjects"] > before:
                    report.unchanged["subjects"] -= 1
                    report.updated["subjects"] += 1
    report.applied = True
    return report
