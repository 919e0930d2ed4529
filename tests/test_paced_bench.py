"""bench.paced: the open-loop client times every post from its own moment, and with
BENCH_PACED_TRACE keeps each answer's (due second, latency) for a timeline."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.paced import _run


class _Answers(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


POSTS = [(f"/wechat?n={n}", "<xml/>") for n in range(10)]


@pytest.mark.parametrize("where", ["file", "folder"])
def test_each_answer_is_traced_to_a_file_or_one_file_per_run_in_a_folder(
    server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "trace.json" if where == "file" else tmp_path
    monkeypatch.setenv("BENCH_PACED_TRACE", str(target))
    first = _run(server_url, POSTS, rate=100, seconds=0.1)
    second = _run(server_url, POSTS, rate=100, seconds=0.1)
    assert first.answered == second.answered == 10 and first.failed == 0
    files = [target] if where == "file" else sorted(tmp_path.glob("paced-*.json"))
    assert len(files) == (1 if where == "file" else 2)  # a folder keeps each run's
    trace = json.loads(files[-1].read_text())
    assert len(trace["calls"]) == 10
    assert all(0 <= due < 0.2 and latency > 0 for due, latency in trace["calls"])
