"""Settings: embedded defaults, then gridwatch.toml, then environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# hours a problem (需求) of each kind may stay open at one level before it moves up (§11)
from storage.needs import DUE_HOURS as DEFAULT_PROBLEM_DUE
from storage.needs import NEED_KINDS
from storage.outbox import KINDS as OUTBOX_KINDS

SLOTS = ("morning", "noon", "evening")
SLOT_NAMES = {"morning": "早", "noon": "中", "evening": "晚"}
DEFAULT_CATEGORIES = ("涉鄂人员", "外地返回人员", "疑似症状人员", "暂缓返回人员")
CHANNELS = ("console", "mp", "work")
# the key every copy of gridwatch once signed links with: public, so never accepted
OLD_DEFAULT_KEY = "gridwatch-dev-secret-change-me"
MIN_KEY_LENGTH = 16


class ConfigError(Exception):
    "A setting is missing or invalid; the message names the key."


@dataclass(frozen=True)
class SlotTimes:
    prompt: time
    reminder: time
    deadline: time


@dataclass(frozen=True)
class Template:
    """An Official Account template (DESIGN §5): its id and the keys of its three fields."""

    id: str
    title: str = "thing1"
    time: str = "time2"
    summary: str = "thing3"


TEMPLATE_FIELDS = ("title", "time", "summary")
# the outbox kinds a template can be configured for: every kind but the passive reply
TEMPLATE_KINDS = tuple(kind for kind in OUTBOX_KINDS if kind != "reply")
_FIELD_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


@dataclass(frozen=True)
class ChannelSettings:
    kind: str = "console"
    token: str = ""
    aes_key: str = ""
    app_id: str = ""
    corp_id: str = ""
    agent_id: str = ""
    secret: str = ""
    api_base: str = ""
    # mp: the template per outbound kind (prompt, reminder, digest, ...) for scheduled sends
    templates: Mapping[str, Template | str] = field(default_factory=dict)

    def template(self, kind: str) -> Template | None:
        """The template configured for an outbox kind (a bare id: the default field keys)."""
        found = self.templates.get(kind)
        return Template(found) if isinstance(found, str) else found


@dataclass(frozen=True)
class Supervision:
    """Thresholds of the 请核实 flags and the weekly pack (DESIGN §11), `[supervision]`."""

    copy_paste_slots: int = 3  # the same report text on this many slots
    copy_paste_readings: int = 2  # ...carrying at least this many temperatures
    copy_paste_repeats: int = 9  # ...and readings × (slots − 1) at least this (chance repeats)
    flat_slots: int = 3  # all subjects at one temperature this many slots running
    flat_repeats: int = 6  # ...with this many equal readings beyond each slot's first
    burst_seconds: int = 90  # the whole list reported within this long after the prompt
    burst_days: int = 3  # ...on this many days
    before_prompt_minutes: int = 30  # a report at least this long before its slot's prompt
    before_prompt_slots: int = 2  # ...on this many slots
    cover_share: float = 0.5  # more than this share of a member's subject-slots by others
    cover_min_slots: int = 6  # ...counted over at least this many reported subject-slots
    flags_at: time = time(20, 45)  # the daily flag note to monitors
    review_weekday: int = 1  # the weekly pack: Monday (1) …
    review_at: time = time(9, 0)  # … at 09:00


@dataclass(frozen=True)
class Config:
    timezone: str = "Asia/Shanghai"
    fever_threshold: float = 37.3
    period_days: int = 14
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    grace_minutes: int = 60
    link_days: int = 7
    retention_days: int = 30  # personal data kept after a monitoring period ends (DESIGN §6)
    escalate_after: int = 30  # minutes an alert may go unacknowledged before it goes up (§11)
    problem_due_hours: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PROBLEM_DUE))
    public_url: str = "http://127.0.0.1:5000"
    public_url_set: bool = False  # given (config, GRIDWATCH_PUBLIC_URL): prompts carry links
    secret_key: str = ""  # none: the key kept with the database signs links (bot/links.py)
    slots: Mapping[str, SlotTimes] = field(
        default_factory=lambda: {
            "morning": SlotTimes(time(8, 0), time(9, 30), time(10, 0)),
            "noon": SlotTimes(time(12, 0), time(13, 30), time(14, 0)),
            "evening": SlotTimes(time(18, 0), time(19, 30), time(20, 0)),
        }
    )
    reports: tuple[time, time] = (time(10, 30), time(20, 30))
    release: time = time(0, 5)
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    supervision: Supervision = field(default_factory=Supervision)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


ENV_KEYS = {
    "GRIDWATCH_CHANNEL": ("channel", "kind"),
    "WECHAT_TOKEN": ("channel", "token"),
    "WECHAT_AES_KEY": ("channel", "aes_key"),
    "WECHAT_APP_ID": ("channel", "app_id"),
    "WECHAT_CORP_ID": ("channel", "corp_id"),
    "WECHAT_AGENT_ID": ("channel", "agent_id"),
    "WECHAT_SECRET": ("channel", "secret"),
    "WECHAT_API_BASE": ("channel", "api_base"),
    "GRIDWATCH_TZ": (None, "timezone"),
    "GRIDWATCH_PUBLIC_URL": (None, "public_url"),
    "GRIDWATCH_SECRET_KEY": (None, "secret_key"),
}

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _time(key: str, value: Any) -> time:
    if isinstance(value, time):
        return value
    match = _HHMM.match(str(value))
    if not match:
        raise ConfigError(f"{key}: expected a time like 08:00, got {value!r}")
    return time(int(match[1]), int(match[2]))


def _number(key: str, value: Any, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigError(f"{key}: {value!r} is out of range {low}–{high}")
    return number


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str | int):
        raise ConfigError(f"{key}: expected text, got {value!r}")
    return str(value)


def _check_keys(section: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            where = f"{section}.{key}" if section else key
            raise ConfigError(f"{where}: unknown setting")


def _slots(data: Mapping[str, Any], defaults: Mapping[str, SlotTimes]) -> dict[str, SlotTimes]:
    _check_keys("schedule", data, set(SLOTS) | {"reports", "release"})
    slots = dict(defaults)
    for slot in SLOTS:
        given = data.get(slot, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"schedule.{slot}: expected a table with prompt, reminder, deadline")
        _check_keys(f"schedule.{slot}", given, {"prompt", "reminder", "deadline"})
        base = defaults[slot]
        times = SlotTimes(
            *(
                _time(f"schedule.{slot}.{part}", given.get(part, getattr(base, part)))
                for part in ("prompt", "reminder", "deadline")
            )
        )
        if not times.prompt <= times.reminder <= times.deadline:
            raise ConfigError(f"schedule.{slot}: prompt <= reminder <= deadline is required")
        slots[slot] = times
    return slots


def _template(kind: str, value: Any) -> Template:
    key = f"channel.templates.{kind}"
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"{key}: the template id is empty")
        return Template(value.strip())
    if not isinstance(value, Mapping):
        raise ConfigError(
            f'{key}: expected a template id ("TPL_ID") or a table '
            '{ id = "TPL_ID", title = "thing1", time = "time2", summary = "thing3" }'
        )
    _check_keys(key, value, {"id", *TEMPLATE_FIELDS})
    if not isinstance(value.get("id"), str) or not value["id"].strip():
        raise ConfigError(f"{key}.id: the template id is missing")
    names = {}
    for part in TEMPLATE_FIELDS:
        if part in value:
            name = value[part]
            if not isinstance(name, str) or not _FIELD_KEY.match(name):
                raise ConfigError(
                    f"{key}.{part}: expected a field key of the template such as thing1,"
                    f" got {name!r}"
                )
            names[part] = name
    template = Template(value["id"].strip(), **names)
    keys = [getattr(template, part) for part in TEMPLATE_FIELDS]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{key}: title, time and summary need three different fields")
    return template


def _templates(data: Any) -> dict[str, Template]:
    if not isinstance(data, Mapping):
        raise ConfigError("channel.templates: expected a table of kind = template id")
    found = {}
    for kind, value in data.items():
        if kind not in TEMPLATE_KINDS:
            raise ConfigError(
                f"channel.templates.{kind}: not a kind of scheduled message; one of"
                f" {', '.join(TEMPLATE_KINDS)}"
            )
        found[str(kind)] = _template(str(kind), value)
    return found


def _channel(data: Mapping[str, Any], env: Mapping[str, str]) -> ChannelSettings:
    names = {f.name for f in dataclasses.fields(ChannelSettings)}
    _check_keys("channel", data, names)
    values: dict[str, Any] = {}
    for name in names - {"templates"}:
        if name in data:
            values[name] = _string(f"channel.{name}", data[name])
    values["templates"] = _templates(data.get("templates", {}))
    for var, (section, name) in ENV_KEYS.items():
        if section == "channel" and env.get(var):
            values[name] = env[var]
    settings = ChannelSettings(**values)
    if settings.kind not in CHANNELS:
        raise ConfigError(
            f"channel.kind (GRIDWATCH_CHANNEL): {settings.kind!r} is not one of "
            f"{', '.join(CHANNELS)}"
        )
    if settings.aes_key and len(settings.aes_key) != 43:
        raise ConfigError("channel.aes_key (WECHAT_AES_KEY): the EncodingAESKey has 43 characters")
    if settings.kind != "console" and not settings.token:
        raise ConfigError(f"channel.token (WECHAT_TOKEN): required for the {settings.kind} channel")
    if settings.kind == "work" and not settings.corp_id:
        raise ConfigError("channel.corp_id (WECHAT_CORP_ID): required for the work channel")
    if settings.kind == "mp" and not settings.app_id:
        raise ConfigError("channel.app_id (WECHAT_APP_ID): required for the mp channel")
    return settings


def _problem_due(data: Any) -> dict[str, int]:
    if not isinstance(data, Mapping):
        raise ConfigError('problem_due_hours: expected a table, e.g. { "就医" = 12 }')
    _check_keys("problem_due_hours", data, set(NEED_KINDS))
    due = dict(DEFAULT_PROBLEM_DUE)
    for kind, hours in data.items():
        due[kind] = _number(f"problem_due_hours.{kind}", hours, int, 1, 24 * 90)
    return due


def _supervision(data: Any) -> Supervision:
    if not isinstance(data, Mapping):
        raise ConfigError("supervision: expected a table")
    defaults = Supervision()
    _check_keys("supervision", data, {f.name for f in dataclasses.fields(Supervision)})
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"supervision.{key}"
        default = getattr(defaults, key)
        if isinstance(default, time):
            values[key] = _time(where, value)
        elif isinstance(default, float):
            values[key] = _number(where, value, float, 0.0, 1.0)
        elif key == "review_weekday":
            values[key] = _number(where, value, int, 1, 7)
        else:
            values[key] = _number(where, value, int, 1, 100_000)
    return Supervision(**values)


def _check_secret_key(key: str) -> None:
    """A configured key must be guessable by nobody; "" means none (the database's is used)."""
    if not key:
        return
    if key.strip() == OLD_DEFAULT_KEY:
        raise ConfigError(
            "secret_key (GRIDWATCH_SECRET_KEY): this is the old built-in key, which anyone "
            "can read; set your own or remove it to use the one kept with the database"
        )
    if len(key.strip()) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"secret_key (GRIDWATCH_SECRET_KEY): at least {MIN_KEY_LENGTH} characters, "
            "e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


def build_config(data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Validate a parsed TOML mapping, apply environment overrides, return a Config."""
    top = {
        "timezone",
        "fever_threshold",
        "period_days",
        "categories",
        "grace_minutes",
        "link_days",
        "retention_days",
        "escalate_after",
        "problem_due_hours",
        "public_url",
        "secret_key",
        "schedule",
        "channel",
        "supervision",
    }
    _check_keys("", data, top)
    defaults = Config()
    values: dict[str, Any] = {}
    timezone = env.get("GRIDWATCH_TZ") or data.get("timezone", defaults.timezone)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Asia" is a folder: IsADirectoryError
        raise ConfigError(f"timezone (GRIDWATCH_TZ): unknown time zone {timezone!r}") from None
    values["timezone"] = str(timezone)
    if "fever_threshold" in data:
        values["fever_threshold"] = _number(
            "fever_threshold", data["fever_threshold"], float, 36.0, 39.0
        )
    if "period_days" in data:
        values["period_days"] = _number("period_days", data["period_days"], int, 1, 365)
    if "grace_minutes" in data:
        values["grace_minutes"] = _number("grace_minutes", data["grace_minutes"], int, 0, 1440)
    if "link_days" in data:
        values["link_days"] = _number("link_days", data["link_days"], int, 1, 365)
    if "retention_days" in data:
        values["retention_days"] = _number("retention_days", data["retention_days"], int, 1, 3650)
    if "escalate_after" in data:
        values["escalate_after"] = _number("escalate_after", data["escalate_after"], int, 1, 1440)
    if "problem_due_hours" in data:
        values["problem_due_hours"] = _problem_due(data["problem_due_hours"])
    if "categories" in data:
        categories = data["categories"]
        if not isinstance(categories, list) or not categories:
            raise ConfigError("categories: expected a non-empty list of category names")
        values["categories"] = tuple(_string("categories", c).strip() for c in categories)
        if not all(values["categories"]):
            raise ConfigError("categories: a category name is empty")
    for key in ("public_url", "secret_key"):
        if key in data:
            values[key] = _string(key, data[key])
    if env.get("GRIDWATCH_PUBLIC_URL"):
        values["public_url"] = env["GRIDWATCH_PUBLIC_URL"]
    values["public_url_set"] = "public_url" in values
    if env.get("GRIDWATCH_SECRET_KEY"):
        values["secret_key"] = env["GRIDWATCH_SECRET_KEY"]
    _check_secret_key(values.get("secret_key", ""))
    values["public_url"] = values.get("public_url", defaults.public_url).rstrip("/")
    schedule = data.get("schedule", {})
    if not isinstance(schedule, Mapping):
        raise ConfigError("schedule: expected a table")
    values["slots"] = _slots(schedule, defaults.slots)
    if "reports" in schedule:
        reports = schedule["reports"]
        if not isinstance(reports, list) or len(reports) != 2:
            raise ConfigError('schedule.reports: expected two times, e.g. ["10:30", "20:30"]')
        values["reports"] = tuple(_time("schedule.reports", r) for r in reports)
    if "release" in schedule:
        values["release"] = _time("schedule.release", schedule["release"])
    channel = data.get("channel", {})
    if not isinstance(channel, Mapping):
        raise ConfigError("channel: expected a table")
    values["channel"] = _channel(channel, env)
    values["supervision"] = _supervision(data.get("supervision", {}))
    return Config(**values)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load the config file (explicit path, GRIDWATCH_CONFIG, or ./gridwatch.toml if present)."""
    env = os.environ if env is None else env
    explicit = path or env.get("GRIDWATCH_CONFIG")
    file = Path(explicit) if explicit else Path("gridwatch.toml")
    data: dict[str, Any] = {}
    if explicit and not file.exists():
        source = "" if path else "GRIDWATCH_CONFIG: "
        raise ConfigError(f"{source}config file {file} does not exist")
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{file}: not valid TOML ({error})") from None
    return build_config(data, env)
