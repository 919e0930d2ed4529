"""Read by gunicorn started in the checkout (`gunicorn -w 2 'bot:create_app()'`); elsewhere
give `-c python:bot.serving.gunicorn_hooks`, the same settings."""

from bot.serving.gunicorn_hooks import *  # noqa: F403
from bot.serving.gunicorn_hooks import __all__  # noqa: F401
