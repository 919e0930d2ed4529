"""A small pool of daemon threads: work that a process told to stop need not wait for.

concurrent.futures' pools join their threads when the interpreter exits, so a thread stuck
on a slow WeChat API keeps a gunicorn worker alive after SIGTERM until it is killed. What
these threads do is safe to drop at exit: a message handed off is either not stored yet
(WeChat sends it again), or stored and handled later by the schedule's recovery; an alert
or a late reply is queued in the outbox, and the delivery round sends it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class DaemonPool:
    def __init__(self, workers: int, name: str) -> None:
        self.tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple] | None] = queue.SimpleQueue()
        self.closed = False
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True)
            for n in range(workers)
        ]
        self.started = False

    def submit(self, task: Callable[..., Any], *args: Any) -> None:
        """Queue `task(*args)`; RuntimeError once the pool is shut down (as concurrent.futures)."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the pool is shut down")
            if not self.started:  # threads start with the first task, after any fork
                for thread in self.threads:
                    thread.start()
                self.started = True
            self.tasks.put((task, args))

    def shutdown(self, wait: bool = True) -> None:
        """No more tasks; with `wait`, run what is queued and join the threads."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for _ in self.threads:
                self.tasks.put(None)
        if wait and self.started:
            for thread in self.threads:
                thread.join()

    def _work(self) -> None:
        while (item := self.tasks.get()) is not None:
            task, args = item
            try:
                task(*args)
            except Exception:  # the tasks log their own failures; this is a last resort
                log.exception("a background task failed")
