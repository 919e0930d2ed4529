"""gunicorn's hooks for gridwatch, as a module: `gunicorn -c python:bot.serving.gunicorn_hooks …`
works from any folder (./gunicorn.conf.py, read when gunicorn starts in the checkout, holds
the same). Each worker starts its background work after the fork and stops it as it exits."""

from bot.serving.server import settle_worker, worker_exit

__all__ = ["control_socket_disable", "logger_class", "post_worker_init", "worker_exit"]

# log times in the configured zone (GRIDWATCH_TZ or the config file), bot/logs.py
logger_class = "bot.logs.ZoneLogger"
# gunicorn 23+ opens a management socket at one path per user (~/.gunicorn/gunicorn.ctl):
# two servers of that user would share it, and nothing here needs it
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    settle_worker(worker)
