"""`/`: the simulator on the console channel, one plain sentence on work and mp (web/home.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlite_utils

from bot import create_app
from bot.config import ChannelSettings, Config

CHANNELS = {
    "console": ChannelSettings(),
    "work": ChannelSettings(kind="work", token="t", corp_id="c", agent_id="1"),
    "mp": ChannelSettings(kind="mp", token="t", app_id="a"),
}


def get(config: Config, db_path: Path, kind: str, path: str):
    app = create_app(
        {
            "GRIDWATCH": dataclasses.replace(config, channel=CHANNELS[kind]),
            "DB_PATH": str(db_path),
            "SCHEDULER": False,
        }
    )
    try:
        return app.test_client().get(path)
    finally:
        app.extensions["gridwatch_pool"].close_all()


def test_console_sends_the_root_to_the_simulator(
    loaded_db: sqlite_utils.Database, db_path: Path, config: Config
) -> None:
    response = get(config, db_path, "console", "/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/sim"


@pytest.mark.parametrize(("kind", "name"), [("work", "企业微信"), ("mp", "微信公众号")])
def test_work_and_mp_say_what_the_server_is(
    loaded_db: sqlite_utils.Database, db_path: Path, config: Config, kind: str, name: str
) -> None:
    response = get(config, db_path, kind, "/")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "gridwatch" in text and name in text
    # no data, no links (there is no /sim here)
    for leak in ("/sim", "http", "<a", "梁红", "张三", "河西村", "138"):
        assert leak not in text
    assert get(config, db_path, kind, "/sim").status_code == 404
