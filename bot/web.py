"""The Flask app: configuration, one database connection per serving thread, blueprints."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import sqlite_utils
from flask import Flask, g, jsonify

from bot.config import load_config
from bot.context import Context
from storage.checkpoint import serving_connection, start_checkpointer
from storage.db import connect, default_db_path, open_db


class ConnectionPool:
    """One connection per thread, reused across requests (opening one costs more than a
    request's queries); the schema was migrated once when the app was built."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[sqlite_utils.Database] = []

    def get(self) -> sqlite_utils.Database:
        db = getattr(self.local, "db", None)
        if db is None:
            db = connect(self.path)
            serving_connection(db.conn)
            self.local.db = db
            with self.lock:
                self.opened.append(db)
        return db

    def close_all(self) -> None:
        with self.lock:
            for db in self.opened:
                db.conn.close()
            self.opened.clear()
        self.local = threading.local()


def build_app(overrides: dict[str, Any] | None = None) -> Flask:
    overrides = overrides or {}
    # a thread holding the database write lock needs the GIL between statements; the default
    # 5 ms switch interval lets request threads starve it and every other writer waits
    sys.setswitchinterval(0.001)
    app = Flask(__name__)
    app.config["GRIDWATCH"] = overrides.get("GRIDWATCH") or load_config(
        overrides.get("CONFIG_PATH")
    )
    app.config["DB_PATH"] = overrides.get("DB_PATH") or default_db_path()
    app.config.update({k: v for k, v in overrides.items() if k not in ("GRIDWATCH", "DB_PATH")})
    # the live schedule runs unless told not to (GRIDWATCH_SCHEDULER=off for extra web nodes)
    app.config.setdefault(
        "SCHEDULER", os.environ.get("GRIDWATCH_SCHEDULER", "on").lower() not in ("off", "0", "no")
    )
    open_db(app.config["DB_PATH"]).conn.close()  # migrate once at start
    app.extensions["gridwatch_pool"] = ConnectionPool(str(app.config["DB_PATH"]))
    if str(app.config["DB_PATH"]) != ":memory:":
        app.extensions["gridwatch_checkpointer"] = start_checkpointer(str(app.config["DB_PATH"]))
    # blueprints: each area registers itself here
    from bot import sim, views

    app.register_blueprint(sim.bp)
    app.register_blueprint(views.bp)
    from bot.wechat import CallbackRoute
    from bot.wechat import bp as wechat_bp

    app.register_blueprint(wechat_bp)
    app.wsgi_app = CallbackRoute(app, app.wsgi_app)  # type: ignore[method-assign]

    if app.config["SCHEDULER"]:
        from schedules.wiring import start_scheduler

        # every worker process tries; the one holding the lock file runs the schedule
        app.extensions["gridwatch_scheduler"] = start_scheduler(
            app.config["DB_PATH"], app.config["GRIDWATCH"]
        )

    @app.get("/healthz")
    def healthz() -> Any:
        get_context().db.execute("SELECT 1")
        return jsonify(status="ok")

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
