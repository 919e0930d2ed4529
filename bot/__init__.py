"""gridwatch's web side: `create_app()` is the WSGI entry point."""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from gridwatch.toml/env, then the mapping given (tests pass db paths)."""
    from bot.web import app as web

    return web.build_app(config)
