"""What every command shares: --db and --config, time and date options, JSON output."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import click

from bot.clock import now as clock_now
from bot.clock import parse_day, parse_time
from bot.config import ConfigError, load_config
from bot.context import Context
from storage.db import default_db_path, open_db


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--db and --config on every command; the wrapped function receives a Context."""

    @click.option(
        "--db", "db_path", metavar="PATH", help="SQLite file (GRIDWATCH_DB, ./gridwatch.db)."
    )
    @click.option(
        "--config", "config_path", metavar="FILE", help="TOML settings (GRIDWATCH_CONFIG)."
    )
    @functools.wraps(command)
    def wrapper(db_path: str | None, config_path: str | None, **kwargs: Any) -> Any:
        try:
            config = load_config(config_path)
        except ConfigError as error:
            raise click.ClickException(f"config: {error}") from None
        path = db_path or default_db_path()
        try:
            db = open_db(path)
        except sqlite3.Error as error:
            raise click.ClickException(_database_problem(path, error)) from None
        ctx = Context(db=db, config=config, db_path=path)
        try:
            return command(ctx, **kwargs)
        except sqlite3.Error as error:  # a read-only or full disk, a damaged file: say so plainly
            raise click.ClickException(_database_problem(path, error)) from None
        finally:
            ctx.db.conn.close()

    return wrapper


def _database_problem(path: str, error: sqlite3.Error) -> str:
    text = str(error)
    folder = os.path.dirname(os.path.abspath(path))
    read_only = not os.access(folder, os.W_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    )
    if "readonly" in text or read_only:
        return f"database {path} is read-only (只读): {text}; check the file's permissions"
    if "full" in text:
        return f"database {path}: the disk is full (磁盘已满): {text}"
    return f"database {path}: {text}"


def time_option(value: str | None, ctx: Context) -> dt.datetime:
    return at_option(value, ctx.config.tz)


def at_option(value: str | None, tz: dt.tzinfo) -> dt.datetime:
    """An --at / --since time in the configured zone; now when not given."""
    if value is None:
        return clock_now(tz)
    try:
        return parse_time(value, tz)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO time like 2026-03-02T08:30", param_hint="--at"
        ) from None


def day_option(value: str | None, ctx: Context) -> dt.date:
    if value is None:
        return clock_now(ctx.config.tz).date()
    try:
        return parse_day(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-03-02") from None


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=None))
