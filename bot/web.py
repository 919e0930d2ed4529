"""The Flask app: configuration, the database per request, blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify

from bot.config import load_config
from bot.context import Context
from storage.db import default_db_path, open_db


def build_app(overrides: dict[str, Any] | None = None) -> Flask:
    overrides = overrides or {}
    app = Flask(__name__)
    app.config["GRIDWATCH"] = overrides.get("GRIDWATCH") or load_config(
        overrides.get("CONFIG_PATH")
    )
    app.config["DB_PATH"] = overrides.get("DB_PATH") or default_db_path()
    app.config.update({k: v for k, v in overrides.items() if k not in ("GRIDWATCH", "DB_PATH")})
    app.config.setdefault("SCHEDULER", True)
    open_db(app.config["DB_PATH"]).conn.close()  # migrate once at start
    # blueprints: each area registers itself here

    @app.get("/healthz")
    def healthz() -> Any:
        get_context().db.execute("SELECT 1")
        return jsonify(status="ok")

    @app.teardown_appcontext
    def close_db(_error: BaseException | None) -> None:
        context = g.pop("gridwatch", None)
        if context is not None:
            context.db.conn.close()

    return app


def get_context() -> Context:
    """The request's database connection and settings."""
    from flask import current_app

    if "gridwatch" not in g:
        g.gridwatch = Context(
            db=open_db(current_app.config["DB_PATH"]),
            config=current_app.config["GRIDWATCH"],
            db_path=current_app.config["DB_PATH"],
        )
    return g.gridwatch
