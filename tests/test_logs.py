"""Log records in the configured zone's local time (bot/logs.py), whatever the machine's zone."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gunicorn.config import Config as GunicornConfig

from bot.logs import ZoneFormatter, ZoneLogger, redact_tokens, zone_logger

ROOT = Path(__file__).resolve().parent.parent
# 2026-03-02 00:30:05 UTC
CREATED = dt.datetime(2026, 3, 2, 0, 30, 5, tzinfo=dt.UTC).timestamp()


def record(name: str = "gridwatch.schedule", message: str = "prompt sent") -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    rec.created, rec.msecs = CREATED, 0.0
    return rec


@pytest.mark.parametrize(
    ("zone", "datefmt", "stamp"),
    [
        ("Asia/Shanghai", "[%Y-%m-%d %H:%M:%S %z]", "[2026-03-02 08:30:05 +0800]"),
        ("UTC", "[%Y-%m-%d %H:%M:%S %z]", "[2026-03-02 00:30:05 +0000]"),
        ("America/New_York", "[%Y-%m-%d %H:%M:%S %z]", "[2026-03-01 19:30:05 -0500]"),
        ("Asia/Shanghai", None, "2026-03-02 08:30:05,000"),  # logging's own default form
    ],
)
def test_zone_formatter_stamps_local_time(zone: str, datefmt: str | None, stamp: str) -> None:
    formatter = ZoneFormatter("%(asctime)s %(message)s", datefmt, tz=ZoneInfo(zone))
    assert formatter.format(record()) == f"{stamp} prompt sent"


@pytest.fixture
def restore_root() -> Iterator[None]:
    """The root and gunicorn loggers (process-wide) as they were, added handlers closed."""
    loggers = [
        logging.getLogger(name) for name in ("", "gunicorn.error", "gunicorn.access", "apscheduler")
    ]
    saved = [(log, log.level) for log in loggers]
    yield
    for log, level in saved:
        for handler in list(log.handlers):
            if getattr(handler, "_gunicorn", False) or getattr(handler, "_gridwatch", False):
                log.removeHandler(handler)
                handler.close()
        log.setLevel(level)


def gunicorn_log(tmp_path: Path, logger_class: type[ZoneLogger]) -> tuple[ZoneLogger, Path]:
    cfg = GunicornConfig()
    path = tmp_path / "error.log"
    cfg.set("errorlog", str(path))
    cfg.set("loglevel", "info")
    return logger_class(cfg), path


def test_gunicorn_and_gridwatch_records_share_the_zone(tmp_path: Path, restore_root: None) -> None:
    log, path = gunicorn_log(tmp_path, zone_logger(ZoneInfo("Asia/Shanghai")))
    log.info("Booting worker")
    logging.getLogger("gridwatch.schedule").info("ran prompt")
    logging.getLogger("apscheduler.scheduler").info("Added job")  # its chatter stays out
    for handler in log.error_log.handlers:
        handler.flush()
    lines = path.read_text().splitlines()
    assert [line.split("] ", 3)[-1] for line in lines] == ["Booting worker", "ran prompt"]
    assert all(re.match(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0800\] ", line) for line in lines)


def test_a_second_setup_does_not_double_gridwatch_records(
    tmp_path: Path, restore_root: None
) -> None:
    log, path = gunicorn_log(tmp_path, zone_logger(ZoneInfo("Asia/Shanghai")))
    first = list(log.error_log.handlers)
    log.setup(log.cfg)  # gunicorn reloading its settings (HUP) drops its handler unclosed
    for handler in first:
        handler.close()
    logging.getLogger("gridwatch.schedule").info("once")
    for handler in log.error_log.handlers:
        handler.flush()
    assert path.read_text().count("once") == 1


def test_the_zone_comes_from_the_settings(
    tmp_path: Path, restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gunicorn started on its own (./gunicorn.conf.py) names the class; the zone is read from
    GRIDWATCH_TZ or the config file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRIDWATCH_TZ", "America/Sao_Paulo")
    log, _ = gunicorn_log(tmp_path, ZoneLogger)
    (handler,) = [h for h in log.error_log.handlers if getattr(h, "_gunicorn", False)]
    assert handler.format(record()).startswith("[2026-03-01 21:30:05 -0300]")


def serving(tmp_path: Path, env: dict[str, str], visit: Callable[[str], None]) -> str:
    """Start `gridwatch serve` (no schedule) with `env`, wait for /healthz, `visit` its base
    URL, stop it; what it wrote to stdout and stderr."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {"PYTHONPATH": str(ROOT)} | env
    env.pop("GRIDWATCH_CONFIG", None)
    command = [sys.executable, "-c", "from bot.cli.main import cli; cli()", "serve"]
    command += ["--no-scheduler", "--port", str(port), "--db", str(tmp_path / "gw.db")]
    out = tmp_path / "serve.log"
    with open(out, "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        visit(base)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out.read_text()


@pytest.mark.parametrize(("zone", "offset"), [("Asia/Shanghai", "+0800"), ("Asia/Tokyo", "+0900")])
def test_gridwatch_serve_logs_in_the_configured_zone(
    tmp_path: Path, zone: str, offset: str
) -> None:
    text = serving(tmp_path, {"TZ": "UTC", "GRIDWATCH_TZ": zone}, lambda base: None)
    stamped = [line for line in text.splitlines() if line.startswith("[20")]
    assert any("Listening at" in line for line in stamped), text
    assert all(line[21:26] == offset for line in stamped), stamped


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        ("GET /me/eyJwIjo0.axOg5w.sig HTTP/1.1", "GET /me/[token] HTTP/1.1"),
        ("GET /view/eyJ1Ijo.x.y/excel HTTP/1.1", "GET /view/[token]/excel HTTP/1.1"),
        ("POST /me/abc?done=3 HTTP/1.1", "POST /me/[token]?done=3 HTTP/1.1"),
        ("GET /review/abc/xlsx HTTP/1.1", "GET /review/[token]/xlsx HTTP/1.1"),
        ("GET /healthz HTTP/1.1", "GET /healthz HTTP/1.1"),
        ("GET /sim HTTP/1.1", "GET /sim HTTP/1.1"),
    ],
)
def test_page_tokens_are_left_out_of_the_access_log(line: str, logged: str) -> None:
    assert redact_tokens(line) == logged


def test_gridwatch_serve_writes_no_page_token_to_its_access_log(tmp_path: Path) -> None:
    secret = "eyJwIjo0LCJkIjoiMjAyNi0wMy0wMiJ9.SECRETPART"

    def visit(base: str) -> None:
        for path in (f"/me/{secret}", f"/view/{secret}/excel", f"/review/{secret}"):
            try:
                urllib.request.urlopen(f"{base}{path}", timeout=5)
            except urllib.error.HTTPError as refused:
                assert refused.code in (403, 404)

    text = serving(tmp_path, {}, visit)
    assert "/me/[token]" in text and "/view/[token]/excel" in text, text
    assert "SECRETPART" not in text
