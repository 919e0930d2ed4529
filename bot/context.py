"""What a command or a request works with: the database and the settings."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from bot.config import Config


@dataclass
class Context:
    db: sqlite_utils.Database
    config: Config
    db_path: str = ""
    alerts_queued: int = 0  # by the message being handled (delivered at once after it)
