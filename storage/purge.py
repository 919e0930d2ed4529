"""Personal data has an end (DESIGN §6): `retention_days` after a subject's period ended, its
phone and address, the raw text of the messages about it (and what was said back about
them), its needs' wording and the personal fields in its audit trail are erased. Counts,
reports, digests, statuses and the audit trail itself stay.

A subject is purged once (`subjects.purged_on`). Work goes in transactions of BATCH subjects,
so a county's first purge never holds the write lock for long; a crash part-way leaves the
batches done, and the next run does the rest.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import sqlite_utils

from storage.db import fetch_all, transaction
from storage.units import ancestors, descendants, village_of

BATCH = 200
PERSONAL = ("phone", "address")  # the subject's fields that go; its name stays in the records
NEED_WORDS = ("text", "note")  # a need's wording and closing note, in its audit trail

# the last day of a subject's period: its end date, or the day before an early release
_ENDED = "min(s.end_date, coalesce(date(s.released_on, '-1 day'), s.end_date))"


@dataclass
class Purged:
    cutoff: dt.date  # periods that ended before this day are purged
    subjects: int = 0
    messages: int = 0
    replies: int = 0
    needs: int = 0
    audit: int = 0
    names: list[str] = field(default_factory=list)

    def summary(self, dry_run: bool) -> str:
        verb = "would erase" if dry_run else "erased"
        return (
            f"periods ended before {self.cutoff.isoformat()}: {self.subjects} subjects; {verb}"
            f" phones and addresses, the text of {self.messages} messages and {self.replies}"
            f" outbound messages about them, {self.needs} needs' wording, personal fields of"
            f" {self.audit} audit rows"
        )


def purge(
    db: sqlite_utils.Database, today: dt.date, retention_days: int, *, dry_run: bool = False
) -> Purged:
    """Erase the personal data of every subject whose period ended more than
    `retention_days` before `today` (with `dry_run`, only count what would go)."""
    cutoff = today - dt.timedelta(days=retention_days)
    due = [
        (row["id"], row["name"])
        for row in fetch_all(
            db,
            f"SELECT s.id, s.name FROM subjects s WHERE s.purged_on IS NULL AND {_ENDED} < ?"
            " ORDER BY s.id",
            [cutoff.isoformat()],
        )
    ]
    result = Purged(cutoff, subjects=len(due), names=[name for _, name in due])
    for start in range(0, len(due), BATCH):
        ids = [subject_id for subject_id, _ in due[start : start + BATCH]]
        if dry_run:
            _count(db, ids, result)
        else:
            with transaction(db):
                _count(db, ids, result)
                _erase(db, ids, today)
    return result


def _messages(db: sqlite_utils.Database, ids: list[int]) -> list[int]:
    """Inbound messages about these subjects and about no subject still kept: those whose
    reports name them, and commands that name them (查 张三, 需求 张三 买菜, 更正 …) sent by
    people of their village or above it."""
    marks = ",".join("?" * len(ids))
    found = {
        row[0]
        for row in db.execute(
            f"""SELECT DISTINCT c.inbox_id FROM contacts c WHERE c.subject_id IN ({marks})
                AND c.inbox_id IS NOT NULL""",
            ids,
        )
    }
    for name, unit in db.execute(
        f"SELECT name, unit FROM subjects WHERE id IN ({marks})", ids
    ).fetchall():
        village = village_of(db, unit) or unit
        near = sorted({*descendants(db, village), *ancestors(db, village)})
        unit_marks = ",".join("?" * len(near))
        found |= {
            row[0]
            for row in db.execute(
                f"""SELECT i.id FROM inbox i JOIN people p ON p.id = i.person_id
                    WHERE p.unit IN ({unit_marks}) AND instr(i.text, ?) > 0""",
                [*near, name],
            )
        }
    kept = {
        row[0]
        for row in db.execute(
            f"""SELECT DISTINCT o.inbox_id FROM contacts o JOIN subjects s ON s.id = o.subject_id
                WHERE s.purged_on IS NULL AND s.id NOT IN ({marks})
                AND o.inbox_id IN ({",".join("?" * len(found)) or "NULL"})""",
            [*ids, *found],
        )
    }
    return sorted(found - kept)


def _count(db: sqlite_utils.Database, ids: list[int], result: Purged) -> None:
    marks = ",".join("?" * len(ids))
    messages = _messages(db, ids)
    result.messages += len(messages)
    if messages:
        inbox_marks = ",".join("?" * len(messages))
        result.replies += db.execute(
            f"SELECT count(*) FROM outbox WHERE inbox_id IN ({inbox_marks})", messages
        ).fetchone()[0]
    result.needs += db.execute(
        f"SELECT count(*) FROM needs WHERE subject_id IN ({marks})", ids
    ).fetchone()[0]
    result.audit += db.execute(
        f"SELECT count(*) FROM audit WHERE entity = 'subjects' AND entity_id IN ({marks})",
        [str(i) for i in ids],
    ).fetchone()[0]


def _erase(db: sqlite_utils.Database, ids: list[int], today: dt.date) -> None:
    marks = ",".join("?" * len(ids))
    messages = _messages(db, ids)
    if messages:
        inbox_marks = ",".join("?" * len(messages))
        db.execute(
            f"UPDATE inbox SET text = '', raw = '', reply = '' WHERE id IN ({inbox_marks})",
            messages,
        )
        db.execute(f"UPDATE outbox SET text = '' WHERE inbox_id IN ({inbox_marks})", messages)
    # the problem ledger's wording and notes (in its audit trail too), acknowledgements'
    # notes, and the escalations that quoted a need (their send keys name it)
    need_ids = [
        row[0] for row in db.execute(f"SELECT id FROM needs WHERE subject_id IN ({marks})", ids)
    ]
    for need_id in need_ids:
        db.execute(
            "UPDATE outbox SET text = '' WHERE kind = 'escalation' AND send_key LIKE ?",
            [f"escalation|need:{need_id}/%"],
        )
        for row in fetch_all(
            db,
            "SELECT id, before, after FROM audit WHERE entity = 'needs' AND entity_id = ?",
            [str(need_id)],
        ):
            db.execute(
                "UPDATE audit SET before = ?, after = ? WHERE id = ?",
                [
                    _without_personal(row["before"], NEED_WORDS),
                    _without_personal(row["after"], NEED_WORDS),
                    row["id"],
                ],
            )
    db.execute(f"UPDATE needs SET text = '', note = '' WHERE subject_id IN ({marks})", ids)
    db.execute(
        f"""UPDATE alert_acks SET note = '' WHERE alert_id IN
            (SELECT id FROM alerts WHERE subject_id IN ({marks}))""",
        ids,
    )
    for name in {
        row[0] for row in db.execute(f"SELECT name FROM subjects WHERE id IN ({marks})", ids)
    }:
        _scrub_digests(db, name)
    for row in fetch_all(
        db,
        f"SELECT id, before, after FROM audit WHERE entity = 'subjects' AND entity_id IN ({marks})",
        [str(i) for i in ids],
    ):
        db.execute(
            "UPDATE audit SET before = ?, after = ? WHERE id = ?",
            [_without_personal(row["before"]), _without_personal(row["after"]), row["id"]],
        )
    db.execute(
        f"UPDATE subjects SET phone = NULL, address = '', purged_on = ? WHERE id IN ({marks})",
        [today.isoformat(), *ids],
    )


def _scrub_digests(db: sqlite_utils.Database, name: str) -> None:
    """Digests kept as sent hold needs' wording: theirs goes, the counts stay."""
    for row_id, body in db.execute(
        "SELECT rowid, body FROM digests_sent WHERE instr(body, ?) > 0", [name]
    ).fetchall():
        digest = json.loads(body)
        for part in [digest, *digest.get("villages", [])]:
            for need in part.get("needs", []):
                if need.get("subject") == name:
                    need["text"] = ""
        db.execute(
            "UPDATE digests_sent SET body = ? WHERE rowid = ?",
            [json.dumps(digest, ensure_ascii=False), row_id],
        )


def _without_personal(recorded: str | None, keys: tuple[str, ...] = PERSONAL) -> str | None:
    if not recorded:
        return recorded
    values = json.loads(recorded)
    if not isinstance(values, dict):
        return recorded
    for key in keys:
        if key in values:
            values[key] = None
    return json.dumps(values, ensure_ascii=False)
