"""One-time binding codes for the Official Account (mp) channel."""

from __future__ import annotations

import datetime as dt
import secrets

import sqlite_utils

from storage.db import transaction

CODE_DIGITS = 6
MAX_GUESSES_PER_HOUR = 5


class BindError(Exception):
    "The code cannot bind this sender; the message is for the user, in Chinese."


def create_invite(
    db: sqlite_utils.Database, person_id: int, now: dt.datetime, hours: int = 72
) -> str:
    """A fresh 6-digit code for the person; earlier unused codes of theirs stop working."""
    with transaction(db):
        db.execute("DELETE FROM invites WHERE person_id = ? AND used_at IS NULL", [person_id])
        while True:
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            if not db.execute("SELECT 1 FROM invites WHERE code = ?", [code]).fetchone():
                break
        db["invites"].insert(
            {
                "code": code,
                "person_id": person_id,
                "created_at": now.isoformat(timespec="seconds"),
                "expires_at": (now + dt.timedelta(hours=hours)).isoformat(timespec="seconds"),
                "used_at": None,
            }
        )
    return code


def redeem_invite(db: sqlite_utils.Database, code: str, sender: str, now: dt.datetime) -> dict:
    """Bind `sender` to the code's person and return the person; guesses are rate-limited."""
    stamp = now.isoformat(timespec="seconds")
    hour_ago = (now - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    with transaction(db):
        tries = db.execute(
            "SELECT COUNT(*) FROM bind_attempts WHERE sender = ? AND at > ?", [sender, hour_ago]
        ).fetchone()[0]
        if tries >= MAX_GUESSES_PER_HOUR:
            raise BindError("绑定尝试次数过多，请一小时后再试，或联系管理员重新生成绑定码。")
        db["bind_attempts"].insert({"sender": sender, "at": stamp})
        invite = next(db.query("SELECT * FROM invites WHERE code = ?", [code]), None)
        if invite is None or invite["used_at"] is not None:
            raise BindError("绑定码不正确或已使用，请核对后重新发送，例如：绑定 123456")
        if invite["expires_at"] < stamp:
            raise BindError("绑定码已过期，请联系管理员重新生成。")
        taken = db.execute(
            "SELECT name FROM people WHERE wechat_id = ? AND id != ?", [sender, invite["person_id"]]
        ).fetchone()
        if taken:
            raise BindError(f"此微信已绑定为“{taken[0]}”，如需更换请联系管理员。")
        db.execute("UPDATE invites SET used_at = ? WHERE code = ?", [stamp, code])
        db.execute("UPDATE people SET wechat_id = ? WHERE id = ?", [sender, invite["person_id"]])
        db.execute("DELETE FROM bind_attempts WHERE sender = ?", [sender])
    return next(db.query("SELECT * FROM people WHERE id = ?", [invite["person_id"]]))
