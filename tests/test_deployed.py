"""The product as deployed: `gridwatch serve` and gunicorn started the way the README says,
at the moment jobs are due, restarted, stopped with SIGTERM, their workers killed during a
roster import; real encrypted callbacks over HTTP. Checked from outside, on the database:
every acknowledged message stored exactly once, every scheduled send made once.

A reduced run (a few starts, a small county) is part of `make test`; GRIDWATCH_DEPLOYED_STARTS
raises the number of starts (20 in a row), GRIDWATCH_DEPLOYED_MEMBERS=10000 imports a whole
county's roster."""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.harness import (
    DAY,
    ROOT,
    Answer,
    Post,
    build_county,
    encrypted_post,
    exactly_once,
    free_port,
    health,
    reply_content,
    send,
    server_env,
    wait_until_stored,
)
from storage.db import connect

STARTS = int(os.environ.get("GRIDWATCH_DEPLOYED_STARTS", "3"))
# members of the county whose roster is imported under kills (5 subjects each): 10000 is a
# county's 50,000 subjects
IMPORT_MEMBERS = int(os.environ.get("GRIDWATCH_DEPLOYED_MEMBERS", "1000"))
GRACEFUL = 10  # seconds a stopped server may take, its own graceful timeout included


def zone_at_eight(now: dt.datetime) -> ZoneInfo:
    """A fixed-offset zone in which it is now between 08:00 and 08:59: the morning prompt is
    due (within the grace) and the release has run or is due, whenever the test runs."""
    offset = (8 - now.astimezone(dt.UTC).hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT-5 is UTC+5: the POSIX sign
    return ZoneInfo("Etc/GMT" + ("-" if offset > 0 else "+") + str(abs(offset)))


@pytest.fixture
def county(tmp_path: Path) -> tuple[Path, ZoneInfo, list[tuple[str, list[str]]]]:
    """A county of 100 members whose subjects are being monitored today, in a zone where it
    is the morning prompt's hour."""
    zone = zone_at_eight(dt.datetime.now(dt.UTC))
    db_path = tmp_path / "county.db"
    members = build_county(db_path, 100)
    today = dt.datetime.now(zone).date()
    db = connect(db_path)
    with db.conn:
        db.execute(
            "UPDATE subjects SET start_date = date(start_date, ?)",
            [f"{(today - DAY).days:+d} days"],
        )
    db.conn.close()
    return db_path, zone, members


def env_for(db_path: Path, zone: ZoneInfo) -> dict[str, str]:
    return server_env(db_path) | {"GRIDWATCH_TZ": str(zone), "GRIDWATCH_SCHEDULER": "on"}


@contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A server process in a session of its own; killed with its session if a test fails."""
    with log.open("a") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, start_new_session=True, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def serve_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from bot.cli.main import cli; cli()",
        "serve",
        "--port",
        str(port),
    ]


def gunicorn_command(port: int, workers: int = 2) -> list[str]:
    # started in the checkout, so gunicorn reads ./gunicorn.conf.py, as the README says
    bind = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", bind, "bot:create_app()"]


def first_answer(url: str, post: Post, process: subprocess.Popen, seconds: float = 30) -> Answer:
    """Post as soon as the port takes connections; the answer and when it came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        answer = send(url, post, timeout=10)
        if answer.status or "refused" not in answer.error.lower():
            return answer
        time.sleep(0.05)
    raise AssertionError(f"{url} never took a connection")


def stop_with_sigterm(process: subprocess.Popen, port: int) -> None:
    """SIGTERM to the master, as a service manager sends it: every process of the server
    ends within the graceful timeout and the port is free."""
    process.send_signal(signal.SIGTERM)
    process.wait(GRACEFUL)
    deadline = time.monotonic() + GRACEFUL
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("a process of the server outlived SIGTERM")
    with socket.socket() as sock:  # as the next server binds it (closed connections linger)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def counts(db_path: Path, sql: str) -> dict[str, int]:
    """{key: count} from a query of two columns."""
    db = connect(db_path)
    try:
        return dict(db.execute(sql).fetchall())
    finally:
        db.conn.close()


def scheduled_sends(db_path: Path) -> dict[str, int]:
    """Per scheduled send key, how many outbox rows it has (each must have one)."""
    sql = "SELECT send_key, count(*) FROM outbox WHERE send_key IS NOT NULL GROUP BY send_key"
    return counts(db_path, sql)


def prompts_per_member(db_path: Path) -> dict[str, int]:
    sql = "SELECT person, count(*) FROM outbox WHERE kind = 'prompt' GROUP BY person"
    return counts(db_path, sql)


def report_post(member: tuple[str, list[str]], msg_id: int, zone: ZoneInfo) -> Post:
    wechat_id, names = member
    created = int(dt.datetime.now(zone).timestamp())
    return encrypted_post(wechat_id, f"{names[0]} 36.{msg_id % 9 + 1} 正常", msg_id, created)


@pytest.mark.parametrize("server", ["serve", "gunicorn -w 2"])
def test_starts_with_jobs_due_serve_at_once_and_stop_on_sigterm(
    county: tuple[Path, ZoneInfo, list[tuple[str, list[str]]]], tmp_path: Path, server: str
) -> None:
    """Each start comes while the morning's jobs are due (the first start runs them: the
    county's prompt fan-out): a callback posted as the port opens is answered with its
    reply and stored; SIGTERM ends every process and frees the port; after all the starts
    each member got the prompt once, and every scheduled send was made once."""
    db_path, zone, members = county
    acknowledged: set[int] = set()
    first_answers: list[float] = []  # seconds from the process's start to its first answer
    for start in range(STARTS):
        port = free_port()
        command = serve_command(port) if server == "serve" else gunicorn_command(port)
        spawned = time.monotonic()
        with started(command, env_for(db_path, zone), tmp_path / "server.log") as process:
            post = report_post(members[start % len(members)], 8_800_000_000 + start, zone)
            answer = first_answer(f"http://127.0.0.1:{port}", post, process)
            assert answer.status == 200, (answer, (tmp_path / "server.log").read_text()[-2000:])
            assert "已记录" in reply_content(answer.body)
            assert answer.seconds < 5  # inside WeChat's window, jobs running or not
            first_answers.append(time.monotonic() - spawned)
            acknowledged.add(post.msg_id)
            status, report = health(f"http://127.0.0.1:{port}")
            assert status == 200 and report["database"] == "writable"
            stop_with_sigterm(process, port)
    assert exactly_once(db_path, acknowledged) == dict.fromkeys(exactly_once(db_path, set()), 0)
    prompts = prompts_per_member(db_path)
    assert len(prompts) == len(members) and set(prompts.values()) == {1}
    assert set(scheduled_sends(db_path).values()) == {1}
    print(
        f"\n{server}: {STARTS} starts, first answer {min(first_answers):.2f}–"
        f"{max(first_answers):.2f} s after the process started (interpreter start included)"
    )


def test_gunicorn_started_elsewhere_with_the_hooks_module_runs_the_schedule_unasked(
    county: tuple[Path, ZoneInfo, list[tuple[str, list[str]]]], tmp_path: Path
) -> None:
    """As the README tells a deployer whose service starts in another folder: no request
    comes, and the morning's prompt goes out all the same."""
    db_path, zone, members = county
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:bot.serving.gunicorn_hooks",
        "-w",
        "2",
    ]
    command += ["-b", f"127.0.0.1:{port}", "bot:create_app()"]
    env = env_for(db_path, zone)
    with (tmp_path / "g.log").open("w") as log:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(prompts_per_member(db_path)) < len(members):
            time.sleep(0.2)
        assert set(prompts_per_member(db_path).values()) == {1}
        assert len(prompts_per_member(db_path)) == len(members)
        stop_with_sigterm(process, port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_worker_running_the_schedule_is_killed_and_another_takes_it_over(
    county: tuple[Path, ZoneInfo, list[tuple[str, list[str]]]], tmp_path: Path
) -> None:
    db_path, zone, _ = county
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    lock = Path(f"{db_path}.scheduler.lock")
    with started(gunicorn_command(port), env_for(db_path, zone), tmp_path / "g.log") as process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        holder = int(lock.read_text())
        assert holder != process.pid  # a worker, after the fork: never the master
        os.kill(holder, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = lock.read_text().strip()
            if text and int(text) != holder and health(url)[1].get("schedule") == "running":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no worker took the schedule over")
        stop_with_sigterm(process, port)
    assert set(prompts_per_member(db_path).values()) == {1}


def dump_roster(db_path: Path, folder: Path) -> int:
    """The database's roster as the three CSV files of an import, each subject's address
    changed (so importing it rewrites every subject; a namesake in the same unit, which the
    generator makes now and then, is left out); how many subjects."""
    folder.mkdir()
    db = connect(db_path)
    try:
        tables = {
            "units": ("SELECT code, name, level, coalesce(parent, '') FROM units", None),
            "people": ("SELECT name, phone, wechat_id, roles, unit FROM people", None),
            "subjects": (
                """SELECT s.name, s.phone, s.category, s.address || '（新）', s.unit,
                          s.start_date, s.days, group_concat(p.phone, '、')
                   FROM subjects s JOIN assignments a ON a.subject_id = s.id
                   JOIN people p ON p.id = a.person_id
                   WHERE s.id IN (SELECT min(id) FROM subjects GROUP BY name, unit)
                   GROUP BY s.id ORDER BY s.id""",
                None,
            ),
        }
        headers = {
            "units": ["code", "name", "level", "parent"],
            "people": ["name", "phone", "wechat_id", "roles", "unit"],
            "subjects": [
                "name",
                "phone",
                "category",
                "address",
                "unit",
                "start_date",
                "days",
                "members",
            ],  # fmt: skip
        }
        count = 0
        for table, (sql, _) in tables.items():
            rows = db.execute(sql).fetchall()
            count = len(rows)
            with (folder / f"{table}.csv").open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(headers[table])
                writer.writerows(rows)
        return count
    finally:
        db.conn.close()


def test_workers_killed_during_a_roster_import_lose_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    """A county's roster import runs (`gridwatch roster import`, every subject changed) while
    members' callbacks arrive and gunicorn's workers are killed one after another. Then
    WeChat's retries come (every message again). Every message answered 200 before the
    retries was stored by then, none is stored twice, and the import completed."""
    zone = zone_at_eight(dt.datetime.now(dt.UTC))
    db_path = tmp_path / "county.db"
    members = build_county(db_path, IMPORT_MEMBERS)
    subjects = dump_roster(db_path, tmp_path / "roster")
    env = env_for(db_path, zone) | {"GRIDWATCH_SCHEDULER": "off"}
    posts = [report_post(members[i % len(members)], 8_900_000_000 + i, zone) for i in range(600)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(3)
    with started(gunicorn_command(port), env, tmp_path / "g.log") as server:
        first_answer(url, posts[0], server)  # up; this one is answered again below
        importing = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli.main import cli; cli()", "roster", "import"]
            + [str(tmp_path / "roster")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        kills: list[int] = []
        answers: list[Answer] = []
        queue = iter(posts[1:])
        taking = threading.Lock()

        def post_while_importing() -> None:  # WeChat's traffic for as long as the import runs
            while importing.poll() is None:
                with taking:
                    post = next(queue, None)
                if post is None:
                    return
                answers.append(send(url, post, timeout=8))

        def kill_workers() -> None:
            while importing.poll() is None:
                time.sleep(rng.uniform(0.2, 0.5))
                workers = _children(server.pid)
                if workers:
                    kills.append(rng.choice(workers))
                    os.kill(kills[-1], signal.SIGKILL)

        threads = [threading.Thread(target=post_while_importing) for _ in range(4)]
        threads.append(threading.Thread(target=kill_workers))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posts = posts[: len(answers) + 1]
        output, _ = importing.communicate(timeout=600)
        assert importing.returncode == 0, output
        acknowledged = {a.msg_id for a in answers if a.status == 200}
        # what was acknowledged is stored already, before any retry
        assert exactly_once(db_path, acknowledged)["missing"] == 0
        deadline = time.monotonic() + 60
        while True:  # WeChat's retries: until every message is answered
            retried = [send(url, post, timeout=8) for post in posts]
            if all(a.status == 200 for a in retried) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {a.status for a in retried} == {200}
        wait_until_stored(db_path, len(posts))
    problems = exactly_once(db_path, {post.msg_id for post in posts})
    assert problems == dict.fromkeys(problems, 0)
    db = connect(db_path)
    try:
        changed = db.execute("SELECT count(*) FROM subjects WHERE address LIKE '%（新）'")
        assert changed.fetchone()[0] == subjects
    finally:
        db.conn.close()
    print(
        f"\nimport of {subjects} subjects under {len(kills)} worker kills: "
        f"{len(acknowledged)} of {len(posts)} callbacks answered 200 at once"
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
