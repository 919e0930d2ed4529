"""Read by gunicorn started in the checkout (`gunicorn -w 2 'bot:create_app()'`); elsewhere
give `-c python:bot.gunicorn_hooks`, the same hooks."""

from bot.gunicorn_hooks import logger_class, post_worker_init, worker_exit

__all__ = ["logger_class", "post_worker_init", "worker_exit"]
