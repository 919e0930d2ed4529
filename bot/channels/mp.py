"""The `mp` channel: template messages where configured, customer-service messages otherwise.

A template shows three short fields (title, time, summary: bot/channels/cards.py) and opens
the signed page with the whole message; WeChat shows nothing else of it since 2023-05-04.

Customer-service messages may only be sent within 48 hours of the user's last message, and
at most 5 of them; `mp_windows` tracks both. What cannot be sent is marked 'undeliverable'.
"""

from __future__ import annotations

import datetime as dt

import sqlite_utils

from bot.channels.api import ApiClient, ApiResult
from bot.channels.cards import card_for, template_body
from bot.channels.outcomes import record, record_result
from bot.channels.split import split_text
from bot.config import Config, Template
from storage.db import transaction

WINDOW = dt.timedelta(hours=48)
WINDOW_MESSAGES = 5
# 40003 bad openid, 43004 not following, 43101 refuses, 45015 window closed, 45047 5 sent
UNDELIVERABLE = frozenset({40003, 43004, 43101, 45015, 45047})


def record_inbound(db: sqlite_utils.Database, recipient: str, at: dt.datetime) -> None:
    """A message from the user opens a new window (a replayed older message does not)."""
    stamp = at.isoformat(timespec="seconds")
    with transaction(db):
        db.execute(
            """INSERT INTO mp_windows (recipient, last_inbound_at, sent_since) VALUES (?, ?, 0)
               ON CONFLICT (recipient) DO UPDATE SET last_inbound_at = excluded.last_inbound_at,
               sent_since = 0 WHERE excluded.last_inbound_at > mp_windows.last_inbound_at""",
            [recipient, stamp],
        )


def window_room(db: sqlite_utils.Database, recipient: str, now: dt.datetime) -> int:
    """How many customer-service messages the recipient may still get now."""
    row = db.execute(
        "SELECT last_inbound_at, sent_since FROM mp_windows WHERE recipient = ?", [recipient]
    ).fetchone()
    if row is None or dt.datetime.fromisoformat(row[0]) + WINDOW <= now:
        return 0
    return max(0, WINDOW_MESSAGES - row[1])


class MpChannel:
    name = "mp"

    def __init__(self, config: Config, api: ApiClient | None = None) -> None:
        self.config = config
        self.api = api or ApiClient(config.channel)

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        for row in rows:
            chunks = split_text(row["text"])
            template = self.config.channel.template(row["kind"])
            if not row["recipient"]:
                record(db, [row], now, status="undeliverable", note="no openid (not bound)")
            elif template:
                body = template_body(row, template, card_for(db, self.config, row, now))
                self._send(db, row, [body], now, template)
            elif window_room(db, row["recipient"], now) < len(chunks):
                note = (
                    f"no template for {row['kind']} and outside the customer-service window"
                    " (48 h / 5 messages since the user's last message)"
                )
                record(db, [row], now, status="undeliverable", note=note)
            else:
                self._send(db, row, chunks, now, None)

    def _send(
        self,
        db: sqlite_utils.Database,
        row: dict,
        chunks: list[str] | list[dict],
        now: dt.datetime,
        template: Template | None,
    ) -> None:
        """Send the row's parts: text chunks as customer-service messages, or one template."""
        attempts, failures = 0, []
        result = ApiResult(0, "ok")
        for chunk in chunks:
            if isinstance(chunk, dict):
                path, body = "/cgi-bin/message/template/send", chunk
            else:
                path, body = self._custom(row, chunk)
            result = self.api.post(db, path, body)
            attempts += result.attempts
            failures += result.failures
            if result.ok and path.endswith("custom/send"):
                db.execute(
                    "UPDATE mp_windows SET sent_since = sent_since + 1 WHERE recipient = ?",
                    [row["recipient"]],
                )
            if not result.ok:
                break
        if result.errcode in (45015, 45047):  # WeChat says the window is closed: believe it
            db.execute(
                "UPDATE mp_windows SET sent_since = ? WHERE recipient = ?",
                [WINDOW_MESSAGES, row["recipient"]],
            )
        record_result(db, [row], now, result, attempts, failures, UNDELIVERABLE)

    def _custom(self, row: dict, chunk: str) -> tuple[str, dict]:
        body = {"touser": row["recipient"], "msgtype": "text", "text": {"content": chunk}}
        return "/cgi-bin/message/custom/send", body
