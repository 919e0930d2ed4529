"""The `work` channel: WeCom app messages (message/send): text, split and batched, a textcard
where a digest or an alert has its page, or a template_card with the buttons 收到 / 已处置 for an
alert that carries its number; WeCom's rate limits kept."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import sqlite_utils

from bot.channels.api import ApiClient, ApiResult
from bot.channels.cards import button_card, card_for, task_id_for, textcard
from bot.channels.outcomes import record, record_result
from bot.channels.split import split_text
from bot.config import Config
from storage.db import fetch_all
from storage.outbox import card_of

BATCH = 1000  # recipients per message/send call (touser joined with |)
PER_MEMBER_PER_MINUTE = 30  # WeCom drops the excess silently, so it is never sent
PER_MEMBER_PER_HOUR = 1000  # the same; what exceeds waits in the outbox (queued)
MINUTE, HOUR = dt.timedelta(minutes=1), dt.timedelta(hours=1)
DUPLICATE_CHECK_SECONDS = 1800  # WeCom allows up to 4 hours
SPREAD_FROM = 20  # a delivery round this large due on a :00/:30 minute is moved off the mark
UNDELIVERABLE = frozenset({81013})  # every UserID invalid or outside the app's visible range


# kinds that go as a textcard (title, a short description, the link, 详情) when their page
# is known; everything else, and these without a page, go as text
CARD_KINDS = frozenset(
    {"digest", "missed_alert", "abnormal_alert", "unreachable_alert", "absent_alert", "escalation"}
)


def as_card(row: dict) -> bool:
    """Whether the row goes as a textcard: a card kind whose card names its page."""
    card = card_of(row)
    if row["kind"] not in CARD_KINDS or not isinstance(card.get("day"), str):
        return False
    if card.get("page") == "view":
        return isinstance(card.get("unit"), str)
    return card.get("page") == "member" and bool(row.get("person_id"))


# kinds whose card may carry an alert's number (`"alert": N`): they go as a template_card
# with buttons, one per row (its own task_id), the page link when it has one
BUTTON_KINDS = frozenset({"abnormal_alert", "unreachable_alert", "absent_alert", "escalation"})


def alert_of(row: dict) -> int | None:
    """The alert number the row's buttons acknowledge, if it goes as a template_card."""
    number = card_of(row).get("alert")
    if row["kind"] not in BUTTON_KINDS or isinstance(number, bool) or not isinstance(number, int):
        return None
    return number if number > 0 else None


def form_of(row: dict) -> str:
    """The message type the row goes as: template_card, textcard or text."""
    if alert_of(row) is not None:
        return "template_card"
    return "textcard" if as_card(row) else "text"


def parts_of(row: dict) -> int:
    """How many WeCom messages the row is (what the rate limits count)."""
    return 1 if form_of(row) != "text" else len(split_text(row["text"]))


@dataclass(frozen=True)
class Form:
    """What a group of rows goes as: a message type and the content of each call (one per
    part). A new message type is a new branch in `WorkChannel.form`."""

    msgtype: str
    parts: list[dict]


class WorkChannel:
    name = "work"

    # a bulk round due on a :00/:30 mark moves 1–5 minutes later; the scheduler's
    # once-a-minute delivery sends it then
    def __init__(self, config: Config, api: ApiClient | None = None, spread: bool = True) -> None:
        self.config = config
        self.api = api or ApiClient(config.channel)
        self.spread = spread

    def form(self, db: sqlite_utils.Database, row: dict, now: dt.datetime) -> Form:
        """How the row goes: a template_card with buttons for a numbered alert, a textcard
        where its page is known, else text in parts."""
        number = alert_of(row)
        if number is not None:
            card = card_for(db, self.config, row, now)
            return Form("template_card", [button_card(card, number, task_id_for(row, number))])
        if as_card(row):
            return Form("textcard", [textcard(card_for(db, self.config, row, now))])
        return Form("text", [{"content": chunk} for chunk in split_text(row["text"])])

    def deliver(self, db: sqlite_utils.Database, rows: list[dict], now: dt.datetime) -> None:
        allowance = Allowance.load(db, now)
        groups: dict[tuple[str, str, bool, int], list[dict]] = {}
        for row in rows:
            if not row["recipient"]:
                record(db, [row], now, status="undeliverable", note="no WeCom UserID")
            else:
                # one call carries one content: rows of the same text and form go together;
                # only scheduled sends ask WeCom to drop a repeat (enable_duplicate_check);
                # a template_card goes alone (its task_id is the row's)
                form = form_of(row)
                alone = row["id"] if form == "template_card" else 0
                key = (form, row["text"], bool(row.get("send_key")), alone)
                groups.setdefault(key, []).append(row)
        for (_form, text, scheduled, _alone), group in groups.items():
            if self.spread and len(rows) >= SPREAD_FROM and now.minute % 30 == 0:
                later = _off_the_mark(now, text)
                record(db, group, now, status="queued", next_attempt_at=later)
                continue
            # a card's link names one row; the rows of a group share its text
            form = self.form(db, group[0], now)
            need = len(form.parts)
            if need > PER_MEMBER_PER_MINUTE:  # could never fit a minute's allowance
                note = (
                    f"too long: {need} parts, more than WeCom's"
                    f" {PER_MEMBER_PER_MINUTE} messages a minute to one person"
                )
                record(db, group, now, status="failed", note=note)
                continue
            ready: list[dict] = []
            held: dict[dt.datetime, list[dict]] = {}
            for row in group:
                wait = allowance.take(row["recipient"], need)
                if wait is None:
                    ready.append(row)
                else:
                    held.setdefault(wait, []).append(row)
            for later, waiting in held.items():
                record(db, waiting, now, status="queued", next_attempt_at=later)
            for batch in _batches(ready):
                self._send(db, batch, form, scheduled, now)

    def _send(
        self,
        db: sqlite_utils.Database,
        rows: list[dict],
        form: Form,
        scheduled: bool,
        now: dt.datetime,
    ) -> None:
        attempts, failures, invalid = 0, [], set()
        result = ApiResult(0, "ok")
        for part in form.parts:
            payload = self._payload(rows, form.msgtype, part, scheduled)
            result = self.api.post(db, "/cgi-bin/message/send", payload)
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

    def _payload(self, rows: list[dict], msgtype: str, part: dict, scheduled: bool) -> dict:
        agent = self.config.channel.agent_id
        payload = {
            "touser": "|".join(row["recipient"] for row in rows),
            "msgtype": msgtype,
            "agentid": int(agent) if agent.isdigit() else agent,
            msgtype: part,
            "safe": 0,
        }
        if scheduled:
            # a scheduled send tried again (a lost answer, a second process) is not shown
            # twice; an answer to someone's message is never held back as a repeat
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = DUPLICATE_CHECK_SECONDS
        return payload


class Allowance:
    """What each member may still get: WeCom's 30 a minute and 1,000 an hour, counted from
    the messages sent (passive replies are free) and those this round hands out."""

    def __init__(self, now: dt.datetime, sent: dict[str, list[dt.datetime]]) -> None:
        self.now = now
        self.sent = sent  # recipient → the time of each message part sent in the last hour

    @classmethod
    def load(cls, db: sqlite_utils.Database, now: dt.datetime) -> Allowance:
        since = (now - HOUR).isoformat(timespec="seconds")
        sent: dict[str, list[dt.datetime]] = {}
        for row in fetch_all(
            db,
            "SELECT recipient, kind, text, card, person_id, sent_at FROM outbox"
            " WHERE status = 'sent' AND julianday(sent_at) > julianday(?)",
            [since],
        ):
            at = dt.datetime.fromisoformat(row["sent_at"])
            sent.setdefault(row["recipient"], []).extend([at] * parts_of(row))
        return cls(now, sent)

    def take(self, recipient: str, need: int) -> dt.datetime | None:
        """Count `need` messages to `recipient` now (None), or say when they may go."""
        times = sorted(self.sent.get(recipient, []))
        minute = [t for t in times if t > self.now - MINUTE]
        waits = []
        if len(minute) + need > PER_MEMBER_PER_MINUTE:
            waits.append(self.now.replace(second=0, microsecond=0) + MINUTE)
        if len(times) + need > PER_MEMBER_PER_HOUR:
            # room once enough of the hour's oldest messages are an hour old
            oldest = times[len(times) + need - PER_MEMBER_PER_HOUR - 1]
            waits.append(max(oldest + HOUR + dt.timedelta(seconds=1), self.now + MINUTE))
        if waits:
            return max(waits)
        self.sent.setdefault(recipient, []).extend([self.now] * need)
        return None


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
