"""Numbered alerts (DESIGN §11): each abnormal, unreachable or absent alert event is one row
whose id is the number its recipients answer with (收到 N / 已处置 N)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlite_utils

from storage.db import fetch_all, first, insert_row

ACTIONS = {"received": "收到", "handled": "已处置"}


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def create_alert(
    db: sqlite_utils.Database,
    *,
    kind: str,
    subject_id: int,
    day: dt.date,
    slot: str,
    summary: str,
    at: dt.datetime,
    raised_by: int | None,
    inbox_id: int | None,
) -> int:
    """A new alert event; its id is its number."""
    return insert_row(
        db,
        "alerts",
        {
            "kind": kind,
            "subject_id": subject_id,
            "date": day.isoformat(),
            "slot": slot,
            "summary": summary,
            "raised_at": _stamp(at),
            "raised_by": raised_by,
            "inbox_id": inbox_id or None,
            "status": "open",
        },
    )


def add_recipients(db: sqlite_utils.Database, alert_id: int, people: Iterable[dict]) -> None:
    db.conn.executemany(
        "INSERT OR IGNORE INTO alert_recipients (alert_id, person_id) VALUES (?, ?)",
        [(alert_id, person["id"]) for person in people],
    )


def get_alert(db: sqlite_utils.Database, number: int) -> dict | None:
    return first(
        fetch_all(
            db,
            """SELECT a.*, s.name AS subject, s.unit FROM alerts a
               JOIN subjects s ON s.id = a.subject_id WHERE a.id = ?""",
            [number],
        ),
        None,
    )


def recipient_ids(db: sqlite_utils.Database, alert_id: int) -> set[int]:
    return set(recipient_names(db, alert_id))


def recipient_names(db: sqlite_utils.Database, alert_id: int) -> dict[int, str]:
    """Who got the alert itself: id → name."""
    return dict(
        db.conn.execute(
            """SELECT p.id, p.name FROM alert_recipients r JOIN people p ON p.id = r.person_id
               WHERE r.alert_id = ? ORDER BY p.id""",
            [alert_id],
        ).fetchall()
    )


def escalated_to(db: sqlite_utils.Database, alert_id: int) -> list[dict]:
    """The people an escalation of this alert went to (their send keys name the alert)."""
    return fetch_all(
        db,
        """SELECT DISTINCT p.* FROM outbox o JOIN people p ON p.id = o.person_id
           WHERE o.kind = 'escalation' AND o.send_key LIKE ? ORDER BY p.id""",
        [f"escalation|alert:{alert_id}/%"],
    )


def acks_of(db: sqlite_utils.Database, alert_id: int) -> list[dict]:
    return fetch_all(
        db,
        """SELECT k.*, p.name AS person FROM alert_acks k JOIN people p ON p.id = k.person_id
           WHERE k.alert_id = ? ORDER BY k.id""",
        [alert_id],
    )


def record_ack(
    db: sqlite_utils.Database,
    alert_id: int,
    person_id: int,
    action: str,
    at: dt.datetime,
    note: str = "",
) -> None:
    """Who acknowledged which alert, when, how, with what note; the alert's status follows
    (handled wins over received)."""
    insert_row(
        db,
        "alert_acks",
        {"alert_id": alert_id, "person_id": person_id, "action": action, "at": _stamp(at)}
        | {"note": note},
    )
    db.execute(
        "UPDATE alerts SET status = ? WHERE id = ? AND status IN ('open', 'received')",
        [action, alert_id],
    )


def void_alerts(
    db: sqlite_utils.Database, subject_id: int, day: dt.date, slot: str, kind: str, at: dt.datetime
) -> int:
    """A correction removed the status these alerts were about: they are closed for
    escalation (status 'voided'); acknowledged ones keep their acknowledgement."""
    return db.execute(
        """UPDATE alerts SET status = 'voided', voided_at = ?
           WHERE subject_id = ? AND date = ? AND slot = ? AND kind = ? AND status = 'open'""",
        [_stamp(at), subject_id, day.isoformat(), slot, kind],
    ).rowcount


def open_alerts(db: sqlite_utils.Database, since: dt.datetime, until: dt.datetime) -> list[dict]:
    """Unacknowledged, uncorrected alerts raised in [since, until] (stamps in one zone)."""
    return fetch_all(
        db,
        """SELECT a.*, s.name AS subject, s.unit FROM alerts a
           JOIN subjects s ON s.id = a.subject_id
           WHERE a.status = 'open' AND a.raised_at >= ? AND a.raised_at <= ?
           ORDER BY a.id""",
        [_stamp(since), _stamp(until)],
    )


def alerts_on(
    db: sqlite_utils.Database, subject_ids: list[int], day: dt.date
) -> dict[tuple[int, str, str], dict]:
    """The latest alert of each (subject, slot, kind) of `day`, with its status."""
    found: dict[tuple[int, str, str], dict] = {}
    for start in range(0, len(subject_ids), 900):
        chunk = subject_ids[start : start + 900]
        for row in fetch_all(
            db,
            f"""SELECT id, subject_id, slot, kind, status FROM alerts
                WHERE date = ? AND subject_id IN ({",".join("?" * len(chunk))}) ORDER BY id""",
            [day.isoformat(), *chunk],
        ):
            found[(row["subject_id"], row["slot"], row["kind"])] = row
    return found


def day_alerts(db: sqlite_utils.Database, units: list[str], day: dt.date) -> list[dict]:
    """The alerts of `day` about the units' subjects, oldest first, each with its
    acknowledgements (`acks`: person, action, at, note)."""
    marks = ",".join("?" * len(units))
    alerts = fetch_all(
        db,
        f"""SELECT a.*, s.name AS subject FROM alerts a JOIN subjects s ON s.id = a.subject_id
            WHERE a.date = ? AND s.unit IN ({marks}) ORDER BY a.id""",
        [day.isoformat(), *units],
    )
    for alert in alerts:
        alert["acks"] = acks_of(db, alert["id"])
    return alerts
