"""Numbered schema migrations; `PRAGMA user_version` holds the number applied."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import sqlite_utils

SCHEMA_1 = [
    """CREATE TABLE units (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('county', 'town', 'village', 'grid')),
        parent TEXT REFERENCES units(code)
    )""",
    "CREATE INDEX units_parent ON units(parent)",
    """CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        phone TEXT,
        wechat_id TEXT UNIQUE,
        roles TEXT NOT NULL,
        unit TEXT NOT NULL REFERENCES units(code),
        active INTEGER NOT NULL DEFAULT 1
    )""",
    "CREATE UNIQUE INDEX people_phone ON people(phone) WHERE phone IS NOT NULL AND phone != ''",
    "CREATE INDEX people_unit ON people(unit)",
    """CREATE TABLE subjects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        phone TEXT,
        category TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        unit TEXT NOT NULL REFERENCES units(code),
        start_date TEXT NOT NULL,
        days INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'released', 'hospitalized', 'transferred')),
        released_on TEXT,
        end_date TEXT GENERATED ALWAYS AS (date(start_date, '+' || (days - 1) || ' days')) VIRTUAL
    )""",
    "CREATE INDEX subjects_unit ON subjects(unit, start_date)",
    """CREATE TABLE assignments (
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id),
        position INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (subject_id, person_id)
    )""",
    "CREATE INDEX assignments_person ON assignments(person_id)",
    """CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        at TEXT NOT NULL,
        channel TEXT NOT NULL,
        sender TEXT NOT NULL,
        person_id INTEGER REFERENCES people(id),
        dedup_key TEXT UNIQUE,
        type TEXT NOT NULL DEFAULT 'text',
        text TEXT NOT NULL DEFAULT '',
        raw TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT 'received',
        error TEXT,
        reply TEXT
    )""",
    "CREATE INDEX inbox_person ON inbox(person_id, id)",
    """CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        date TEXT NOT NULL,
        slot TEXT NOT NULL CHECK (slot IN ('morning', 'noon', 'evening')),
        member_id INTEGER REFERENCES people(id),
        temperature REAL,
        status TEXT NOT NULL CHECK (status IN ('normal', 'abnormal', 'unreachable', 'absent')),
        symptoms TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        reported_at TEXT NOT NULL,
        inbox_id INTEGER REFERENCES inbox(id),
        current INTEGER NOT NULL DEFAULT 1,
        replaced_by INTEGER REFERENCES contacts(id),
        revoked INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE UNIQUE INDEX contacts_current ON contacts(subject_id, date, slot) WHERE current = 1",
    "CREATE INDEX contacts_date ON contacts(date, slot, current)",
    "CREATE INDEX contacts_inbox ON contacts(inbox_id)",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        recipient TEXT NOT NULL DEFAULT '',
        person_id INTEGER REFERENCES people(id),
        person TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        sent_at TEXT,
        next_attempt_at TEXT,
        send_key TEXT,
        inbox_id INTEGER REFERENCES inbox(id)
    )""",
    "CREATE INDEX outbox_status ON outbox(status, next_attempt_at)",
    "CREATE INDEX outbox_at ON outbox(at)",
    "CREATE INDEX outbox_person ON outbox(person_id, id)",
    """CREATE TABLE sends (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        date TEXT NOT NULL,
        slot TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE job_runs (
        job TEXT NOT NULL,
        due TEXT NOT NULL,
        ran_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (job, due)
    )""",
    """CREATE TABLE needs (
        id INTEGER PRIMARY KEY,
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
        created_by INTEGER REFERENCES people(id),
        created_at TEXT NOT NULL,
        closed_by INTEGER REFERENCES people(id),
        closed_at TEXT
    )""",
    "CREATE INDEX needs_status ON needs(status, subject_id)",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        entity TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        action TEXT NOT NULL,
        before TEXT,
        after TEXT
    )""",
    "CREATE INDEX audit_entity ON audit(entity, entity_id)",
    """CREATE TABLE invites (
        code TEXT PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
    )""",
    """CREATE TABLE bind_attempts (
        sender TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX bind_attempts_sender ON bind_attempts(sender, at)",
    """CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
    """CREATE TABLE mp_windows (
        recipient TEXT PRIMARY KEY,
        last_inbound_at TEXT NOT NULL,
        sent_since INTEGER NOT NULL DEFAULT 0
    )""",
]


def _apply(statements: list[str]) -> Callable[[sqlite_utils.Database], None]:
    def migration(db: sqlite_utils.Database) -> None:
        for statement in statements:
            db.execute(statement)

    return migration


# 2: small key/value settings shared by every process (the chat simulator's clock offset)
SCHEMA_2 = [
    """CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
]

# 3: a roster version that every change to units, people, subjects or assignments bumps (by
# trigger, so no code path can forget), so a process may cache roster reads per version
_BUMP = "UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'roster_version'"
SCHEMA_3 = [
    "INSERT OR IGNORE INTO settings (key, value) VALUES ('roster_version', '0')",
    *(
        f"CREATE TRIGGER roster_{table}_{event.lower()} AFTER {event} ON {table} BEGIN {_BUMP}; END"
        for table in ("units", "people", "subjects", "assignments")
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]

# 4: a message's outbox rows (its reply, its alerts, sent at once) are found by inbox_id, not
# by scanning the outbox. The index on `at` only spared `gridwatch outbox` a sort (300,000
# rows sort as fast), and cost every message a B-tree write.
SCHEMA_4 = [
    "DROP INDEX IF EXISTS outbox_at",
    "CREATE INDEX IF NOT EXISTS outbox_inbox ON outbox(inbox_id)",
]


# 5: the deployment's own key for signed links, generated once and kept with the data, so
# every process on this database signs and reads the same links; one set in the config or
# the environment is used instead (bot/links.py). An existing key is never replaced.
def _secret_key(db: sqlite_utils.Database) -> None:
    db.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES ('secret_key', ?)",
        [secrets.token_urlsafe(32)],
    )


# 6: messages stored raw whose handling has not been written yet (a hand-off under a busy write
# lock, or one whose process died in between) are found without scanning the inbox
SCHEMA_6 = [
    "CREATE INDEX IF NOT EXISTS inbox_received ON inbox(id) WHERE outcome = 'received'",
]


# 7: a roster import finds the subject a file row stands for by its phone (DESIGN §6): without
# an index every row of a county import scanned the whole subjects table
SCHEMA_7 = [
    "CREATE INDEX IF NOT EXISTS subjects_phone ON subjects(phone)",
]


# 8: personal data has an end (storage/purge.py): when a subject's phone, address and messages
# were erased
def _purged_on(db: sqlite_utils.Database) -> None:
    if "purged_on" not in db["subjects"].columns_dict:
        db.execute("ALTER TABLE subjects ADD COLUMN purged_on TEXT")


# 9: each digest as the job computed and sent it, so `gridwatch digest --report N` asked
# later shows what the secretary was told, not today's statuses
SCHEMA_9 = [
    """CREATE TABLE IF NOT EXISTS digests_sent (
        unit TEXT NOT NULL,
        date TEXT NOT NULL,
        report INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (unit, date, report)
    )""",
]


# 10: the days a subject's row had in the last imported file, so a re-import of an unchanged
# row keeps what a secretary changed in chat since (延长)
def _file_days(db: sqlite_utils.Database) -> None:
    if "file_days" not in db["subjects"].columns_dict:
        db.execute("ALTER TABLE subjects ADD COLUMN file_days INTEGER")


# 11: alerts carry a number and are acknowledged (收到 N / 已处置 N) or escalate (DESIGN §11):
# one row per alert event, who got it, and every acknowledgement
SCHEMA_11 = [
    """CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('abnormal', 'unreachable', 'absent')),
        subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        date TEXT NOT NULL,
        slot TEXT NOT NULL,
        summary TEXT NOT NULL,
        raised_at TEXT NOT NULL,
        raised_by INTEGER REFERENCES people(id),
        inbox_id INTEGER REFERENCES inbox(id),
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'received', 'handled', 'voided')),
        voided_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, raised_at)",
    "CREATE INDEX IF NOT EXISTS alerts_subject ON alerts(subject_id, date, slot)",
    """CREATE TABLE IF NOT EXISTS alert_recipients (
        alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id),
        PRIMARY KEY (alert_id, person_id)
    )""",
    """CREATE TABLE IF NOT EXISTS alert_acks (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        person_id INTEGER NOT NULL REFERENCES people(id),
        action TEXT NOT NULL CHECK (action IN ('received', 'handled')),
        at TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS alert_acks_alert ON alert_acks(alert_id)",
]


# 12: a need is a problem of the ledger (问题台账): an owner (包干负责), a level (village, town,
# county), a due time by kind, and the note it was closed with
def _problems(db: sqlite_utils.Database) -> None:
    columns = db["needs"].columns_dict
    for name, kind in (
        ("owner_id", "INTEGER REFERENCES people(id)"),
        ("level", "TEXT NOT NULL DEFAULT 'village'"),
        ("due_at", "TEXT"),
        ("moved_at", "TEXT"),
        ("note", "TEXT NOT NULL DEFAULT ''"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE needs ADD COLUMN {name} {kind}")
    db.execute("CREATE INDEX IF NOT EXISTS needs_due ON needs(status, due_at)")
    # needs from before: owned by their subject's first member; no due time (an upgrade does
    # not send every old need up at once)
    db.execute(
        """UPDATE needs SET owner_id = (SELECT a.person_id FROM assignments a
               WHERE a.subject_id = needs.subject_id ORDER BY a.position LIMIT 1)
           WHERE owner_id IS NULL"""
    )


# 13: what a message is, in a few words (title, summary) and the page that shows all of it
# (JSON, bot/channels/cards.py), so a channel can send it as a template or a card
def _outbox_card(db: sqlite_utils.Database) -> None:
    if "card" not in db["outbox"].columns_dict:
        db.execute("ALTER TABLE outbox ADD COLUMN card TEXT")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _apply(SCHEMA_1),
    _apply(SCHEMA_2),
    _apply(SCHEMA_3),
    _apply(SCHEMA_4),
    _secret_key,
    _apply(SCHEMA_6),
    _apply(SCHEMA_7),
    _purged_on,
    _apply(SCHEMA_9),
    _file_days,
    _apply(SCHEMA_11),
    _problems,
    _outbox_card,
]
