"""Log records stamped in the configured zone's local time (GRIDWATCH_TZ, `timezone`), not the
machine's: a server in a container runs on UTC, and a cadre reading "08:00 prompt sent" must
not have to add eight hours. gunicorn's access log keeps its own format, with the signed
tokens of page links left out: a link is a credential for days, a log is read by many."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from gunicorn.glogging import Logger


class ZoneFormatter(logging.Formatter):
    """`%(asctime)s` in `tz`."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, *, tz: dt.tzinfo):
        super().__init__(fmt, datefmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = dt.datetime.fromtimestamp(record.created, self.tz)
        if datefmt:
            return when.strftime(datefmt)
        return f"{when:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d}"


def configured_zone() -> dt.tzinfo:
    """The zone of gridwatch's settings (env, config file), else the default one."""
    from bot.config import Config, ConfigError, load_config

    try:
        return load_config().tz
    except ConfigError:
        return Config().tz


# /me/<token>, /view/<token>/…, /review/<token>: the signed part of a page's path
_TOKEN_PATH = re.compile(r"(/(?:me|view|review)/)[^/?#\s\"]+")


def redact_tokens(text: str) -> str:
    """A request line, path or referer with each page token replaced by [token]."""
    return _TOKEN_PATH.sub(r"\1[token]", text)


class ZoneLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, its error log in the zone; gridwatch's own records (the schedule,
    the pipeline, background work) go to the same place, formatted alike. `tz` None: the
    zone of the settings (gunicorn started on its own, ./gunicorn.conf.py)."""

    tz: dt.tzinfo | None = None

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        """The access log's fields, page tokens left out of the request line, path and
        referer."""
        found = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f"):
            if isinstance(found.get(key), str):
                found[key] = redact_tokens(found[key])
        return found

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        tz = self.tz or configured_zone()
        root = logging.getLogger()
        for handler in list(root.handlers):  # from a previous setup (a config reload)
            if getattr(handler, "_gridwatch", False):
                root.removeHandler(handler)
        for handler in self.error_log.handlers:
            old = handler.formatter or logging.Formatter(self.error_fmt, self.datefmt)
            handler.setFormatter(ZoneFormatter(old._fmt, old.datefmt, tz=tz))
            if getattr(handler, "_gunicorn", False):  # the error log's stream or file
                handler._gridwatch = True  # type: ignore[attr-defined]
                root.addHandler(handler)
        root.setLevel(self.loglevel)
        logging.getLogger("apscheduler").setLevel(max(self.loglevel, logging.WARNING))


def zone_logger(tz: dt.tzinfo) -> type[ZoneLogger]:
    """A ZoneLogger class for `tz` (gunicorn's `logger_class` setting takes a class)."""
    return type("ZoneLogger", (ZoneLogger,), {"tz": tz})
