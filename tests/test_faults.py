"""Faults survived (DESIGN §10): the server killed mid-burst, the WeChat API failing, the disk
full, the database read-only. Real gunicorn, real SQLite files, the local fake WeChat API.

A restart mid-day (the missed jobs run on restart) is tests/test_routine_days.py; -1 and
45009 from message/send are tests/test_channel_work.py and tests/test_channel_api.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from bench.harness import (
    ROOT,
    Answer,
    build_county,
    encrypted_post,
    exactly_once,
    free_port,
    gunicorn,
    health,
    morning_posts,
    reply_content,
    send,
    send_all,
    server_env,
    stop,
    wait_until_stored,
    wait_until_up,
)
from bot.config import Config
from bot.context import Context
from handlers.pipeline import ERROR_REPLY, Incoming, handle_message
from storage.db import connect, open_db
from tests.conftest import NOW
from tests.test_wechat_callback import CREATED

SEND = "/cgi-bin/message/send"


def integrity(db_path: Path) -> str:
    db = connect(db_path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# -- kill -9 in the middle of a burst ------------------------------------------------------


def test_kill_9_mid_burst_loses_no_acknowledged_message_and_stores_none_twice(
    tmp_path: Path,
) -> None:
    """gunicorn (2 workers) is killed with SIGKILL, master and workers at once, while 16
    clients are posting; then it restarts on the same file and WeChat's retries arrive
    (every message again, the unacknowledged ones and the acknowledged too). Proves: the
    file passes `PRAGMA integrity_check` right after the kill; every message answered 200
    before the kill is in the inbox already; after the retries every message is stored
    exactly once, without an error outcome, and no reply is queued twice."""
    db_path = tmp_path / "kill.db"
    members = build_county(db_path, 60)
    posts = morning_posts(members, 3)
    answers: list[Answer] = []
    killed = threading.Event()
    with (tmp_path / "first.log").open("w") as log:
        with gunicorn("bot:create_app()", server_env(db_path), log=log) as (url, master):

            def post(index: int) -> Answer:
                answer = send(url, posts[index], timeout=10)
                answers.append(answer)
                if sum(a.status == 200 for a in answers) >= len(posts) // 3 and not killed.is_set():
                    killed.set()
                    os.killpg(master.pid, signal.SIGKILL)
                return answer

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(post, range(len(posts))))
            master.wait()
    acknowledged = {a.msg_id for a in answers if a.status == 200}
    refused = [a for a in answers if a.status != 200]
    assert killed.is_set() and refused, "the kill came after the burst"
    assert all(a.status == 0 for a in refused)  # no answer at all, never a 5xx
    assert integrity(db_path) == "ok"
    assert exactly_once(db_path, acknowledged)["missing"] == 0

    with (tmp_path / "second.log").open("w") as log:
        with gunicorn("bot:create_app()", server_env(db_path), log=log) as (url, _):
            retries = send_all(url, posts)
            wait_until_stored(db_path, len({post.msg_id for post in posts}))
    assert {a.status for a in retries} == {200}
    problems = exactly_once(db_path, {post.msg_id for post in posts})
    # a message and its handling commit together: a kill leaves none half-handled
    print(f"\nkill -9: {len(acknowledged)} acknowledged before the kill")
    assert problems == dict.fromkeys(problems, 0)
    assert integrity(db_path) == "ok"


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@contextmanager
def server_on_tiny_disk(db_path: Path, log_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn in a private mount namespace, its database copied onto a 2 MB tmpfs; yields
    the URL and the tmpfs folder as the test process sees it (through /proc/PID/root)."""
    folder = Path(tempfile.mkdtemp(prefix="gridwatch-disk-"))
    env = server_env(folder / db_path.name)
    port = free_port()
    script = 'mount -t tmpfs -o size=2m tmpfs "$0" && cp "$1" "$0/" && shift && exec "$@"'
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
    command += [str(folder), str(db_path), sys.executable, "-m", "gunicorn", "-w", "2"]
    command += ["-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}"]
    command += ["--graceful-timeout", "5", "--log-level", "warning", "bot:create_app()"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, start_new_session=True, stdout=log, stderr=log
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, process)
            yield url, Path(f"/proc/{process.pid}/root") / folder.relative_to("/")
        finally:
            stop(process)
            shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.skipif(not _can_mount(), reason="needs root and unshare to mount a tiny tmpfs")
def test_disk_full_refuses_for_a_retry_and_the_retry_is_stored_once(tmp_path: Path) -> None:
    """The database sits on a full disk (a real ENOSPC from a 2 MB tmpfs). Proves: a message
    that cannot be stored is answered 503, so WeChat keeps it and retries (its raw form cannot
    be kept here, so it is kept there); the workers survive (healthz); nothing half-written
    is left; /healthz says the database cannot be written until there is room again; once
    there is, the retry is stored once and answered; the file is sound."""
    db_path = tmp_path / "full.db"
    members = build_county(db_path, 20)
    member, names = members[0]
    post = encrypted_post(member, f"{names[0]} 36.6 正常", 9_100_000_001, CREATED)
    with server_on_tiny_disk(db_path, tmp_path / "server.log") as (url, folder):
        filler = fill(folder)
        first = send(url, post)
        assert (first.status, first.body) == (503, "busy, try again")
        # the workers answer; the probe's small write may still fit where the message did
        # not, so it says 503 (disk full) or 200, never anything else
        status, report = health(url)
        assert status == 200 or (status == 503 and "full" in report["database"]), report
        filler.unlink()
        # with room again, every worker's probe says so within a second or two (a probe's
        # answer is reused for up to a second): three answers in a row are 200
        answers: list[int] = []
        deadline = time.monotonic() + 10
        while answers[-3:] != [200, 200, 200] and time.monotonic() < deadline:
            answers.append(health(url)[0])
            time.sleep(0.3)
        assert answers[-3:] == [200, 200, 200], answers
        retried = send(url, post)
        assert retried.status == 200 and "已记录" in reply_content(retried.body)
        # the reply came back, so its handling is committed: copy the files out to read them
        # (SQLite resolves /proc/PID/root, a symbolic link, to this namespace's folder)
        for suffix in ("", "-wal"):
            source = folder / (db_path.name + suffix)
            if source.exists():
                shutil.copyfile(source, tmp_path / ("copy.db" + suffix))
    problems = exactly_once(tmp_path / "copy.db", {post.msg_id})
    assert problems == dict.fromkeys(problems, 0)
    assert integrity(tmp_path / "copy.db") == "ok"
    assert "database or disk is full" in (tmp_path / "server.log").read_text()


def test_the_disk_filling_up_at_any_point_of_a_message_never_half_writes_it(
    loaded_db: sqlite_utils.Database, tmp_path: Path
) -> None:
    """The database may grow by 0, 1, 2 … pages before it is full (`PRAGMA max_page_count`
    on the pipeline's own connection: a real SQLITE_FULL at each point of the message's
    writes). Proves, for every point: either the raw message could not be stored, which
    raises (the callback answers 503 and WeChat keeps it to retry) with nothing written; or
    it is stored, and then either handled completely or kept with outcome 'error', its
    reason, no half-written report, and the plain error reply for the member; and the
    connection goes on working once there is room again. The middle case does happen."""
    text = "张三 36.5 正常，" + "，".join(f"王大锤{i} 36.5" for i in range(120))
    at = NOW.replace(minute=40)
    seen = set()
    for extra in range(12):
        db = sqlite_utils.Database(str(tmp_path / f"full{extra}.db"))
        loaded_db.conn.backup(db.conn)
        db.close()
        db = open_db(tmp_path / f"full{extra}.db")
        try:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages + extra}")
            ctx = Context(db=db, config=Config())
            message = Incoming("console", "lianghong", text, at, at, dedup_key="m:1")
            try:
                handled = handle_message(ctx, message)
            except sqlite3.OperationalError as error:
                assert "full" in str(error)
                assert db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0
                seen.add("refused")
                continue
            inbox = list(db.query("SELECT * FROM inbox"))
            assert len(inbox) == 1 and inbox[0]["text"] == text
            contacts = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
            if handled.outcome == "error":
                assert handled.reply == ERROR_REPLY and inbox[0]["outcome"] == "error"
                assert "full" in inbox[0]["error"] and contacts == 0
            else:
                assert handled.outcome == inbox[0]["outcome"] == "problem" and contacts == 1
            seen.add(handled.outcome)
            db.execute("PRAGMA max_page_count = 1073741823")
            retry = Incoming("console", "lianghong", "李四 36.6", at, at, dedup_key="m:2")
            assert handle_message(ctx, retry).outcome == "ok"
        finally:
            db.close()
    assert "error" in seen and "problem" in seen, seen


def test_a_read_only_database_is_a_clear_error_and_changes_nothing(
    loaded_db: sqlite_utils.Database, tmp_path: Path
) -> None:
    """The database is on a read-only filesystem (as root: a tmpfs remounted read-only in a
    private mount namespace; otherwise a 0444 file in a 0555 folder, which bites then).
    Proves: `gridwatch say` exits non-zero with an error that says the database is
    read-only, not a traceback, and the file is unchanged."""
    folder = Path(tempfile.mkdtemp(prefix="gridwatch-ro-"))
    source = tmp_path / "ro.db"
    loaded_db.conn.backup(sqlite_utils.Database(str(source)).conn)
    before = source.read_bytes()
    say = [
        sys.executable,
        "-c",
        "from bot.cli.main import cli; cli()",
        "say",
        "--from",
        "lianghong",
    ]
    say += ["--at", "2026-03-02T08:40", "张三 36.5", "--db", str(folder / "ro.db")]
    if _can_mount():
        script = 'mount -t tmpfs tmpfs "$0" && cp "$1" "$0/" && mount -o remount,ro "$0"'
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c"]
        command += [script + ' && shift && exec "$@"', str(folder), str(source), *say]
    else:
        shutil.copyfile(source, folder / "ro.db")
        (folder / "ro.db").chmod(0o444)
        folder.chmod(0o555)
        command = say
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert any(word in done.stderr for word in ("readonly", "read-only", "只读"))
    assert source.read_bytes() == before
