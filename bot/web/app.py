"""The Flask app: configuration, one database connection per serving thread, blueprints.

Building it has no side effect (gunicorn may fork after it): no thread, no lock, no file
opened. The schema is brought up to date by the first connection a process opens, and the
background work (bot/serving/background.py) starts after the fork."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify

from bot.config import load_config
from bot.context import Context
from bot.serving.background import StartsBackground
from storage.db import default_db_path
from storage.pool import ConnectionPool


def build_app(overrides: dict[str, Any] | None = None) -> Flask:
    overrides = overrides or {}
    app = Flask(__name__)
    app.config["GRIDWATCH"] = overrides.get("GRIDWATCH") or load_config(
        overrides.get("CONFIG_PATH")
    )
    app.config["DB_PATH"] = overrides.get("DB_PATH") or default_db_path()
    # the largest form a page posts is a few hundred bytes; a bigger body gets 413 unread
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config.update({k: v for k, v in overrides.items() if k not in ("GRIDWATCH", "DB_PATH")})
    # the live schedule runs unless told not to (GRIDWATCH_SCHEDULER=off for extra web nodes)
    app.config.setdefault(
        "SCHEDULER", os.environ.get("GRIDWATCH_SCHEDULER", "on").lower() not in ("off", "0", "no")
    )
    app.extensions["gridwatch_pool"] = ConnectionPool(str(app.config["DB_PATH"]))
    # blueprints: each area registers itself here
    from bot.web import home, member, review, sim, views

    app.register_blueprint(home.bp)
    app.register_blueprint(member.bp)
    app.register_blueprint(sim.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(review.bp)
    from bot.wechat.callback import CallbackRoute
    from bot.wechat.callback import bp as wechat_bp

    app.register_blueprint(wechat_bp)
    app.wsgi_app = CallbackRoute(app, app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = StartsBackground(app, app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> Any:
        from bot.clock import now as clock_now
        from bot.web.health import check

        ctx = get_context()
        ok, report = check(
            ctx.db, app.config["DB_PATH"], app.config["SCHEDULER"], clock_now(ctx.config.tz)
        )
        return jsonify(report), 200 if ok else 503

    @app.teardown_appcontext
    def release_db(_error: BaseException | None) -> None:
        context = g.pop("gridwatch", None)
        if context is not None and context.db.conn.in_transaction:
            context.db.conn.rollback()

    return app


def get_context() -> Context:
    """The request's database connection and settings."""
    from flask import current_app

    if "gridwatch" not in g:
        g.gridwatch = Context(
            db=current_app.extensions["gridwatch_pool"].get(),
            config=current_app.config["GRIDWATCH"],
            db_path=current_app.config["DB_PATH"],
        )
    return g.gridwatch
