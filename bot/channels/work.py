"""The `work` channel: WeCom app messages (message/send), batched, split, rate-kept."""

from __future__ import annotations

import datetime as dt
import zlib
from collections import Counter

import sqlite_utils

from bot.channels.api import ApiClient, ApiResult
from bot.channels.outcomes import record, record_result
from bot.channels.split import split_text
from bot.config import Config
from storage.db import fetch_all

BATCH = 1000  # recipients per message/send call (touser joined with |)
PER_MEMBER_PER_MINUTE = 30  # WeCom drops the excess silently, so it is never sent
SPREAD_FROM = 20  # a delivery round this large due on a :00/:30 minute is moved off the mark
UNDELIVERABLE = frozenset({81013})  # every UserID invalid or outside the app's visible range


class WorkChannel:
    name = "work"

    # a bulk round due on a :00/:30 mark moves 1–5 minutes later; the scheduler's
    # once-a-minute delivery sends it then
    def __init__(self, config: Config, api: ApiClient | None = None, spread: bool = True) -> None:
        self.config = config
        self.api = api or ApiClient(config.channel)
        self.spread = spread

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        left = _sends_left(db, now)
        groups: dict[str, list[dict]] = {}
        for row in rows:
            if not row["recipient"]:
                record(db, [row], now, status="undeliverable", note="no WeCom UserID")
            else:
                groups.setdefault(row["text"], []).append(row)
        for text, group in groups.items():
            if self.spread and len(rows) >= SPREAD_FROM and now.minute % 30 == 0:
                later = _off_the_mark(now, text)
                record(db, group, now, status="queued", next_attempt_at=later)
                continue
            chunks = split_text(text)
            if len(chunks) > PER_MEMBER_PER_MINUTE:  # could never fit a minute's allowance
                note = (
                    f"too long: {len(chunks)} parts, more than WeCom's"
                    f" {PER_MEMBER_PER_MINUTE} messages a minute to one person"
                )
                record(db, group, now, status="failed", note=note)
                continue
            ready, held = [], []
            for row in group:
                if left.get(row["recipient"], PER_MEMBER_PER_MINUTE) >= len(chunks):
                    left[row["recipient"]] = left.get(row["recipient"], PER_MEMBER_PER_MINUTE)
                    left[row["recipient"]] -= len(chunks)
                    ready.append(row)
                else:
                    held.append(row)
            if held:
                next_minute = now.replace(second=0) + dt.timedelta(minutes=1)
                record(db, held, now, status="queued", next_attempt_at=next_minute)
            for batch in _batches(ready):
                self._send(db, batch, chunks, now)

    def _send(
        self, db: sqlite_utils.Database, rows: list[dict], chunks: list[str], now: dt.datetime
    ) -> None:
        attempts, failures, invalid = 0, [], set()
        result = ApiResult(0, "ok")
        for chunk in chunks:
            result = self.api.post(db, "/cgi-bin/message/send", self._payload(rows, chunk))
            attempts += result.attempts
            failures += result.failures
            if not result.ok:
                break
            for key in ("invaliduser", "unlicenseduser"):
                invalid |= set(str(result.data.get(key) or "").split("|")) - {""}
        bad = [row for row in rows if row["recipient"] in invalid]
        if bad:
            note = "WeCom: invalid UserID or not in the app's visible range"
            record(db, bad, now, status="undeliverable", attempts=attempts, note=note)
        good = [row for row in rows if row["recipient"] not in invalid]
        if good:
            record_result(db, good, now, result, attempts, failures, UNDELIVERABLE)

    def _payload(self, rows: list[dict], chunk: str) -> dict:
        agent = self.config.channel.agent_id
        return {
            "touser": "|".join(row["recipient"] for row in rows),
            "msgtype": "text",
            "agentid": int(agent) if agent.isdigit() else agent,
            "text": {"content": chunk},
            "safe": 0,
            # a retry of a send WeCom did receive (lost answer) is not shown twice
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        }


def _sends_left(db: sqlite_utils.Database, now: dt.datetime) -> dict[str, int]:
    """Messages each member may still get in the minute before `now` (passive replies are free)."""
    since = (now - dt.timedelta(minutes=1)).isoformat(timespec="seconds")
    used: Counter[str] = Counter()
    for row in fetch_all(
        db, "SELECT recipient, text FROM outbox WHERE status = 'sent' AND sent_at > ?", [since]
    ):
        used[row["recipient"]] += len(split_text(row["text"]))
    return {recipient: PER_MEMBER_PER_MINUTE - count for recipient, count in used.items()}


def _batches(rows: list[dict]) -> list[list[dict]]:
    """At most BATCH rows a call, each recipient once a call."""
    batches: list[list[dict]] = []
    seen: list[set[str]] = []
    for row in rows:
        for batch, names in zip(batches, seen, strict=True):
            if len(batch) < BATCH and row["recipient"] not in names:
                batch.append(row)
                names.add(row["recipient"])
                break
        else:
            batches.append([row])
            seen.append({row["recipient"]})
    return batches


def _off_the_mark(now: dt.datetime, text: str) -> dt.datetime:
    """1–5 minutes after the congested :00/:30 mark, the same for one text (so it stays batched)."""
    offset = 60 + zlib.crc32(text.encode()) % 240
    return now.replace(second=0) + dt.timedelta(seconds=offset)
