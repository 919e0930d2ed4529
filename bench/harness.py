"""Serving under load: a county database, encrypted WeCom callbacks, gunicorn on 127.0.0.1.

Shared by `make bench` (wrk drives it) and the reduced load test of `make test` (a thread
pool of plain HTTP clients drives it).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import sqlite_utils
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bench.county import make_county
from bot.config import ChannelSettings
from bot.wechat.crypto import sign
from storage.db import connect, open_db

ROOT = Path(__file__).resolve().parent.parent
# gunicorn's sync workers, one per core of the 2-core machine: measured best once the
# callback got lean (4 workers spent ~40 % more CPU per message, contending for the caches
# and the write lock)
SERVING_WORKERS = 2
TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)
SETTINGS = ChannelSettings(
    kind="work",
    token="benchtoken",
    aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    corp_id="wwbench0000000001",
    agent_id="1000002",
    secret="bench-secret",
    api_base="http://127.0.0.1:9",  # discard port: nothing here is meant to leave
)


@dataclass(frozen=True)
class Post:
    path: str  # /wechat?msg_signature=…&timestamp=…&nonce=…
    body: str
    msg_id: int


def build_county(db_path: Path, members: int, seed: int = 7) -> list[tuple[str, list[str]]]:
    """A county with `members` grid members; returns (wechat_id, subject names) per member."""
    db = open_db(db_path)
    try:
        villages = max(1, members // 20)
        make_county(
            db,
            day=DAY,
            tz=TZ,
            villages=villages,
            subjects=members * 5,
            contacts=0,
            members_per_village=20,
            seed=seed,
        )
        return member_names(db)
    finally:
        db.conn.close()


def member_names(db: sqlite_utils.Database) -> list[tuple[str, list[str]]]:
    """(wechat_id, the names of the subjects they are first member of) on DAY, per member."""
    rows = db.execute(
        """SELECT p.wechat_id, group_concat(s.name, ',') FROM people p
           JOIN assignments a ON a.person_id = p.id JOIN subjects s ON s.id = a.subject_id
           WHERE s.start_date <= ? AND s.end_date >= ? AND a.position = 0
           GROUP BY p.id ORDER BY p.id""",
        [DAY.isoformat(), DAY.isoformat()],
    ).fetchall()
    return [(wechat_id, names.split(",")) for wechat_id, names in rows]


def report_text(rng: random.Random, names: list[str], part: int = 0, parts: int = 1) -> str:
    """What a member types after the morning round: mostly normal, the way people write.

    Reply `part` of `parts` covers its share of the member's list (they report as they go);
    now and then the last one ends with 其他都正常, or a reply corrects an earlier one.
    """
    share = names[part::parts] or names[:1]
    if part > 0 and rng.random() < 0.1:  # a correction of someone reported before
        share = [rng.choice(names)]
    text = "，".join(f"{name} 36.{rng.randint(1, 9)}" for name in share)
    if part == parts - 1 and rng.random() < 0.3:
        return text + "，其他都正常"
    return text + rng.choice(["", " 正常", "，均无异常"])


def encrypted_post(member: str, text: str, msg_id: int, created: int) -> Post:
    inner = (
        f"<xml><ToUserName><![CDATA[{SETTINGS.corp_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[{member}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{SETTINGS.agent_id}</AgentID></xml>"
    )
    key = base64.b64decode(SETTINGS.aes_key + "=")
    ciphertext = PrpCrypto(key).encrypt(inner, SETTINGS.corp_id).decode()
    timestamp, nonce = str(created), str(msg_id % 1_000_000_007)
    query = urllib.parse.urlencode(
        {
            "msg_signature": sign(SETTINGS.token, timestamp, nonce, ciphertext),
            "timestamp": timestamp,
            "nonce": nonce,
        }
    )
    body = (
        f"<xml><ToUserName><![CDATA[{SETTINGS.corp_id}]]></ToUserName>"
        f"<AgentID><![CDATA[{SETTINGS.agent_id}]]></AgentID>"
        f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>"
    )
    return Post(f"/wechat?{query}", body, msg_id)


def werobot_posts(posts: list[Post]) -> list[Post]:
    """The same posts as an Official Account in safe mode sends them, which is what WeRoBot
    reads: the plain `signature` and `encrypt_type=aes` besides the envelope's."""
    out = []
    for post in posts:
        args = dict(urllib.parse.parse_qsl(post.path.split("?", 1)[1]))
        extra = {
            "signature": sign(SETTINGS.token, args["timestamp"], args["nonce"]),
            "encrypt_type": "aes",
        }
        out.append(Post(f"{post.path}&{urllib.parse.urlencode(extra)}", post.body, post.msg_id))
    return out


def morning_posts(
    members: list[tuple[str, list[str]]], per_member: int, seed: int = 11
) -> list[Post]:
    """Each member's replies in the 10 minutes after the 08:00 prompt, interleaved."""
    rng = random.Random(seed)
    start = int(dt.datetime.combine(DAY, dt.time(8, 0), tzinfo=TZ).timestamp())
    posts = []
    for round_ in range(per_member):
        for index, (member, names) in enumerate(members):
            msg_id = 7_000_000_000 + round_ * 1_000_000 + index
            created = start + rng.randrange(600)
            text = report_text(rng, names, round_, per_member)
            posts.append(encrypted_post(member, text, msg_id, created))
    return posts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(db_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDWATCH_", "WECHAT_"))}
    if "WECHAT_GROUP_COMMIT" in os.environ:  # to compare with group commit on or off
        env["WECHAT_GROUP_COMMIT"] = os.environ["WECHAT_GROUP_COMMIT"]
    return env | {
        "GRIDWATCH_DB": str(db_path),
        "GRIDWATCH_CHANNEL": "work",
        "GRIDWATCH_SCHEDULER": "off",
        "WECHAT_TOKEN": SETTINGS.token,
        "WECHAT_AES_KEY": SETTINGS.aes_key,
        "WECHAT_CORP_ID": SETTINGS.corp_id,
        "WECHAT_AGENT_ID": SETTINGS.agent_id,
        "WECHAT_SECRET": SETTINGS.secret,
        "WECHAT_API_BASE": SETTINGS.api_base,
        "PYTHONPATH": str(ROOT),
    }


@contextmanager
def gunicorn(
    app: str,
    env: dict[str, str],
    workers: int = SERVING_WORKERS,
    threads: int = 1,
    cwd: Path | None = None,
    log: IO | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn on a free loopback port; yields (base URL, process). One thread per worker is
    gunicorn's `sync` worker (measured best here: no GIL shared by request threads), more
    threads the `gthread` one.

    `log`, an open file, receives the server's stdout and stderr (else they are inherited).
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-k",
        "sync" if threads == 1 else "gthread",
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
        app,
    ]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd or ROOT,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, process
    finally:
        stop(process)


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:  # an answer all the same (a peer with no /healthz)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {seconds} s")


def health(url: str) -> tuple[int, dict]:
    """/healthz's status and report (a 503 is an answer too: the worker is alive)."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _workers(master_pid: int) -> list[int]:
    """The pids of the master's worker processes."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # the parent's pid
            pids.append(int(stat.parent.name))
    return pids


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU the master's workers have used so far, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _workers(master_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def worker_rss_mb(master_pid: int) -> float:
    """The largest resident set of the master's worker processes, in MB."""
    largest = 0.0
    for pid in _workers(master_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]) / 1024)
    return largest


def with_retries(posts: list[Post], share: float = 0.1, seed: int = 5) -> list[Post]:
    """The posts plus WeChat's retries: `share` of them sent again, each soon after its
    original (a few right next to it, so the two race in different workers)."""
    rng = random.Random(seed)
    keyed = [(float(index), post) for index, post in enumerate(posts)]
    for index in rng.sample(range(len(posts)), round(len(posts) * share)):
        keyed.append((index + 0.5 + rng.choice((0, 0, 1, 5, 20, 100)), posts[index]))
    return [post for _, post in sorted(keyed, key=lambda pair: pair[0])]


@dataclass(frozen=True)
class Answer:
    msg_id: int
    status: int  # 0: no HTTP answer (connection refused or reset)
    body: str
    seconds: float
    error: str = ""


def send(url: str, post: Post, timeout: float = 30) -> Answer:
    """POST one callback on a fresh connection, as WeChat does; never raises."""
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(
            "POST", post.path, post.body.encode(), {"Content-Type": "text/xml; charset=utf-8"}
        )
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return Answer(post.msg_id, response.status, body, time.perf_counter() - started)
    except OSError as error:  # http.client's errors are OSErrors or HTTPException
        return Answer(post.msg_id, 0, "", time.perf_counter() - started, repr(error))
    except http.client.HTTPException as error:
        return Answer(post.msg_id, 0, "", time.perf_counter() - started, repr(error))
    finally:
        connection.close()


def send_all(url: str, posts: list[Post], clients: int = 16) -> list[Answer]:
    """Every post from a pool of `clients` concurrent HTTP clients, in order of submission."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda post: send(url, post), posts))


def reply_content(body: str) -> str:
    """The text of an encrypted passive reply ("" for `success`); raises if it is neither."""
    if body == "success":
        return ""
    import defusedxml.ElementTree as SafeTree

    root = SafeTree.fromstring(body, forbid_dtd=True)
    crypto = WeChatCrypto(SETTINGS.token, SETTINGS.aes_key, SETTINGS.corp_id)
    stamp, nonce = root.findtext("TimeStamp"), root.findtext("Nonce")
    xml = crypto.decrypt_message(body, root.findtext("MsgSignature"), stamp, nonce)
    content = SafeTree.fromstring(xml, forbid_dtd=True).findtext("Content")
    if not content:
        raise ValueError(f"a reply without Content: {xml[:200]}")
    return content


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..100) of `values`."""
    ordered = sorted(values)
    rank = max(1, round(share / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def exactly_once(db_path: Path, msg_ids: set[int]) -> dict[str, int]:
    """What the database says about the load's messages: a problem count per check (all 0
    when every message is stored exactly once, handled, and its records are consistent)."""
    from storage.db import connect

    db = connect(db_path)
    try:
        keys = [row[0] for row in db.execute("SELECT dedup_key FROM inbox")]
        stored = {int(key.rsplit(":", 1)[1]) for key in keys}
        one = "SELECT COUNT(*) FROM "

        def count(sql: str) -> int:
            return int(db.execute(one + sql).fetchone()[0])

        return {
            "missing": len(msg_ids - stored),
            "unexpected": len(stored - msg_ids),
            "twice": len(keys) - len(set(keys)),
            "unfinished": count("inbox WHERE outcome = 'received'"),
            "errors": count("inbox WHERE outcome = 'error'"),
            "replies_twice": count(
                "(SELECT inbox_id FROM outbox WHERE kind = 'reply'"
                " GROUP BY inbox_id HAVING COUNT(*) > 1)"
            ),
            "stray_contacts": count(
                "contacts c LEFT JOIN inbox i ON i.id = c.inbox_id WHERE i.id IS NULL"
                " OR i.person_id IS NOT c.member_id OR i.outcome NOT IN ('ok', 'problem')"
            ),
        }
    finally:
        db.conn.close()


def wait_until_stored(db_path: Path, expected: int, seconds: float = 10) -> None:
    """Wait until `expected` distinct messages are in the inbox: one whose reply missed the
    passive window commits (with its handling) only when it is done."""
    deadline = time.monotonic() + seconds
    db = connect(db_path)
    try:
        while time.monotonic() < deadline:
            if db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] >= expected:
                return
            time.sleep(0.1)
    finally:
        db.conn.close()
