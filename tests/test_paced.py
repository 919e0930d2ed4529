"""The open-loop client of `make bench` (bench.paced): every message sent at its moment,
answered or not, and timed from that moment."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.paced import _run

DELAY = 0.05  # seconds the server sits on every request


class _Handler(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        time.sleep(DELAY)
        status = 200 if self.path.endswith("/ok") else 500
        self.send_response(status)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_every_message_is_sent_at_its_moment_and_counted(server: str) -> None:
    posts = [(f"/wechat/{i}/{'ok' if i % 4 else 'bad'}", f"<xml>张三 {i}</xml>") for i in range(80)]
    result = _run(server, posts, rate=100.0, seconds=0.8)
    assert (result.sent, result.answered, result.failed) == (80, 60, 20)
    assert sorted(_Handler.received) == sorted((p, b.encode()) for p, b in posts)
    # open loop: 80 messages at 100/s take 0.8 s of sending, not 80 × the server's delay
    assert result.seconds < 80 * DELAY
    assert DELAY * 1000 <= result.p50 <= result.p99 <= result.max


def test_a_server_that_is_not_there_fails_every_message() -> None:
    result = _run("http://127.0.0.1:9", [("/wechat", "<xml/>")] * 5, rate=50.0, seconds=0.1)
    assert (result.sent, result.answered, result.failed) == (5, 0, 5)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_each_answer_is_traced_to_a_file_or_one_file_per_run_in_a_folder(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """BENCH_PACED_TRACE keeps each answer's (due second, latency): in the file it names, or
    in a file of its own per run in the folder it names (a province day has three runs)."""
    target = tmp_path / "trace.json" if where == "file" else tmp_path
    monkeypatch.setenv("BENCH_PACED_TRACE", str(target))
    posts = [(f"/wechat/{i}/ok", "<xml/>") for i in range(10)]
    for _ in range(2):
        assert _run(server, posts, rate=100.0, seconds=0.1).answered == 10
    files = [target] if where == "file" else sorted(tmp_path.glob("paced-*.json"))
    assert len(files) == (1 if where == "file" else 2)
    calls = json.loads(files[-1].read_text())["calls"]
    assert len(calls) == 10
    assert all(0 <= due < 0.2 and latency >= DELAY * 1000 for due, latency in calls)
