"""Read by gunicorn when started here (`gunicorn -w 2 'bot:create_app()'`), or given with
`-c /path/to/gunicorn.conf.py`: each worker starts its background work after the fork (one
of them runs the schedule) and stops it as it exits."""

from bot.serving import settle_worker, worker_exit

__all__ = ["post_worker_init", "worker_exit"]


def post_worker_init(worker: object) -> None:
    settle_worker(worker)
