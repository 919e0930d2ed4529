"""The key that signs links, when the deployment configures none: kept in `settings`."""

from __future__ import annotations

import sqlite_utils

SETTING = "secret_key"  # the row migration 5 writes


def stored_secret_key(db: sqlite_utils.Database) -> str:
    """The database's own key, or "" when it has none (a schema older than migration 5)."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", [SETTING]).fetchone()
    return row[0] if row else ""
