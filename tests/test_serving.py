"""gunicorn's hooks: a gridwatch worker starts its background work after the fork and stops
it as it exits; any other app served with the same hooks is left alone."""

from __future__ import annotations

import gc
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
