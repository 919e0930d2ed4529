"""The peer named by the callback budget: a WeRoBot echo bot in AES mode.

WeRoBot (PyPI `werobot`, an Official Account framework) checks the plain `signature` and the
`msg_signature` of the envelope, decrypts it, parses the XML, runs its handler (echo the
text), and seals the reply: the WeChat layer only, nothing stored. Its session storage (a
SQLite file by default) is off, which makes it faster, not slower. It reads the bench's
WeCom posts with two more query arguments (`signature`, `encrypt_type=aes`), which
`bench.harness.werobot_posts` adds; the envelope is the same AES for both (the receiver id,
here the corp id, stands as the app id).

Run: the WECHAT_* settings of bench.harness, `gunicorn bench.werobot_echo:app` (needs
`pip install werobot`; make bench installs it into the bench's virtualenv).
"""

from __future__ import annotations

import os

from werobot import WeRoBot

robot = WeRoBot(
    token=os.environ.get("WECHAT_TOKEN", "benchtoken"),
    encoding_aes_key=os.environ.get("WECHAT_AES_KEY"),
    app_id=os.environ.get("WECHAT_CORP_ID"),
    SESSION_STORAGE=False,  # WeRoBot reads its settings upper-case; False turns sessions off
)


@robot.text
def echo(message: object) -> str:
    return message.content  # type: ignore[attr-defined]


app = robot.wsgi
