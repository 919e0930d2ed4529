"""Read by gunicorn when started from here (`gunicorn 'bot:create_app()'`)."""

from bot.serving import settle_worker


def post_worker_init(worker: object) -> None:
    settle_worker(worker)
