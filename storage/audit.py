"""The audit history: every change to a subject, a person, a unit or a report."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlite_utils

from storage.db import insert_row


def record_change(
    db: sqlite_utils.Database,
    now: dt.datetime,
    actor: str,
    entity: str,
    entity_id: Any,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    insert_row(
        db,
        "audit",
        {
            "at": now.isoformat(timespec="seconds"),
            "actor": actor,
            "entity": entity,
            "entity_id": str(entity_id),
            "action": action,
            "before": json.dumps(before, ensure_ascii=False) if before is not None else None,
            "after": json.dumps(after, ensure_ascii=False) if after is not None else None,
        },
    )
