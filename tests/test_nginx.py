"""Slow clients: the README's nginx block, run as written in front of `gunicorn -w 2`.

Proves: while more slow connections than gunicorn has workers trickle callback bodies through
nginx, a real encrypted callback is answered and stored once; as many slow connections as
workers straight at gunicorn leave it unanswered; nginx refuses a body over MAX_BODY and
keeps one of MAX_BODY in memory. Needs Debian's nginx at /usr/sbin/nginx (`make nginx`
installs it); each test runs its own instance (config, pid, logs, temp files in tmp_path,
127.0.0.1 only).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import Result

from bot.wechat.message_xml import MAX_BODY
from tests.conftest import DEMO_ROSTER, ROOT
from tests.fake_wechat import WORK
from tests.test_wechat_callback import inner_xml, open_reply, wecom_request
from tests.test_wechat_serve import CREATED, env_for, free_port

NGINX = Path("/usr/sbin/nginx")
DOMAIN = "your.domain"
WORKERS = 2  # gunicorn -w 2, as the README serves it
SLOW = 6  # slow connections through nginx: more than gunicorn's workers
TRICKLE = 0.2  # seconds between two bytes of a slow body


def readme_block() -> str:
    """The nginx block of the README's "Behind nginx" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Behind nginx\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```nginx\n", 1)[1].split("```", 1)[0]


def directive(block: str, name: str) -> str:
    """A directive's value; one that stands in several places says the same in each."""
    (value,) = {v.strip() for v in re.findall(rf"^\s*{name}\s+([^;{{]+);", block, flags=re.M)}
    return value


def size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


def test_readme_block_matches_the_app() -> None:
    block = readme_block()
    assert directive(block, "proxy_pass") == "http://gridwatch"
    assert directive(block, "server") == "127.0.0.1:5000"
    assert directive(block, "proxy_request_buffering") == "on"
    assert directive(block, "proxy_buffering") == "on"
    assert size(directive(block, "client_max_body_size")) == MAX_BODY
    assert size(directive(block, "client_body_buffer_size")) >= MAX_BODY
    assert seconds(directive(block, "proxy_read_timeout")) > 5  # WeChat's reply window
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert seconds(directive(block, timeout)) <= 15
    headers = re.findall(r"^\s*proxy_set_header\s+(\S+)", block, flags=re.M)
    assert {"Host", "X-Forwarded-For", "X-Forwarded-Proto"} <= set(headers)
    # page links' signed tokens are kept out of nginx's access log
    pages = block.split("location ~ ^/(me|view|review)/ {", 1)[1].split("}", 1)[0]
    assert "access_log off;" in pages and "proxy_pass http://gridwatch;" in pages


def local_config(block: str, upstream: int, listen: int, cert: Path, key: Path) -> str:
    """The README block with only the listen address, the certificate and the upstream port
    replaced, each exactly once (a README change that drops one fails here)."""
    live = f"/etc/letsencrypt/live/{DOMAIN}"
    replacements = [
        ("server 127.0.0.1:5000;", f"server 127.0.0.1:{upstream};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{listen} ssl;"),
        (f"ssl_certificate {live}/fullchain.pem;", f"ssl_certificate {cert};"),
        (f"ssl_certificate_key {live}/privkey.pem;", f"ssl_certificate_key {key};"),
    ]
    for old, new in replacements:
        assert block.count(old) == 1, old
        block = block.replace(old, new)
    return block


def nginx_conf(tmp: Path, server_block: str) -> str:
    """A whole nginx.conf around the block, every file of the instance inside tmp."""
    temps = "".join(
        f"    {kind}_temp_path {tmp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # as root, nginx's workers would run as nobody, who cannot enter pytest's private tmp
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {tmp / 'access.log'};\n{temps}\n{server_block}}}\n"
    )


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for DOMAIN and its key, written to tmp."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@functools.cache
def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own certificate, on loopback
    return context


def wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=1, context=tls_context()) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def nginx_binary() -> Path:
    if NGINX.exists():
        return NGINX
    reason = (
        "NGINX TESTS SKIPPED: no nginx at /usr/sbin/nginx. Install it with `make nginx`"
        " (as root: apt-get install -y nginx)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason.replace("SKIPPED", "FAILED (CI=true)"))
    pytest.skip(reason)


@pytest.fixture
def gunicorn(run_cli: Callable[..., Result], db_path: Path, tmp_path: Path) -> Iterator[int]:
    """`gunicorn -w 2 'bot:create_app()'` (sync workers) on a database made by `gridwatch init`
    and the demo roster, WeCom channel, no live schedule; yields its port."""
    for args in (("init",), ("roster", "import", DEMO_ROSTER)):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
    port = free_port()
    env = env_for(WORK) | {"GRIDWATCH_DB": str(db_path), "GRIDWATCH_SCHEDULER": "off"}
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        command = [str(Path(sys.executable).with_name("gunicorn")), "-w", str(WORKERS)]
        command += ["-b", f"127.0.0.1:{port}", "bot:create_app()"]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/healthz", log_path)
        yield port
    finally:
        stop(proc)


@pytest.fixture
def nginx(nginx_binary: Path, gunicorn: int, tmp_path: Path) -> Iterator[int]:
    """nginx with the README block in front of the gunicorn fixture; yields its (TLS) port."""
    tmp = tmp_path / "nginx"
    tmp.mkdir()
    port = free_port()
    cert, key = self_signed(tmp)
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, local_config(readme_block(), gunicorn, port, cert, key)))
    log_path = tmp / "error.log"
    command = [str(nginx_binary), "-p", str(tmp), "-c", str(conf), "-e", str(log_path)]
    proc = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_until_up(proc, f"https://127.0.0.1:{port}/healthz", log_path)
        yield port
    finally:
        stop(proc)


class SlowPosts:
    """Connections that each send a callback's header at once, then its envelope a byte at a
    time (one byte per connection every TRICKLE seconds) until finish() or close(). Their
    signature is wrong: a completed one is refused by gridwatch (403) and stores nothing."""

    OPEN = b"<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA["
    CLOSE = b"]]></Encrypt></xml>"

    def __init__(self, port: int, count: int, tls: bool, trickled: int = 600) -> None:
        self.trickled = trickled
        self.socks: list[socket.socket] = []
        self.sent: list[int] = []
        self.stopping = threading.Event()
        self.turn = threading.Lock()  # an SSL socket is used by one thread at a time
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()
        head = (
            "POST /wechat?msg_signature=0&timestamp=1&nonce=2 HTTP/1.1\r\n"
            f"Host: {DOMAIN}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(self.OPEN) + trickled + len(self.CLOSE)}\r\n\r\n"
        )
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                if tls:
                    sock = tls_context().wrap_socket(sock, server_hostname=DOMAIN)
                sock.sendall(head.encode())
                with self.turn:
                    self.socks.append(sock)
                    self.sent.append(0)
        except BaseException:
            self.close()
            raise

    def _trickle(self) -> None:
        while not self.stopping.wait(TRICKLE):
            with self.turn:
                for i, sock in enumerate(self.socks):
                    if self.sent[i] < len(self.OPEN) + self.trickled:
                        try:
                            sock.sendall(self.body(i, 1))
                        except OSError:
                            continue
                        self.sent[i] += 1

    def body(self, i: int, count: int) -> bytes:
        """The next count bytes of connection i's body."""
        whole = self.OPEN + b"A" * self.trickled + self.CLOSE
        return whole[self.sent[i] : self.sent[i] + count]

    def pending(self) -> int:
        """How many connections are still open with no answer yet."""
        waiting = 0
        with self.turn:
            for sock in self.socks:
                sock.setblocking(False)
                try:
                    sock.recv(1)  # an answer, or the end of the connection
                except (ssl.SSLWantReadError, BlockingIOError):
                    waiting += 1
                finally:
                    sock.settimeout(5)
        return waiting

    def finish(self) -> list[bytes]:
        """Send the rest of every body; return each answer's status line."""
        self.stopping.set()
        self.thread.join(timeout=5)
        lines = []
        for i, sock in enumerate(self.socks):
            sock.sendall(self.body(i, len(self.OPEN) + self.trickled + len(self.CLOSE)))
            lines.append(sock.makefile("rb").readline())
        return lines

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for sock in self.socks:
            sock.close()


@pytest.fixture
def slow_posts() -> Iterator[Callable[..., SlowPosts]]:
    opened: list[SlowPosts] = []

    def open_(port: int, count: int = SLOW, tls: bool = False) -> SlowPosts:
        opened.append(SlowPosts(port, count, tls))
        return opened[-1]

    yield open_
    for posts in opened:
        posts.close()


def callback(base: str, msg_id: int, timeout: float) -> str:
    """Post a real encrypted report from 梁红; return the decrypted reply's text."""
    xml = inner_xml(
        "lianghong", "text", "<Content><![CDATA[张三 36.5 正常]]></Content>", msg_id, CREATED
    )
    query, body = wecom_request(WORK, xml)
    request = urllib.request.Request(
        f"{base}/wechat?{urllib.parse.urlencode(query)}", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout, context=tls_context()) as answer:
        assert answer.status == 200
        return open_reply(WORK, answer.read().decode()).findtext("Content")


def stored(db_path: Path) -> int:
    with sqlite_utils.Database(db_path) as database:
        return database.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]


def test_slow_clients_through_nginx_leave_callbacks_answered(
    nginx: int, slow_posts: Callable[..., SlowPosts], db_path: Path, tmp_path: Path
) -> None:
    base = f"https://127.0.0.1:{nginx}"
    slow = slow_posts(nginx, tls=True)
    time.sleep(1)  # every slow connection has sent its header and a few bytes of body
    # WeChat waits 5 s for an answer; the same message twice (WeChat's retry) is stored once
    replies = [callback(base, 515151, timeout=5) for _ in range(2)]
    assert replies[0] == replies[1] and "已记录（3月2日早）" in replies[0]
    assert stored(db_path) == 1
    assert slow.pending() == SLOW  # all still trickling, held by nginx
    # completed, each reaches gridwatch and is refused there (a bad signature), storing nothing
    assert {line.split()[1] for line in slow.finish()} == {b"403"}
    assert stored(db_path) == 1
    assert "temporary file" not in (tmp_path / "nginx" / "error.log").read_text()


def test_slow_clients_straight_at_gunicorn_stall_it(
    gunicorn: int, slow_posts: Callable[..., SlowPosts], db_path: Path
) -> None:
    base = f"http://127.0.0.1:{gunicorn}"
    slow = slow_posts(gunicorn, count=WORKERS)  # each worker takes one, the callback waits
    time.sleep(1)
    with pytest.raises(TimeoutError):
        callback(base, 616161, timeout=2)
    slow.close()  # each worker reads the end of its slow body and is free again
    assert "已记录" in callback(base, 626262, timeout=10)


@pytest.mark.parametrize(("length", "status"), [(MAX_BODY, 403), (MAX_BODY + 1, 413)])
def test_nginx_refuses_what_gridwatch_refuses_and_keeps_the_rest_in_memory(
    nginx: int, tmp_path: Path, length: int, status: int
) -> None:
    """A callback of MAX_BODY bytes reaches gridwatch (refused there: a bad signature); one
    byte more is refused by nginx; neither is written to disk."""
    pad = b"A" * (length - len(SlowPosts.OPEN) - len(SlowPosts.CLOSE))
    request = urllib.request.Request(
        f"https://127.0.0.1:{nginx}/wechat?msg_signature=0&timestamp=1&nonce=2",
        data=SlowPosts.OPEN + pad + SlowPosts.CLOSE,
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=tls_context())
    with refused.value:
        assert refused.value.code == status
        assert (b"nginx" in refused.value.read()) == (status == 413)
    assert "temporary file" not in (tmp_path / "nginx" / "error.log").read_text()
