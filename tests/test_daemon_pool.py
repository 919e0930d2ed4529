"""The reply runner's daemon threads: they run what is submitted and never hold up an exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from bot.wechat.daemon_pool import DaemonPool


def test_tasks_run_and_shutdown_waits_for_what_was_queued() -> None:
    pool = DaemonPool(2, "test")
    done: list[int] = []
    lock = threading.Lock()

    def task(n: int) -> None:
        with lock:
            done.append(n)

    for n in range(20):
        pool.submit(task, n)
    pool.shutdown(wait=True)
    assert sorted(done) == list(range(20))
    with pytest.raises(RuntimeError):
        pool.submit(task, 99)


def test_a_failing_task_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = DaemonPool(1, "test")
    after: list[str] = []
    pool.submit(lambda: 1 / 0)
    pool.submit(after.append, "ran")
    pool.shutdown(wait=True)
    assert after == ["ran"] and "a background task failed" in caplog.text


def test_a_task_stuck_on_a_slow_api_does_not_keep_the_process_alive() -> None:
    script = textwrap.dedent(
        """
        import threading, time
        from bot.wechat.daemon_pool import DaemonPool
        pool = DaemonPool(2, "stuck")
        started = threading.Event()
        pool.submit(lambda: (started.set(), time.sleep(60)))
        started.wait(10)
        print("exiting", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.strip() == "exiting"
