"""The morning rush, reduced (DESIGN §9–§10; the full size is `make bench`, bench/load.py).

Real gunicorn (2 sync workers) in WeCom mode on 127.0.0.1 and a real SQLite file; a pool
of plain HTTP clients posts encrypted callbacks the way WeChat does: every member's replies
after the 08:00 prompt, interleaved, with WeChat's retries (exact re-posts) mixed in.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from bench.harness import (
    build_county,
    exactly_once,
    gunicorn,
    morning_posts,
    percentile,
    reply_content,
    send_all,
    server_env,
    wait_until_stored,
    with_retries,
)
from storage.db import connect

MEMBERS = 300
PER_MEMBER = 3
CLIENTS = 16
REPLY_LIMIT = 5.0  # WeChat's wait before it retries


def test_morning_rush_is_stored_exactly_once_and_answered_in_time(tmp_path: Path) -> None:
    """300 members × 3 replies + 10 % retries, 16 clients at once, 2 worker processes: every
    answer is a 200 with a decryptable passive reply (or `success`, also for a retry that
    raced its original), a retry never gets a different reply, no answer takes 5 s, every
    distinct MsgId is in the inbox once and handled (no error, none left unfinished), no
    reply is queued twice, every contact belongs to its message's member, every member's
    first subject has its morning contact, and the server never logs a locked database."""
    db_path = tmp_path / "load.db"
    members = build_county(db_path, MEMBERS)
    posts = morning_posts(members, PER_MEMBER)
    sent = with_retries(posts)
    assert len(sent) - len(posts) == len(posts) // 10
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        with gunicorn("bot:create_app()", server_env(db_path), workers=2, log=log) as (url, _):
            started = time.perf_counter()
            answers = send_all(url, sent, CLIENTS)
            elapsed = time.perf_counter() - started
            wait_until_stored(db_path, len({post.msg_id for post in posts}))
    server_log = log_path.read_text()

    assert [a for a in answers if a.status != 200] == []
    replies: dict[int, set[str]] = collections.defaultdict(set)
    for answer in answers:
        replies[answer.msg_id].add(reply_content(answer.body))
    assert all(len(texts - {""}) <= 1 for texts in replies.values())
    assert sum(1 for texts in replies.values() if texts - {""}) > 0.9 * len(posts)
    seconds = [a.seconds for a in answers]
    p50, p99 = percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000
    print(
        f"\nreduced load: {len(answers)} posts in {elapsed:.1f} s ({len(answers) / elapsed:.0f}/s)"
        f", p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(seconds) * 1000:.1f} ms"
    )
    assert max(seconds) < REPLY_LIMIT

    problems = exactly_once(db_path, {post.msg_id for post in posts})
    assert problems == dict.fromkeys(problems, 0)
    db = connect(db_path)
    try:
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM inbox GROUP BY outcome"))
        first_subjects = [names[0] for _, names in members]
        reported = db.execute(
            "SELECT COUNT(DISTINCT s.name) FROM contacts c JOIN subjects s ON s.id = c.subject_id"
            " WHERE c.current = 1 AND c.slot = 'morning' AND c.date = '2026-03-02'"
            f" AND s.name IN ({','.join('?' * len(first_subjects))})",
            first_subjects,
        ).fetchone()[0]
    finally:
        db.close()
    assert outcomes == {"ok": len(posts)}
    assert reported == len(set(first_subjects))
    assert "locked" not in server_log and "Traceback" not in server_log, server_log[-3000:]
