"""The schedule as data, and running whatever is due (the live scheduler and `tick` share it).

A job is done once per (name, due), recorded in `job_runs`. Jobs missed less than the grace
time ago are caught up; older ones are recorded as skipped, except `release`, which always
runs (missed on several days, it runs once, for all of them). After its releases it erases
the personal data past `retention_days` (storage/purge.py), in short transactions of its own.

A job reads; what it sends is written as it goes (every FLUSH_AT messages, and at its end)
in short transactions of `WRITE_BATCH` messages, each message with its idempotency key,
then the job's record. Each transaction lets the replies waiting for the write lock go
first (storage.db.transaction's `yields`), so a province's fan-out never keeps a callback
waiting for more than one batch, and a crash part-way leaves the messages written so far:
the next run sends the rest and nothing twice. `release` changes subjects and runs in one
transaction (a day's releases are few).

A record made by a clock ahead of `now` (`tick --at` a later day, a system clock that
jumped forward and back) does not count, nor does a send key claimed by it: the job runs
again at its real time and its messages go out then, so the real day is never silenced
(what the clock ahead sent early goes out again on time; keys claimed in time stay
claimed).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import sqlite_utils

from bot.channels import channel_for, deliver_pending
from bot.config import SLOTS, Config
from bot.links import member_link
from schedules import jobs, review
from storage.db import checkpoint_after, insert_rows, transaction
from storage.digests import keep_digest
from storage.outbox import claim_keys, claimed, outbox_row
from storage.purge import purge

log = logging.getLogger("gridwatch.schedule")

Job = Callable[[sqlite_utils.Database, Config, jobs.Send, dt.datetime], int]
# rows claimed, then recorded, per transaction: ~10 ms of the write lock each
DELIVERY_BATCH = 1000
MAX_BATCHES = 200
WRITE_BATCH = 250  # messages per transaction: ~5 ms of the write lock
# after each batch the job pauses this long, so callbacks waiting for the write lock take it:
# a writer that takes the lock again at once mostly wins it back (flock wakes the waiters,
# who must first be scheduled), and a province's fan-out of 200 batches then kept a callback
# waiting ~3.5 s (bench.province). 200 × 2 ms adds 0.4 s to it.
YIELD_SECONDS = 0.002
# A batch's ids are chosen before its transaction, this far past the last row, so that the
# rows others insert meanwhile (a reply a second, …) do not take them; when they have, the
# batch is made again inside. The ids in the gap are never used (ids only order the rows).
ID_SLACK = 256
FLUSH_AT = 5000  # messages a job keeps before it writes them (Collected)
DIGESTS_AT = 1000  # digests a job keeps before it writes them


class DueJob(NamedTuple):
    name: str
    due: dt.datetime
    run: Job


@dataclass(frozen=True)
class JobRun:
    job: str
    due: dt.datetime
    outcome: str  # ran | skipped | failed
    detail: str = ""


def day_jobs(config: Config, day: dt.date) -> list[DueJob]:
    """One day's jobs in time order; at equal times: release, slot jobs, then digests."""
    planned: list[tuple[str, dt.time, Job]] = [("release", config.release, jobs.release)]
    for slot in SLOTS:
        times = config.slots[slot]
        planned += [
            (f"prompt:{slot}", times.prompt, functools.partial(jobs.prompt, slot=slot)),
            (f"reminder:{slot}", times.reminder, functools.partial(jobs.reminder, slot=slot)),
            (f"deadline:{slot}", times.deadline, functools.partial(jobs.deadline, slot=slot)),
        ]
    for number, at in enumerate(config.reports, start=1):
        planned.append((f"digest:{number}", at, functools.partial(jobs.digest, report=number)))
    # 督查 (DESIGN §11): the day's new flags to monitors; the weekly pack on its weekday
    planned.append(("flags", config.supervision.flags_at, review.daily_flags))
    if day.isoweekday() == config.supervision.review_weekday:
        planned.append(("review", config.supervision.review_at, review.weekly_review))
    due = [
        DueJob(name, dt.datetime.combine(day, at, tzinfo=config.tz), run)
        for name, at, run in planned
    ]
    return sorted(due, key=lambda job: job.due)  # stable: ties keep the order above


def due_jobs(config: Config, start: dt.datetime, end: dt.datetime) -> list[DueJob]:
    """Every job due in [start, end], in order."""
    start, end = start.astimezone(config.tz), end.astimezone(config.tz)
    found: list[DueJob] = []
    day = start.date()
    while day <= end.date():
        found += [job for job in day_jobs(config, day) if start <= job.due <= end]
        day += dt.timedelta(days=1)
    return found


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _history(
    db: sqlite_utils.Database, now: dt.datetime
) -> tuple[set[tuple[str, str]], dt.datetime | None, dt.datetime | None]:
    """The (job, due) pairs done as of `now` (records made by a clock ahead of it do not
    count), and the earliest and latest due among them."""
    stamp = _stamp(now)
    done = {
        (job, due)
        for job, due, ran_at in db.conn.execute("SELECT job, due, ran_at FROM job_runs")
        if not _ahead(ran_at, stamp)
    }
    dues = [dt.datetime.fromisoformat(due) for _, due in done]
    return done, min(dues, default=None), max(dues, default=None)


def _ahead(ran_at: str, now_stamp: str) -> bool:
    return dt.datetime.fromisoformat(ran_at) > dt.datetime.fromisoformat(now_stamp)


class Outgoing(NamedTuple):
    person: dict
    kind: str
    text: str
    key: str
    card: dict | None = None


class Collected:
    """A job's `send`: what it sends is kept, to be written in short batches as it goes and
    by `write` at its end."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        now: dt.datetime,
        config: Config | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """`at`, the time messages are recorded at (the job's due time): given, what the job
        sent is written while it runs, each time it holds FLUSH_AT messages or
        DIGESTS_AT digests, so a province's fan-out does not hold its 100,000 messages, nor
        the digest job its 10,500 units, at once. What is written stays written if the job
        then fails, as when it dies part-way: the next run sends the rest. Messages are
        written before the digests they carry, so no digest is kept as sent that was not."""
        self.db, self.now, self.config, self.at = db, now, config, at
        self.messages: list[Outgoing] = []
        self.keys: set[str] = set()
        self.digests: list[tuple[str, dt.date, int, dict]] = []
        self.queued = 0  # written while the job ran

    def keep(self, unit: str, day: dt.date, report: int, digest: dict) -> None:
        """A digest as sent, kept with the messages (the first one kept stays)."""
        if self.at is not None and len(self.digests) >= DIGESTS_AT:
            self._flush(self.db, self.at, self.now)  # the earlier units' messages are all in
        self.digests.append((unit, day, report, digest))

    def __call__(
        self, person: dict, kind: str, text: str, key: str, card: dict | None = None
    ) -> bool:
        if key in self.keys or claimed(self.db, key, self.now):
            return False
        self.keys.add(key)
        self.messages.append(Outgoing(person, kind, text, key, card))
        if self.at is not None and len(self.messages) >= FLUSH_AT:
            # the last digest kept waits: its unit may have recipients still to come
            self._flush(self.db, self.at, self.now, digests_done=len(self.digests) - 1)
        return True

    def write(self, db: sqlite_utils.Database, at: dt.datetime, now: dt.datetime) -> int:
        """Queue every message not sent before, WRITE_BATCH per transaction; how many.

        Each batch's rows are made before its transaction (texts, cards, signed links), so
        the write lock is held only to insert them, and each transaction lets the replies
        waiting for the lock go first (`transaction`'s `yields`)."""
        self._flush(db, at, now)
        return self.queued

    def _flush(
        self,
        db: sqlite_utils.Database,
        at: dt.datetime,
        now: dt.datetime,
        digests_done: int | None = None,
    ) -> None:
        """Write the messages, then the first `digests_done` digests kept (all: None)."""
        done = len(self.digests) if digests_done is None else max(0, digests_done)
        with checkpoint_after(db):
            self.queued += self._write_messages(db, at, now)
            for start in range(0, done, WRITE_BATCH):
                with transaction(db, yields=True):
                    for unit, day, report, digest in self.digests[
                        start : min(done, start + WRITE_BATCH)
                    ]:
                        keep_digest(db, unit, day, report, digest, now)
        self.digests = self.digests[done:]

    def _write_messages(self, db: sqlite_utils.Database, at: dt.datetime, now: dt.datetime) -> int:
        queued = 0
        for start in range(0, len(self.messages), WRITE_BATCH):
            batch = self.messages[start : start + WRITE_BATCH]
            first_id = _free_ids(db) + ID_SLACK if any(map(self._links_page, batch)) else 0
            rows = self._rows(db, batch, at, first_id)
            with transaction(db, yields=True):
                if first_id and _free_ids(db) > first_id:  # the slack was used up meanwhile
                    first_id = _free_ids(db)
                    rows = self._rows(db, batch, at, first_id)
                fresh = claim_keys(db, [message.key for message in batch], now)
                kept = []
                for message, row in zip(batch, rows, strict=True):
                    if message.key in fresh:
                        fresh.discard(message.key)  # a key twice in a batch: its first message
                        kept.append(row)
                insert_rows(db, "outbox", kept)
                queued += len(kept)
            if len(self.messages) > WRITE_BATCH:
                time.sleep(YIELD_SECONDS)
        self.messages = []
        return queued

    def _rows(
        self, db: sqlite_utils.Database, batch: list[Outgoing], at: dt.datetime, first_id: int
    ) -> list[dict]:
        """The outbox rows of `batch`; with `first_id`, each row has its id (first_id, the
        next, …) and a message to a member ends with the link to their page naming it."""
        rows = []
        for offset, message in enumerate(batch):
            text, row_id = message.text, first_id + offset if first_id else 0
            if row_id and self._links_page(message):
                text += f"\n逐人填报：{self._member_link(db, message, at, row_id)}"
            row = outbox_row(
                at=at,
                person=message.person,
                kind=message.kind,
                text=text,
                send_key=message.key,
                card=message.card,
            )
            rows.append(({"id": row_id} if row_id else {}) | row)
        return rows

    def _links_page(self, message: Outgoing) -> bool:
        """A message to a member ends with the link to their page of the day, naming this
        message (DESIGN §8), when the deployment has a public address."""
        card = message.card or {}
        return bool(self.config and self.config.public_url_set and card.get("page") == "member")

    def _member_link(
        self, db: sqlite_utils.Database, message: Outgoing, at: dt.datetime, outbox_id: int
    ) -> str:
        """The link, signed before the row is written with the id it will get, so the row
        is written once, not inserted then updated (100,000 UPDATEs in a province's
        prompt)."""
        assert self.config is not None and message.card is not None
        day = dt.date.fromisoformat(message.card["day"])
        return member_link(db, self.config, message.person["id"], day, at, outbox_id)


def _free_ids(db: sqlite_utils.Database) -> int:
    """The outbox id SQLite gives the next row it inserts without one (MAX(id) + 1)."""
    return db.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox").fetchone()[0]


def _record(db: sqlite_utils.Database, run: JobRun, now: dt.datetime) -> None:
    db.conn.execute(
        "INSERT INTO job_runs (job, due, ran_at, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        [run.job, _stamp(run.due), _stamp(now), run.outcome, run.detail],
    )


def _recorded(conn: sqlite3.Connection, job: DueJob, now: dt.datetime) -> bool:
    """Whether the job is done as of `now`; a record made ahead of `now` is dropped."""
    row = conn.execute(
        "SELECT ran_at FROM job_runs WHERE job = ? AND due = ?", [job.name, _stamp(job.due)]
    ).fetchone()
    if row is None:
        return False
    if _ahead(row[0], _stamp(now)):
        conn.execute("DELETE FROM job_runs WHERE job = ? AND due = ?", [job.name, _stamp(job.due)])
        log.warning(
            "%s due %s was recorded at %s, ahead of the clock (%s): it runs again",
            job.name,
            _stamp(job.due),
            row[0],
            _stamp(now),
        )
        return False
    return True


def _record_once(db: sqlite_utils.Database, job: DueJob, run: JobRun, now: dt.datetime) -> bool:
    """Record the run unless another process did the job first (then False)."""
    with transaction(db) as conn:
        if _recorded(conn, job, now):
            return False
        _record(db, run, now)
    return True


def _covered(
    db: sqlite_utils.Database, job: DueJob, last: dt.datetime | None, now: dt.datetime
) -> JobRun | None:
    """A release missed on an earlier day: the latest one due releases every period ended
    before it, with its own date, and tells each person once (not once per past day)."""
    detail = f"covered by the release due {_stamp(last) if last else '?'}"
    run = JobRun(job.name, job.due, "skipped", detail)
    return run if _record_once(db, job, run, now) else None


def run_job(
    db: sqlite_utils.Database,
    config: Config,
    job: DueJob,
    now: dt.datetime,
    clock: dt.datetime | None = None,
) -> JobRun | None:
    """Run or skip one due job; None when another process did it first."""
    grace = dt.timedelta(minutes=config.grace_minutes)
    late = now - job.due
    if job.name != "release" and late >= grace:
        minutes = int(late.total_seconds() // 60)
        run = JobRun(
            job.name,
            job.due,
            "skipped",
            f"{minutes} min late, beyond the {config.grace_minutes} min grace",
        )
        if not _record_once(db, job, run, now):
            return None
        log.warning("skipped %s due %s: %s", job.name, _stamp(job.due), run.detail)
        return run
    # messages are recorded at the time of the table (DESIGN §2), also when it runs late
    if job.name == "release":  # it changes subjects: all in one (short) transaction
        with transaction(db) as conn:
            if _recorded(conn, job, now):
                return None
            sent = Collected(db, now, config)
            job.run(db, config, sent, job.due)
            detail = f"{sent.write(db, job.due, now)} queued"
            _record(db, JobRun(job.name, job.due, "ran", detail), now)
        purged = 0
        if clock is None or job.due <= clock:  # never erase ahead of the real clock
            purged = purge(db, job.due.date(), config.retention_days).subjects
        if purged:
            detail += f", personal data of {purged} subjects erased"
        run = JobRun(job.name, job.due, "ran", detail)
    else:
        sent = Collected(db, now, config, at=job.due)
        job.run(db, config, sent, job.due)  # reads, and writes what it sends as it goes
        count = sent.write(db, job.due, now)
        run = JobRun(job.name, job.due, "ran", f"{count} queued")
        if not _record_once(db, job, run, now):
            return None
    log.info("ran %s due %s: %s", job.name, _stamp(job.due), run.detail)
    return run


def run_due(
    db: sqlite_utils.Database,
    config: Config,
    now: dt.datetime,
    clock: dt.datetime | None = None,
) -> list[JobRun]:
    """Run every job due up to `now` that has not run, then deliver what they queued.

    On a database that never ran a job, only jobs of `now`'s day are considered. `clock`,
    the real time when `now` is a rehearsal's (`tick --at`), keeps what cannot be undone
    (erasing personal data) from running ahead of it.
    """
    now = now.astimezone(config.tz)
    done, earliest, latest = _history(db, now)
    if latest is None or earliest is None:
        start = dt.datetime.combine(now.date(), dt.time(0), tzinfo=config.tz)
    else:
        # a day back from the last job that ran: one that failed before it is retried (or
        # skipped as too late), but nothing before the first day this database ran. Jobs
        # recorded ahead of `now` (`tick --at` a later time, a rehearsal) do not hide the
        # jobs of today and since: their first day and last job count as `now`'s at most.
        first_day = dt.datetime.combine(
            min(earliest.astimezone(config.tz).date(), now.date()), dt.time(0), tzinfo=config.tz
        )
        start = max(first_day, min(latest, now) - dt.timedelta(days=1))
    runs: list[JobRun] = []
    due = [job for job in due_jobs(config, start, now) if (job.name, _stamp(job.due)) not in done]
    last_release = max((job.due for job in due if job.name == "release"), default=None)
    for job in due:
        try:
            if job.name == "release" and job.due != last_release:
                run = _covered(db, job, last_release, now)
            else:
                run = run_job(db, config, job, now, clock)
        except Exception as error:  # a failed job is not recorded, so the next tick retries it
            log.exception("job %s due %s failed", job.name, _stamp(job.due))
            run = JobRun(job.name, job.due, "failed", f"{type(error).__name__}: {error}")
        if run is not None:
            runs.append(run)
    runs += _escalate(db, config, now, clock)
    deliver_all(db, config, now)
    return runs


def _escalate(
    db: sqlite_utils.Database, config: Config, now: dt.datetime, clock: dt.datetime | None
) -> list[JobRun]:
    """Escalation runs at every firing (schedules/escalation.py), not once per due time:
    it is reported (and recorded nowhere) only when it sent something. Moving problems up
    changes them: never ahead of the real clock (a rehearsal's `tick --at` only tells)."""
    from schedules.escalation import escalate_alerts, escalate_problems

    runs = []
    try:
        sent = Collected(db, now)
        escalate_alerts(db, config, sent, now)
        count = sent.write(db, now, now)
        moved = escalate_problems(db, config, now) if clock is None or now <= clock else 0
    except Exception as error:  # the next firing tries again; the day's jobs are unaffected
        log.exception("escalation at %s failed", _stamp(now))
        return [JobRun("escalate", now, "failed", f"{type(error).__name__}: {error}")]
    if count or moved:
        detail = f"{count} alert escalations queued, {moved} problems moved up"
        runs.append(JobRun("escalate", now, "ran", detail))
        log.info("escalate at %s: %s", _stamp(now), detail)
    return runs


def deliver_all(db: sqlite_utils.Database, config: Config, now: dt.datetime) -> int:
    """Hand every queued message whose time has come to the configured channel."""
    channel = channel_for(config)
    total = 0
    # bounded: a channel that leaves rows queued and due must not spin this forever
    with checkpoint_after(db):
        for _ in range(MAX_BATCHES):
            count = deliver_pending(db, channel, now, limit=DELIVERY_BATCH, yields=True)
            total += count
            if count < DELIVERY_BATCH:
                break
            time.sleep(YIELD_SECONDS)  # the next batch's claim waits behind waiting callbacks
    return total


LIVE_KEY = "live_since"
FIRED_KEY = "schedule_fired_at"


def record_firing(db: sqlite_utils.Database, now: dt.datetime) -> None:
    """The live scheduler fired at `now`: it runs this database's jobs by the real clock
    (since its first firing), and /healthz tells how recently it fired."""
    with transaction(db):
        db.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", [LIVE_KEY, _stamp(now)]
        )
        db.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [FIRED_KEY, _stamp(now)]
        )


def live_since(db: sqlite_utils.Database) -> str | None:
    return _setting(db, LIVE_KEY)


def last_firing(db: sqlite_utils.Database) -> dt.datetime | None:
    value = _setting(db, FIRED_KEY)
    return dt.datetime.fromisoformat(value) if value else None


def _setting(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else None
