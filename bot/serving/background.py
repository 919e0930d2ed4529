"""What a serving deployment does besides answering requests: the schedule (jobs, delivery,
messages stored but never handled) and the WAL checkpoints.

It starts in a serving process after any fork, never in the app factory: gunicorn's
`post_worker_init` hook starts it (`./gunicorn.conf.py`, and `gridwatch serve`), and a
process started without that hook starts it at its first request. Every serving process
starts it; exactly one runs each part, the holder of a lock file next to the database
(`<db>.scheduler.lock`, `<db>-checkpoint.lock`). The others try again every second, so when
the holder dies (a worker killed, restarted) another takes over. Under Litestream
(GRIDWATCH_CHECKPOINT, storage.db.checkpoint_mode) there is no checkpoint thread: Litestream
checkpoints, after it has copied the frames to its replica.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from storage.checkpoint import Checkpointer
from storage.db import checkpoint_mode

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from flask import Flask

log = logging.getLogger("gridwatch.background")
KEY = "gridwatch_background"


class Background:
    """The background work of one serving process (started once, after the fork)."""

    def __init__(self, app: Flask) -> None:
        self.db_path = str(app.config["DB_PATH"])
        self.config = app.config["GRIDWATCH"]
        self.schedule = bool(app.config["SCHEDULER"])
        self.pid = os.getpid()
        self.stopping = threading.Event()
        self.checkpointer: Checkpointer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.candidate: threading.Thread | None = None

    def start(self) -> None:
        if self.db_path == ":memory:":
            return
        if checkpoint_mode(self.db_path) == "litestream":
            log.info("Litestream checkpoints %s: no checkpoint thread here", self.db_path)
        else:
            self.checkpointer = Checkpointer(self.db_path)
            self.checkpointer.start()
        if self.schedule:
            self.candidate = threading.Thread(
                target=self._run_schedule, name="schedule-candidate", daemon=True
            )
            self.candidate.start()

    def _run_schedule(self) -> None:
        from schedules.wiring import start_scheduler, stop_scheduler

        try:
            scheduler = start_scheduler(self.db_path, self.config, wait=self.stopping)
        except Exception:
            log.exception("the schedule of %s could not start", self.db_path)
            return
        if scheduler is None:  # stopped before the lock was free
            return
        log.info("this process (pid %s) runs the schedule of %s", os.getpid(), self.db_path)
        self.scheduler = scheduler
        if self.stopping.is_set():  # stop() ran while the scheduler was starting
            stop_scheduler(scheduler, wait=False)

    def stop(self) -> None:
        """Stop every part and release the locks (the process is exiting)."""
        from schedules.wiring import stop_scheduler

        self.stopping.set()
        if self.scheduler is not None:
            from schedules.review import stop_job_workers

            stop_scheduler(self.scheduler, wait=False)
            self.scheduler = None
            stop_job_workers()  # a Monday pack's processes must not hold the exit up
        if self.checkpointer is not None:
            self.checkpointer.stop()


def start_background(app: Flask) -> Background:
    """Start this process's background work once (again in a forked child), and set it up
    for serving."""
    with _starting:
        running = app.extensions.get(KEY)
        if running is not None and running.pid == os.getpid():
            return running
        # a thread holding the database write lock needs the GIL between statements; the
        # default 5 ms switch interval lets request threads starve it and every writer waits
        sys.setswitchinterval(0.001)
        background = Background(app)
        app.extensions[KEY] = background
        background.start()
        return background


def stop_background(app: Flask) -> None:
    background = app.extensions.get(KEY)
    if background is not None and background.pid == os.getpid():
        background.stop()


_starting = threading.Lock()


class StartsBackground:
    """The outermost WSGI layer: a process that was not started through gunicorn's hook
    (a bare `gunicorn 'bot:create_app()'` run elsewhere) starts its background work at its
    first request."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.pid = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            start_background(self.app)
        return self.wsgi_app(environ, start_response)
