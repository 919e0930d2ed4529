"""gunicorn's hooks: a gridwatch worker starts its background work after the fork and stops
it as it exits; any other app served with the same hooks is left alone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask

from bot.config import Config
from bot.serving.server import GC_THRESHOLDS, settle_worker, worker_exit
from tests.fake_wechat import make_app


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """settle_worker freezes and retunes the garbage collector of the whole process."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_gridwatch_worker_starts_and_stops_its_background(db_path: Path, config: Config) -> None:
    app = make_app(db_path, config)
    worker = SimpleNamespace(wsgi=app)
    try:
        settle_worker(worker)
        background = app.extensions["gridwatch_background"]
        assert background.checkpointer.is_alive()
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        worker_exit(None, worker)
        app.extensions["gridwatch_pool"].close_all()
    assert background.stopping.is_set() and not background.checkpointer.is_alive()


def test_another_app_under_the_same_hooks_is_left_alone() -> None:
    hello = Flask("hello")
    worker = SimpleNamespace(wsgi=hello)
    settle_worker(worker)
    worker_exit(None, worker)
    assert "gridwatch_background" not in hello.extensions


WARM_CHECK = """
import sys
from types import SimpleNamespace
from bot import create_app
from bot.serving.server import settle_worker, worker_exit

app = create_app()
before = "wechatpy.enterprise.crypto" in sys.modules
worker = SimpleNamespace(wsgi=app)
settle_worker(worker)
after = "wechatpy.enterprise.crypto" in sys.modules
worker_exit(None, worker)
print(before, after)
"""


def test_a_worker_loads_the_wechat_layer_before_its_first_message(tmp_path: Path) -> None:
    """A fresh worker took ~0.3 s of imports with its first message, holding every thread
    of it: under a burst the first second of callbacks waited (bench.province)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GRIDWATCH_", "WECHAT_"))},
        "GRIDWATCH_DB": str(tmp_path / "warm.db"),
        "GRIDWATCH_CHANNEL": "work",
        "GRIDWATCH_SCHEDULER": "off",
        "WECHAT_TOKEN": "t",
        "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "WECHAT_CORP_ID": "wwwarm",
        "WECHAT_AGENT_ID": "1000002",
        "WECHAT_SECRET": "s",
    }
    done = subprocess.run(
        [sys.executable, "-c", WARM_CHECK], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]
