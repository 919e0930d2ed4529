"""The care-needs ledger (生活物资 / 就医 / 心理疏导 / 其他)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlite_utils

from storage.audit import record_change

NEED_KINDS = ("生活物资", "就医", "心理疏导", "其他")
# checked in this order: a medical or emotional need is the more urgent reading
_KEYWORDS = {
    "就医": ("看病", "就医", "药", "医院", "发烧", "体检", "孕检", "透析", "复查", "打针", "医生"),
    "心理疏导": ("心理", "情绪", "焦虑", "失眠", "害怕", "紧张", "烦", "聊天", "哭", "抑郁"),
    "生活物资": (
        "买菜", "蔬菜", "菜", "大米", "米", "面条", "面粉", "挂面", "食用油", "油盐", "肉",
        "蛋", "奶", "饮用水", "矿泉水", "桶装水", "送水", "买水", "物资", "生活用品", "煤气",
        "液化气", "快递", "日用", "口罩", "消毒", "尿不湿", "卫生纸", "纸巾", "粮",
    ),
}  # fmt: skip


def classify_need(text: str) -> str:
    for kind in NEED_KINDS[:3]:
        if kind in text:
            return kind
    for kind, words in _KEYWORDS.items():
        if any(word in text for word in words):
            return kind
    return "其他"


def add_need(
    db: sqlite_utils.Database, subject_id: int, text: str, person_id: int, now: dt.datetime
) -> dict:
    kind = classify_need(text)
    need_id = (
        db["needs"]
        .insert(
            {
                "subject_id": subject_id,
                "kind": kind,
                "text": text,
                "status": "open",
                "created_by": person_id,
                "created_at": now.isoformat(timespec="seconds"),
            }
        )
        .last_pk
    )
    record_change(
        db,
        now,
        f"person:{person_id}",
        "needs",
        need_id,
        "create",
        None,
        {"kind": kind, "text": text},
    )
    return {"id": need_id, "kind": kind, "text": text}


def open_needs(db: sqlite_utils.Database, units: Sequence[str]) -> list[dict]:
    marks = ",".join("?" * len(units))
    return list(
        db.query(
            f"""SELECT n.*, s.name AS subject, s.unit
                FROM needs n JOIN subjects s ON s.id = n.subject_id
                WHERE n.status = 'open' AND s.unit IN ({marks}) ORDER BY n.id""",
            list(units),
        )
    )


def close_need(db: sqlite_utils.Database, need_id: int, person_id: int, now: dt.datetime) -> None:
    db.execute(
        "UPDATE needs SET status = 'closed', closed_by = ?, closed_at = ? WHERE id = ?",
        [person_id, now.isoformat(timespec="seconds"), need_id],
    )
    record_change(
        db,
        now,
        f"person:{person_id}",
        "needs",
        need_id,
        "close",
        {"status": "open"},
        {"status": "closed"},
    )
