"""Latency at a given rate: an open-loop load of callbacks, one every 1/rate seconds.

wrk keeps a fixed number of connections busy, so the latency it reports at saturation is
mostly queueing (32 connections at 1,000/s wait ~32 ms by Little's law, whatever the
server does). A budget of "1,000 messages/s with p99 < 50 ms" asks what a message waits
when messages arrive at 1,000 a second. This client sends each post at its own scheduled
moment on a fresh connection, as WeChat does, whether or not earlier ones were answered,
and times each from that moment (so a stall delays every message behind it: no
coordinated omission).

It runs as its own process, beside the server like wrk.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_IN_FLIGHT = 5000  # past this the server has fallen hopelessly behind: stop sending


@dataclass(frozen=True)
class PacedResult:
    offered: float  # messages/s asked for
    sent: int
    answered: int  # HTTP 200
    failed: int  # any other answer, or none
    seconds: float
    p50: float  # ms, from each message's scheduled moment
    p99: float
    max: float


class _Call:
    """One callback in flight: its request, when it was due, what came back so far."""

    __slots__ = ("sock", "request", "sent", "scheduled", "response")

    def __init__(self, sock: socket.socket, request: bytes, scheduled: float) -> None:
        self.sock, self.request, self.sent = sock, request, 0
        self.scheduled, self.response = scheduled, bytearray()


def _request(host: str, port: int, path: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )


def _run(url: str, posts: list[tuple[str, str]], rate: float, seconds: float) -> PacedResult:
    """One thread, non-blocking sockets and epoll: light enough (~40 µs a message) not to
    take the server's CPU, as a Python asyncio client would (~300 µs)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    count = min(len(posts), int(rate * seconds))
    requests = [_request(host, port, path, body) for path, body in posts[:count]]
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    failed = 0
    in_flight = 0
    start = time.monotonic() + 0.01
    next_index = 0
    trace: list[tuple[float, float]] | None = [] if os.environ.get("BENCH_PACED_TRACE") else None

    def finish(call: _Call, ok: bool) -> None:
        nonlocal failed, in_flight
        selector.unregister(call.sock)
        call.sock.close()
        in_flight -= 1
        if ok and call.response[9:12] == b"200":
            latencies.append((time.monotonic() - call.scheduled) * 1000)
            if trace is not None:
                trace.append((round(call.scheduled - start, 4), round(latencies[-1], 1)))
        else:
            failed += 1

    while next_index < count or in_flight:
        now = time.monotonic()
        while next_index < count and start + next_index / rate <= now:
            scheduled = start + next_index / rate
            if in_flight >= MAX_IN_FLIGHT:
                failed += 1
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex((host, port))
                selector.register(
                    sock, selectors.EVENT_WRITE, _Call(sock, requests[next_index], scheduled)
                )
                in_flight += 1
            next_index += 1
        wait = start + next_index / rate - time.monotonic() if next_index < count else 0.05
        for key, events in selector.select(max(0.0, wait)):
            call: _Call = key.data
            try:
                if events & selectors.EVENT_WRITE:
                    call.sent += call.sock.send(call.request[call.sent :])
                    if call.sent == len(call.request):
                        selector.modify(call.sock, selectors.EVENT_READ, call)
                else:
                    chunk = call.sock.recv(65536)
                    if chunk:
                        call.response += chunk
                    else:
                        finish(call, True)
            except OSError:
                finish(call, False)
    elapsed = time.monotonic() - start
    if trace is not None:  # (due second from the start, latency ms) of each answer
        traced = Path(os.environ["BENCH_PACED_TRACE"])
        if traced.is_dir():  # a folder: one file per run (a province day has three)
            traced = traced / f"paced-{time.time() - elapsed:.3f}.json"
        traced.write_text(json.dumps({"start_wall": time.time() - elapsed, "calls": trace}))
    latencies.sort()

    def share(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return PacedResult(
        offered=rate,
        sent=count,
        answered=len(latencies),
        failed=failed,
        seconds=round(elapsed, 2),
        p50=round(share(0.50), 2),
        p99=round(share(0.99), 2),
        max=round(latencies[-1], 2) if latencies else 0.0,
    )


def read_posts(posts_file: Path) -> list[tuple[str, str]]:
    """The `path<TAB>body` lines that wrk_posts.lua reads too."""
    lines = posts_file.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line]  # type: ignore[misc]


def run_paced(url: str, posts_file: Path, rate: float, seconds: float) -> PacedResult:
    """Run the client in a process of its own (as wrk is) and return what it measured."""
    import subprocess

    output = subprocess.run(
        [sys.executable, "-m", "bench.paced", url, str(posts_file), str(rate), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    return PacedResult(**json.loads(output))


if __name__ == "__main__":
    url, posts_file, rate, seconds = sys.argv[1:5]
    result = _run(url, read_posts(Path(posts_file)), float(rate), float(seconds))
    print(json.dumps(asdict(result)))
