"""The floor under the callback budget: what the least possible callback costs here.

It does what the budget names and nothing else: the product's own signature check, AES
envelope, XML parsing and encrypted passive reply, and one SQLite transaction that stores
the raw message, one contact and the reply (WAL, as the product). No reply grammar, no
roster, no names, no alerts. Served the product's way (a plain WSGI route in front of a Flask
app) under the same gunicorn, posts and wrk as the callback and the hello, it says how close
to the hello any callback can come on this machine (`make bench` prints it; not a budget).

Run: GRIDWATCH_DB=… and the WECHAT_* settings of bench.harness, `gunicorn bench.floor:app`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from bot.config import load_config
from bot.wechat.callback import query_args, read_body
from bot.wechat.crypto import open_envelope, seal
from bot.wechat.message_xml import decode_body, parse, render_reply

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL,"
    " at TEXT NOT NULL, sender TEXT NOT NULL, dedup_key TEXT UNIQUE, text TEXT NOT NULL,"
    " raw TEXT NOT NULL, reply TEXT)",
    "CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, inbox_id INTEGER NOT NULL,"
    " sender TEXT NOT NULL, date TEXT NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, inbox_id INTEGER NOT NULL,"
    " recipient TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL)",
)


_SETUP = threading.Lock()  # this process's threads; the file lock, the other workers


@contextmanager
def _setup_file() -> Iterator[None]:
    with open(floor_db_path() + ".setup", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def floor_db_path() -> str:
    return os.environ.get("GRIDWATCH_DB", "gridwatch.db") + ".floor"


class FloorCallback:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app
        self.config = load_config(None)
        self.local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(floor_db_path(), timeout=30, isolation_level=None)
            # one thread at a time: switching to WAL does not wait for another connection
            # doing the same (the first posts of a run failed with "database is locked")
            with _SETUP, _setup_file():
                conn.execute("PRAGMA journal_mode = WAL")
                for statement in SCHEMA:
                    conn.execute(statement)
            conn.execute("PRAGMA synchronous = FULL")
            self.local.conn = conn
        return conn

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/wechat" or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        body = self.answer(environ)
        start_response(
            "200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def answer(self, environ: dict[str, Any]) -> bytes:
        settings, tz = self.config.channel, self.config.tz
        received_at = dt.datetime.now(tz)
        envelope = open_envelope(settings, query_args(environ), decode_body(read_body(environ)))
        parsed = parse(settings.kind, envelope.xml, tz, received_at)
        message = parsed.incoming
        if message is None:
            return b"success"
        reply = f"已记录：{message.text}"
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            inbox_id = conn.execute(
                "INSERT INTO inbox (received_at, at, sender, dedup_key, text, raw, reply)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    received_at.isoformat(),
                    message.at.isoformat(),
                    message.sender,
                    message.dedup_key,
                    message.text,
                    message.raw,
                    reply,
                ),
            ).lastrowid
            conn.execute(
                "INSERT INTO contacts (inbox_id, sender, date, note) VALUES (?, ?, ?, ?)",
                (inbox_id, message.sender, message.at.date().isoformat(), message.text),
            )
            conn.execute(
                "INSERT INTO outbox (inbox_id, recipient, text, status) VALUES (?, ?, ?, 'sent')",
                (inbox_id, message.sender, reply),
            )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:  # a retry: the same answer
            conn.execute("ROLLBACK")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        xml = render_reply(settings.kind, parsed.message, reply, received_at.timestamp())
        return seal(settings, xml, int(received_at.timestamp())).encode()


app = Flask(__name__)


@app.get("/healthz")
def healthz() -> str:
    return "ok"


app.wsgi_app = FloorCallback(app.wsgi_app)  # type: ignore[method-assign]
