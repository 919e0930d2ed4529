"""Settings (DESIGN §7): defaults, gridwatch.toml, environment overrides, clear errors."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_CATEGORIES,
    ChannelSettings,
    Config,
    ConfigError,
    SlotTimes,
    Template,
    load_config,
)

AES_KEY = "a" * 43

FULL_TOML = f"""
timezone = "Asia/Urumqi"
fever_threshold = 37.5
period_days = 21
categories = ["密切接触者", "外地返回人员"]
grace_minutes = 30
link_days = 3
public_url = "https://gw.example.cn/"
secret_key = "file-s3cret-of-this-county"

[schedule]
reports = ["11:00", "21:00"]
release = "00:30"

[schedule.morning]
prompt = "07:30"
reminder = "9:00"
deadline = 09:45:00

[channel]
kind = "work"
token = "file-token"
aes_key = "{AES_KEY}"
corp_id = "ww-file"
agent_id = 1000002
secret = "file-secret"
api_base = "http://127.0.0.1:9999"

[channel.templates]
prompt = "TPL-PROMPT"
"""

# A complete mp + work setup in the file, so any single env variable can override it.
CHANNEL_TOML = f"""
timezone = "Asia/Urumqi"
public_url = "http://file.example.cn"
secret_key = "file-secret-key-0123456789"

[channel]
kind = "mp"
token = "file-token"
aes_key = "{AES_KEY}"
app_id = "wx-file"
corp_id = "ww-file"
agent_id = "1000001"
secret = "file-secret"
api_base = "http://file-api"
"""


def write(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_design_section_2() -> None:
    config = Config()
    assert config.timezone == "Asia/Shanghai"
    assert str(config.tz) == "Asia/Shanghai"
    assert config.fever_threshold == 37.3
    assert config.period_days == 14
    assert config.categories == ("涉鄂人员", "外地返回人员", "疑似症状人员", "暂缓返回人员")
    assert config.grace_minutes == 60
    assert config.link_days == 7
    assert config.public_url == "http://127.0.0.1:5000"
    assert config.slots == {
        "morning": SlotTimes(time(8, 0), time(9, 30), time(10, 0)),
        "noon": SlotTimes(time(12, 0), time(13, 30), time(14, 0)),
        "evening": SlotTimes(time(18, 0), time(19, 30), time(20, 0)),
    }
    assert config.reports == (time(10, 30), time(20, 30))
    assert config.release == time(0, 5)
    assert config.channel == ChannelSettings(kind="console")


def test_no_file_and_no_env_gives_the_defaults() -> None:
    assert load_config(env={}) == Config()
    assert load_config() == Config()  # os.environ, cleared by the autouse fixture


def test_every_file_value_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_TOML), env={})
    assert config.timezone == "Asia/Urumqi"
    assert config.fever_threshold == 37.5
    assert config.period_days == 21
    assert config.categories == ("密切接触者", "外地返回人员")
    assert config.grace_minutes == 30
    assert config.link_days == 3
    assert config.public_url == "https://gw.example.cn"  # trailing slash dropped
    assert config.secret_key == "file-s3cret-of-this-county"
    assert config.reports == (time(11, 0), time(21, 0))
    assert config.release == time(0, 30)
    assert config.slots["morning"] == SlotTimes(time(7, 30), time(9, 0), time(9, 45))
    assert config.slots["noon"] == Config().slots["noon"]  # untouched slots keep defaults
    assert config.channel == ChannelSettings(
        kind="work",
        token="file-token",
        aes_key=AES_KEY,
        corp_id="ww-file",
        agent_id="1000002",
        secret="file-secret",
        api_base="http://127.0.0.1:9999",
        templates={"prompt": Template("TPL-PROMPT")},
    )


def test_gridwatch_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, "period_days = 10\n", name="gridwatch.toml")
    assert load_config(env={}).period_days == 10


def test_gridwatch_config_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "period_days = 10\n", name="gridwatch.toml")
    other = write(tmp_path, "period_days = 21\n", name="other.toml")
    assert load_config(env={"GRIDWATCH_CONFIG": str(other)}).period_days == 21


def test_explicit_path_beats_gridwatch_config(tmp_path: Path) -> None:
    env_file = write(tmp_path, "period_days = 10\n", name="env.toml")
    explicit = write(tmp_path, "period_days = 21\n", name="explicit.toml")
    assert load_config(explicit, env={"GRIDWATCH_CONFIG": str(env_file)}).period_days == 21


ENV_OVERRIDES = [
    # every variable of DESIGN §7 (and the secret key): var, value, Config attribute, result
    ("GRIDWATCH_CHANNEL", "work", "channel.kind", "work"),
    ("WECHAT_TOKEN", "env-token", "channel.token", "env-token"),
    ("WECHAT_AES_KEY", "b" * 43, "channel.aes_key", "b" * 43),
    ("WECHAT_APP_ID", "wx-env", "channel.app_id", "wx-env"),
    ("WECHAT_CORP_ID", "ww-env", "channel.corp_id", "ww-env"),
    ("WECHAT_AGENT_ID", "1000009", "channel.agent_id", "1000009"),
    ("WECHAT_SECRET", "env-secret", "channel.secret", "env-secret"),
    ("WECHAT_API_BASE", "http://127.0.0.1:8081", "channel.api_base", "http://127.0.0.1:8081"),
    ("GRIDWATCH_TZ", "Asia/Hong_Kong", "timezone", "Asia/Hong_Kong"),
    ("GRIDWATCH_PUBLIC_URL", "https://gw.example.cn/", "public_url", "https://gw.example.cn"),
    (
        "GRIDWATCH_SECRET_KEY",
        "env-secret-key-0123456789",
        "secret_key",
        "env-secret-key-0123456789",
    ),
]


@pytest.mark.parametrize(
    ("var", "value", "attribute", "expected"), ENV_OVERRIDES, ids=[r[0] for r in ENV_OVERRIDES]
)
def test_environment_overrides_the_file(
    tmp_path: Path, var: str, value: str, attribute: str, expected: str
) -> None:
    path = write(tmp_path, CHANNEL_TOML)
    before = load_config(path, env={})
    after = load_config(path, env={var: value})

    def get(config: Config) -> object:
        section, _, name = attribute.rpartition(".")
        return getattr(config.channel if section else config, name)

    assert get(before) != expected
    assert get(after) == expected


def test_environment_is_read_from_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDWATCH_CONFIG", str(write(tmp_path, CHANNEL_TOML)))
    monkeypatch.setenv("WECHAT_TOKEN", "from-os-environ")
    assert load_config().channel.token == "from-os-environ"


def test_an_empty_environment_variable_does_not_override(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CHANNEL_TOML), env={"WECHAT_TOKEN": ""})
    assert config.channel.token == "file-token"


def test_environment_alone_configures_a_channel() -> None:
    env = {
        "GRIDWATCH_CHANNEL": "work",
        "WECHAT_TOKEN": "t",
        "WECHAT_AES_KEY": AES_KEY,
        "WECHAT_CORP_ID": "ww1",
        "WECHAT_AGENT_ID": "1000002",
        "WECHAT_SECRET": "s",
    }
    channel = load_config(env=env).channel
    assert (channel.kind, channel.corp_id, channel.agent_id) == ("work", "ww1", "1000002")


WORK = 'kind = "work"\ntoken = "t"\ncorp_id = "ww"\n'

BAD = [
    # id, toml text, env, text the error must contain (the key, and the variable if any)
    ("unknown-top-level-key", "fever = 37.5", {}, "fever: unknown setting"),
    ("escalate-after-zero", "escalate_after = 0", {}, "escalate_after"),
    ("escalate-after-text", 'escalate_after = "半小时"', {}, "escalate_after"),
    ("problem-due-bad-kind", 'problem_due_hours = { "买菜" = 2 }', {}, "problem_due_hours.买菜"),
    ("problem-due-not-a-table", "problem_due_hours = 24", {}, "problem_due_hours"),
    ("problem-due-zero", 'problem_due_hours = { "就医" = 0 }', {}, "problem_due_hours.就医"),
    ("unknown-schedule-key", "[schedule]\nlunch = {}", {}, "schedule.lunch: unknown setting"),
    (
        "unknown-slot-key",
        '[schedule.morning]\npromt = "08:00"',
        {},
        "schedule.morning.promt: unknown setting",
    ),
    ("slot-not-a-table", '[schedule]\nmorning = "08:00"', {}, "schedule.morning"),
    ("time-in-chinese", '[schedule.morning]\nprompt = "8点"', {}, "schedule.morning.prompt"),
    ("time-out-of-range", '[schedule.noon]\ndeadline = "24:00"', {}, "schedule.noon.deadline"),
    ("reminder-before-prompt", '[schedule.noon]\nreminder = "11:30"', {}, "schedule.noon"),
    ("deadline-before-reminder", '[schedule.evening]\ndeadline = "19:00"', {}, "schedule.evening"),
    ("one-report-time", '[schedule]\nreports = ["10:30"]', {}, "schedule.reports"),
    ("bad-report-time", '[schedule]\nreports = ["10:30", "晚上"]', {}, "schedule.reports"),
    ("bad-release-time", '[schedule]\nrelease = "0:5"', {}, "schedule.release"),
    ("schedule-not-a-table", 'schedule = "daily"', {}, "schedule"),
    ("fever-threshold-text", 'fever_threshold = "hot"', {}, "fever_threshold"),
    ("fever-threshold-out-of-range", "fever_threshold = 42", {}, "fever_threshold"),
    ("period-days-zero", "period_days = 0", {}, "period_days"),
    ("period-days-fraction", "period_days = 2.5", {}, "period_days"),
    ("grace-minutes-negative", "grace_minutes = -1", {}, "grace_minutes"),
    ("link-days-boolean", "link_days = true", {}, "link_days"),
    ("categories-empty-list", "categories = []", {}, "categories"),
    ("categories-not-a-list", 'categories = "涉鄂人员"', {}, "categories"),
    ("categories-blank-name", 'categories = ["涉鄂人员", " "]', {}, "categories"),
    ("timezone-unknown", 'timezone = "Mars/Olympus"', {}, "timezone"),
    ("timezone-a-region-folder", 'timezone = "Asia"', {}, "timezone"),
    ("timezone-from-env", "", {"GRIDWATCH_TZ": "Beijing"}, "GRIDWATCH_TZ"),
    ("channel-kind-sms", '[channel]\nkind = "sms"', {}, "channel.kind"),
    ("channel-kind-from-env", "", {"GRIDWATCH_CHANNEL": "sms"}, "GRIDWATCH_CHANNEL"),
    ("channel-not-a-table", 'channel = "work"', {}, "channel"),
    ("channel-unknown-key", '[channel]\nappid = "wx1"', {}, "channel.appid: unknown setting"),
    ("channel-value-not-text", "[channel]\ntoken = [1, 2]", {}, "channel.token"),
    ("templates-not-a-table", '[channel]\ntemplates = "T1"', {}, "channel.templates"),
    ("template-unknown-kind", '[channel.templates]\npromt = "T1"', {}, "channel.templates.promt"),
    ("template-empty-id", '[channel.templates]\nprompt = ""', {}, "channel.templates.prompt"),
    ("template-a-number", "[channel.templates]\nprompt = 12", {}, "channel.templates.prompt"),
    ("template-table-without-id", '[channel.templates]\nprompt = { title = "thing1" }', {},
     "channel.templates.prompt.id"),
    ("template-unknown-field", '[channel.templates]\nprompt = { id = "T", first = "first" }', {},
     "channel.templates.prompt.first: unknown setting"),
    ("template-field-not-a-key", '[channel.templates]\nprompt = { id = "T", title = "标题" }', {},
     "channel.templates.prompt.title"),
    ("template-field-twice", '[channel.templates]\nprompt = { id = "T", time = "thing1" }', {},
     "three different fields"),
    ("aes-key-wrong-length", f'[channel]\naes_key = "{"a" * 42}"', {}, "channel.aes_key"),
    ("aes-key-from-env", "", {"WECHAT_AES_KEY": "short"}, "WECHAT_AES_KEY"),
    ("work-without-token", '[channel]\nkind = "work"\ncorp_id = "ww"', {}, "channel.token"),
    ("work-without-corp-id", '[channel]\nkind = "work"\ntoken = "t"', {}, "channel.corp_id"),
    ("mp-without-app-id", '[channel]\nkind = "mp"\ntoken = "t"', {}, "channel.app_id"),
    ("env-switches-to-work-without-corp-id", "", {"GRIDWATCH_CHANNEL": "work", "WECHAT_TOKEN": "t"},
     "WECHAT_CORP_ID"),
    ("secret-key-the-old-built-in-one", 'secret_key = "gridwatch-dev-secret-change-me"', {},
     "secret_key"),
    ("secret-key-old-built-in-from-env", "",
     {"GRIDWATCH_SECRET_KEY": "gridwatch-dev-secret-change-me"}, "GRIDWATCH_SECRET_KEY"),
    ("secret-key-too-short", 'secret_key = "s3cret"', {}, "secret_key"),
    ("secret-key-blank", 'secret_key = "                    "', {}, "secret_key"),
    ("secret-key-not-text", "secret_key = [1]", {}, "secret_key"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "env", "named"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_setting_is_refused_naming_its_key(
    tmp_path: Path, toml: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, toml), env=env)
    assert named in str(caught.value)


def test_escalation_and_problem_settings(tmp_path: Path) -> None:
    assert (Config().escalate_after, Config().problem_due_hours["就医"]) == (30, 12)
    text = 'escalate_after = 15\nproblem_due_hours = { "就医" = 4 }'
    config = load_config(write(tmp_path, text), env={})
    assert config.escalate_after == 15
    assert config.problem_due_hours == {"生活物资": 24, "就医": 4, "心理疏导": 24, "其他": 48}


def test_no_secret_key_is_built_in(tmp_path: Path) -> None:
    # none configured: links are signed with the key kept with the database (test_links.py)
    assert Config().secret_key == ""
    assert load_config(write(tmp_path, 'secret_key = ""'), env={}).secret_key == ""


def test_the_work_channel_table_row_is_valid_when_complete(tmp_path: Path) -> None:
    # the rows above fail for the reason they name, not for another one
    assert load_config(write(tmp_path, f"[channel]\n{WORK}"), env={}).channel.kind == "work"


def test_not_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "period_days = = 3", name="broken.toml")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_config(path, env={})


def test_gridwatch_config_pointing_to_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(env={"GRIDWATCH_CONFIG": str(missing)})
    assert "GRIDWATCH_CONFIG" in str(caught.value)
    assert "nowhere.toml" in str(caught.value)


def test_explicit_missing_file_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.toml"):
        load_config(tmp_path / "nowhere.toml", env={})


def test_default_categories_constant_matches_design() -> None:
    assert DEFAULT_CATEGORIES == Config().categories


def test_templates_a_bare_id_or_a_table_naming_the_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[channel.templates]\n"
        'prompt = { id = "TPL_PROMPT", title = "thing4", time = "time5", summary = "thing6" }\n'
        'digest = "TPL_DIGEST"\n',
    )
    channel = load_config(path, env={}).channel
    assert channel.template("prompt") == Template("TPL_PROMPT", "thing4", "time5", "thing6")
    assert channel.template("digest") == Template("TPL_DIGEST", "thing1", "time2", "thing3")
    assert channel.template("reminder") is None


def test_public_url_given_or_not(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, ""), env={}).public_url_set
    given = load_config(write(tmp_path, ""), env={"GRIDWATCH_PUBLIC_URL": "https://gw.example.cn/"})
    assert given.public_url_set and given.public_url == "https://gw.example.cn"
