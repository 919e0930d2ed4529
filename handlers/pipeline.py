"""The message pipeline every channel uses: store raw → identify → command or report → reply."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.context import Context
from handlers.acks import ACK_ROLES, bare_received, received_without_number, waiting_alerts
from handlers.commands import Turn, UserError, find_command
from handlers.parser import is_acknowledgement
from handlers.reports import apply_reports, plan_report
from storage.db import transaction, update_row
from storage.inbox import DuplicateMessage, finish_inbound, inbound, store_inbound
from storage.invites import BindError, redeem_invite
from storage.outbox import queue_message
from storage.people import roles_of
from storage.roster_cache import cached_person, one_roster_version

log = logging.getLogger(__name__)

MAX_TEXT = 2000
UNBOUND_REPLY = "您还未绑定身份，请向管理员索取绑定码后发送“绑定 123456”（6位数字）完成绑定。"
# 收到 / 好的 / 👌 are not reports nor questions: one short line back (DESIGN §3)
ACK_REPLY = "好的，辛苦了！"
# 收到 12 / 已处置 3号: an alert's acknowledgement (a whole number that cannot be a reading)
_ACK_NUMBER = re.compile(r"^\s*(?:收到|已处置|处置|已处理)\s*第?\s*[#＃]?\s*(\d{1,6})\s*号?\s*$")


def _alert_number_said(text: str) -> bool:
    """收到 12 said by someone who cannot acknowledge; 收到 36 / 收到 365 may be a reading of
    a member's one subject (a dot left out) and go to the report parser."""
    match = _ACK_NUMBER.match(unicodedata.normalize("NFKC", text))
    if match is None:
        return False
    number = int(match[1])
    return not (34 <= number <= 42 or 340 <= number <= 425)


ERROR_REPLY = "系统暂时出错，您的消息已保存，我们会尽快处理；如有急事请直接电话联系村书记。"
_BIND = re.compile(r"^\s*绑定\s*[:：]?\s*(\d{6})\s*$")
# a click on a WeCom card's button (bot/wechat/message_xml.py): its text is the EventKey. WeCom
# takes no passive text reply to it, so its reply goes through the API (queued)
CARD_EVENT = "template_card_event"


@dataclass(frozen=True)
class Incoming:
    """One inbound message as every channel hands it over."""

    channel: str
    sender: str
    text: str
    at: dt.datetime  # when it was sent (WeChat CreateTime, or --at), in the configured zone
    received_at: dt.datetime
    type: str = "text"
    raw: str = ""
    dedup_key: str | None = None


@dataclass(frozen=True)
class Handled:
    reply: str
    inbox_id: int
    outcome: str
    duplicate: bool = False
    alerts: bool = False  # it queued alerts, to be delivered at once


Answer = tuple[str, str, dict | None]  # outcome, reply, the sender when bound
Step = Callable[[int], Answer]  # the writing part of handling, given the inbox row's id


ReplyStatus = str | Callable[[], str]  # the reply's outbox status, or how to decide it then


def handle_message(
    ctx: Context,
    message: Incoming,
    *,
    reply_status: ReplyStatus = "sent",
    lock_patience: Sequence[float] | None = None,
) -> Handled:
    """Handle one message end to end, in one short transaction.

    What the message means is worked out first, with reads only. Then the raw message is
    inserted and its handling written inside a savepoint, so that a failure in handling
    rolls back only the handling: the raw message stays, with its error. Nothing is
    acknowledged before the commit, so a crash before it leaves WeChat retrying.

    A message seen before (WeChat's retries share a MsgId) is found by the insert itself,
    which the unique key refuses: retries are rare, and a read ahead of every message to
    catch them cost more than handling them this way.

    With `lock_patience` (see storage.db.transaction) LockBusy comes out when the write lock
    stays taken, and nothing is stored: the caller hands the message to someone who can wait.
    """
    act = _prepare(ctx, message)
    try:
        with transaction(ctx.db, patience=lock_patience):
            inbox_id = _store(ctx, message)
            outcome, reply, person, error_text = _run(ctx, act, inbox_id, message)
            _finish(ctx, message, inbox_id, (outcome, reply, person), error_text, reply_status)
    except DuplicateMessage as seen:  # WeChat retries: same answer, nothing recorded again
        return retried(ctx, seen.existing, reply_status, lock_patience)
    except sqlite3.Error as error:
        return _keep_raw(ctx, message, error, reply_status, lock_patience)
    return Handled(reply, inbox_id, outcome, alerts=outcome != "error" and ctx.alerts_queued > 0)


def prepare(ctx: Context, message: Incoming) -> Step:
    """What the message means, from reads only: the step `write_prepared` runs (outside any
    transaction; the step reads `ctx.db` when it runs, so it may run on another connection)."""
    return _prepare(ctx, message)


def write_prepared(
    ctx: Context, message: Incoming, act: Step, reply_status: ReplyStatus = "sent"
) -> Handled:
    """Store the raw message and run its prepared step inside the caller's transaction, in a
    savepoint of its own (group commit: several messages, one commit). DuplicateMessage, or
    an error of SQLite's, comes out with nothing of this message left written."""
    conn = ctx.db.conn
    conn.execute("SAVEPOINT message")
    try:
        inbox_id = _store(ctx, message)
        outcome, reply, person, error_text = _run(ctx, act, inbox_id, message)
        _finish(ctx, message, inbox_id, (outcome, reply, person), error_text, reply_status)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO message")
            conn.execute("RELEASE message")
        raise
    conn.execute("RELEASE message")
    return Handled(reply, inbox_id, outcome, alerts=outcome != "error" and ctx.alerts_queued > 0)


def retried(
    ctx: Context,
    existing: dict,
    reply_status: ReplyStatus = "sent",
    lock_patience: Sequence[float] | None = None,
) -> Handled:
    """A message WeChat sent again: the answer it had. One stored whose handling never
    finished (its process died between the two) is handled now, once."""
    if existing["outcome"] == "received":
        done = handle_stored(
            ctx, existing["id"], reply_status=reply_status, lock_patience=lock_patience
        )
        if done is not None:
            return done
        existing = inbound(ctx.db, existing["id"]) or existing
    return Handled(existing["reply"] or "", existing["id"], "duplicate", duplicate=True)


def rehandle(ctx: Context, inbox_id: int) -> Handled | None:
    """Handle again a stored message whose handling failed (outcome 'error'), once what
    failed is mended; None when there is no such message.

    The member was told the message was kept and would be dealt with: the new answer goes
    to them through the outbox ('queued', sent by the channel). A message that fails again
    keeps its error, with nothing more sent (the member was told once).
    """

    def settle(row: dict, message: Incoming, done: tuple) -> Handled:
        outcome, reply, person, error_text = done
        if outcome == "error":
            update_row(ctx.db, "inbox", inbox_id, {"error": error_text})
            return Handled(row["reply"] or "", inbox_id, "error")
        _finish(ctx, message, inbox_id, (outcome, reply, person), None, "queued")
        return Handled(reply, inbox_id, outcome, alerts=ctx.alerts_queued > 0)

    return _handle_kept(ctx, inbox_id, "error", settle)


def store_raw(
    ctx: Context, message: Incoming, before_commit: Callable[[], None] | None = None
) -> int:
    """Store the raw message in a transaction of its own (outcome 'received'): the first half
    of handling for a caller that must not wait for the whole of it. `before_commit` runs
    with the row written, just before the commit, and may still refuse it by raising.
    DuplicateMessage when it was stored before."""
    with transaction(ctx.db):
        inbox_id = _store(ctx, message)
        if before_commit is not None:
            before_commit()
    return inbox_id


def handle_stored(
    ctx: Context,
    inbox_id: int,
    *,
    reply_status: ReplyStatus = "queued",
    lock_patience: Sequence[float] | None = None,
) -> Handled | None:
    """Handle a message stored by `store_raw` (outcome 'received'): the second half of a
    hand-off, or its recovery when the process died in between; None when it is not
    waiting (handled meanwhile by someone else)."""

    def settle(row: dict, message: Incoming, done: tuple) -> Handled:
        outcome, reply, person, error_text = done
        _finish(ctx, message, inbox_id, (outcome, reply, person), error_text, reply_status)
        return Handled(
            reply, inbox_id, outcome, alerts=outcome != "error" and ctx.alerts_queued > 0
        )

    return _handle_kept(ctx, inbox_id, "received", settle, lock_patience)


def _handle_kept(
    ctx: Context,
    inbox_id: int,
    waiting: str,
    settle: Callable[[dict, Incoming, tuple], Handled],
    lock_patience: Sequence[float] | None = None,
) -> Handled | None:
    """Handle a stored message whose outcome is `waiting` ('error' to handle again,
    'received' for the second half of a hand-off); None when it is not (any more)."""
    row = inbound(ctx.db, inbox_id)
    if row is None or row["outcome"] != waiting:
        return None
    message = _stored_message(row)
    act = _prepare(ctx, message)
    with transaction(ctx.db, patience=lock_patience):
        if inbound(ctx.db, inbox_id)["outcome"] != waiting:  # another process did it
            return None
        return settle(row, message, _run(ctx, act, inbox_id, message))


def _stored_message(row: dict) -> Incoming:
    return Incoming(
        channel=row["channel"],
        sender=row["sender"],
        text=row["text"],
        at=dt.datetime.fromisoformat(row["at"]),
        received_at=dt.datetime.fromisoformat(row["received_at"]),
        type=row["type"],
        raw=row["raw"],
        dedup_key=row["dedup_key"],
    )


def _prepare(ctx: Context, message: Incoming) -> Step:
    """What the message means, from reads only: the step that writes it (a failure here is
    recorded with the raw message, by the step)."""
    ctx.alerts_queued = 0
    try:
        with one_roster_version(ctx.db):
            return _decide(ctx, message)
    except Exception as error:
        return _raise(error)


def _finish(
    ctx: Context,
    message: Incoming,
    inbox_id: int,
    answer: Answer,
    error_text: str | None,
    reply_status: ReplyStatus,
) -> None:
    """The message's outcome on its inbox row, and its reply in the outbox."""
    outcome, reply, person = answer
    finish_inbound(
        ctx.db,
        inbox_id,
        outcome=outcome,
        reply=reply,
        person_id=person["id"] if person else None,
        error=error_text,
    )
    if reply:
        _queue_reply(ctx, message, person, reply, reply_status, inbox_id)


def _keep_raw(
    ctx: Context,
    message: Incoming,
    error: sqlite3.Error,
    reply_status: ReplyStatus,
    lock_patience: Sequence[float] | None = None,
) -> Handled:
    """SQLite gave up the whole transaction (a full disk, say): keep at least the raw message
    and its error, in a transaction of its own; if even that fails, the caller hears it."""
    log.error(
        "handling a message from %s failed: %s; keeping the raw message", message.sender, error
    )
    with transaction(ctx.db, patience=lock_patience):
        inbox_id = _store(ctx, message)
        finish_inbound(
            ctx.db,
            inbox_id,
            outcome="error",
            reply=ERROR_REPLY,
            error=f"{type(error).__name__}: {error}"[:1000],
        )
        _queue_reply(ctx, message, None, ERROR_REPLY, reply_status, inbox_id)
    return Handled(ERROR_REPLY, inbox_id, "error")


def _queue_reply(
    ctx: Context,
    message: Incoming,
    person: dict | None,
    reply: str,
    status: ReplyStatus,
    inbox_id: int,
) -> None:
    """The reply goes in the outbox too: every outbound message is there with its status
    (decided as the row is written, when `status` is a callable); a card click's reply
    goes through the API."""
    if message.type == CARD_EVENT:
        status = "queued"
    queue_message(
        ctx.db,
        at=message.at,
        person=person,
        recipient=message.sender,
        kind="reply",
        text=reply,
        status=status() if callable(status) else status,
        inbox_id=inbox_id,
    )


def _store(ctx: Context, message: Incoming) -> int:
    return store_inbound(
        ctx.db,
        at=message.at,
        received_at=message.received_at,
        channel=message.channel,
        sender=message.sender,
        text=message.text,
        raw=message.raw,
        type=message.type,
        dedup_key=message.dedup_key,
    )


def _run(
    ctx: Context, act: Step, inbox_id: int, message: Incoming
) -> tuple[str, str, dict | None, str | None]:
    """Run the writing step in a savepoint; on failure keep the raw message and say so."""
    conn = ctx.db.conn
    conn.execute("SAVEPOINT handling")
    try:
        outcome, reply, person = act(inbox_id)
    except Exception as error:
        if not conn.in_transaction:  # SQLite gave up the whole transaction (a full disk)
            raise
        conn.execute("ROLLBACK TO handling")
        conn.execute("RELEASE handling")
        log.exception(
            "handling inbox %s from %s (%s) failed", inbox_id, message.sender, message.channel
        )
        return "error", ERROR_REPLY, None, f"{type(error).__name__}: {error}"[:1000]
    conn.execute("RELEASE handling")
    return outcome, reply, person, None


def _raise(error: Exception) -> Step:
    def step(inbox_id: int) -> Answer:
        raise error

    return step


def _answer(outcome: str, reply: str, person: dict | None) -> Step:
    return lambda inbox_id: (outcome, reply, person)


def _decide(ctx: Context, message: Incoming) -> Step:
    """Read what is needed and return the step that writes (run inside the transaction)."""
    text = message.text.strip()
    person = cached_person(ctx.db, message.sender)
    if person is None:
        bind = _BIND.match(text)
        if not bind:
            return _answer("unbound", UNBOUND_REPLY, None)
        return lambda inbox_id: _bind(ctx, message, bind[1])
    if message.type == CARD_EVENT:  # 收到 / 已处置 on an alert's card
        from handlers.acks import click

        turn = Turn(ctx=ctx, person=person, roles=roles_of(person), text=text, at=message.at)
        return lambda inbox_id: _run_command(turn, inbox_id, lambda t: click(t, text))
    if message.type == "event":  # subscribe / enter_agent
        from handlers.commands import help_text

        welcome = f"{person['name']}您好，欢迎使用！\n{help_text(roles_of(person))}"
        return _answer("welcome", welcome, person)
    if message.type == "voice" and not text:  # no Recognition: speech recognition is off
        return _answer(
            "problem",
            "没有识别出语音内容（未开启语音识别或没听清），请直接打字，例如：张三 36.5 正常",
            person,
        )
    if message.type not in ("text", "voice"):
        return _answer(
            "ignored", "已收到。目前只能处理文字和语音，请用文字回复，例如：张三 36.5 正常", person
        )
    if not text:
        return _answer("help", "请发送文字，例如：张三 36.5 正常。发送“帮助”查看全部用法。", person)
    if len(text) > MAX_TEXT:
        return _answer(
            "problem",
            f"消息太长（{len(text)}字），请分几条发送，每条写几个人，"
            "例如：张三 36.5 正常，李四 36.8",
            person,
        )
    turn = Turn(ctx=ctx, person=person, roles=roles_of(person), text=text, at=message.at)
    try:
        found = find_command(turn)
        if found is not None:
            command, turn.args = found
            return lambda inbox_id: _run_command(turn, inbox_id, command.run)
        if turn.roles & ACK_ROLES and bare_received(text):
            # "收到" to an alert without its number: the alert, when only one is waiting
            if waiting_alerts(ctx.db, person, message.at):
                return lambda inbox_id: _run_command(turn, inbox_id, received_without_number)
            return _answer("ack", ACK_REPLY, person)
        if is_acknowledgement(text):
            return _answer("ack", ACK_REPLY, person)
        if not turn.roles & ACK_ROLES and _alert_number_said(text):
            # 收到 12 from a member who copied it from someone's alert: one line, not the help
            return _answer(
                "problem",
                "“收到 编号”“已处置 编号”是书记、督查员、医护确认提醒用的。"
                "您的上报请直接写，例如：张三 36.5 正常",
                person,
            )
        if "member" not in turn.roles:
            from handlers.commands import help_text

            return _answer("help", help_text(turn.roles, unknown=text), person)
        plan = plan_report(turn)
    except UserError as error:
        return _answer("problem", str(error), person)
    if isinstance(plan, tuple):
        return _answer(*plan, person)

    def report(inbox_id: int) -> Answer:
        turn.inbox_id = inbox_id
        return (*apply_reports(turn, plan), person)

    return report


def _bind(ctx: Context, message: Incoming, code: str) -> Answer:
    try:
        person = redeem_invite(ctx.db, code, message.sender, message.at)
    except BindError as error:
        return "unbound", str(error), None
    return "bound", f"绑定成功，{person['name']}您好！发送“帮助”查看用法。", person


def _run_command(turn: Turn, inbox_id: int, run: Callable[[Turn], str]) -> Answer:
    turn.inbox_id = inbox_id
    try:
        return "command", run(turn), turn.person
    except UserError as error:
        return "problem", str(error), turn.person
