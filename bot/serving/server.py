"""`gridwatch serve`: the WSGI app under an embedded gunicorn, one worker process; and how a
serving process settles once its app is loaded and what it stops as it exits (also
./gunicorn.conf.py's hooks)."""

from __future__ import annotations

import gc
import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

log = logging.getLogger("gridwatch.serving")


class _Embedded(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # a setting this gunicorn does not have is left out
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


# Collect the young generation every 10,000 allocations, the oldest rarely: a full collection
# walks every cached roster row (~100 ms for a county, measured by `make bench`), and the
# message that waits for it is the p99.
GC_THRESHOLDS = (10_000, 50, 100)


def settle_worker(worker: object = None) -> None:
    """After the app is loaded in a serving process (after the fork): start its background
    work; what exists now (modules, the app) lives as long as the process, so collections
    stop walking it; and collect old objects rarely."""
    app = getattr(worker, "wsgi", None)
    if _is_gridwatch(app):
        from bot.serving.background import start_background

        start_background(app)
        _warm_up(app)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _warm_up(app: Flask) -> None:
    """Load now what a fresh worker's first message would: imports (the WeChat layer alone
    ~0.3 s) and the parser's tables. Left to the first message, they held every thread of
    a worker started before a burst: a province's morning answered its first second of
    callbacks ~1 s late (bench.province)."""
    import datetime as dt

    from bot.wechat.crypto import warm_up
    from handlers.parser import parse_reply

    config = app.config["GRIDWATCH"]
    try:
        if config.channel.kind != "console":  # the console needs no WeChat layer (~14 MB)
            warm_up(config.channel)
    except Exception:  # a warm-up never keeps a worker from serving: the message will say
        log.exception("warming the WeChat layer up failed")
    at = dt.datetime(2026, 3, 2, 8, 40, tzinfo=config.tz)  # any moment: only the tables load
    parse_reply("张三 36.5 正常，李四 37.8 咳嗽", ("张三", "李四"), at, others=("王五",))


def worker_exit(_server: object, worker: object) -> None:
    """A serving process is exiting: its background work stops and gives up its locks."""
    app = getattr(worker, "wsgi", None)
    if _is_gridwatch(app):
        from bot.serving.background import stop_background

        stop_background(app)


def _is_gridwatch(app: object) -> bool:
    """The hooks also serve other apps under the same gunicorn settings (the bench's hello)."""
    return isinstance(app, Flask) and "gridwatch_pool" in app.extensions


def serve(app: Flask, host: str = "127.0.0.1", port: int = 5000, threads: int = 8) -> None:
    """Serve until interrupted: one worker, several threads (SQLite serialises the writes);
    log times in the app's configured zone."""
    from bot.logs import zone_logger

    _Embedded(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 5,
            "accesslog": "-",
            "loglevel": "info",
            "logger_class": zone_logger(app.config["GRIDWATCH"].tz),
            "post_worker_init": settle_worker,
            "worker_exit": worker_exit,
            "control_socket_disable": True,  # see bot.serving.gunicorn_hooks
        },
    ).run()
