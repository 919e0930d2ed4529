"""`/`, the address the README gives: the simulator on the console channel; on work and mp
(where /sim does not exist) one plain sentence saying what this server is, with no data and
no links."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect
from werkzeug.wrappers import Response as BaseResponse

bp = Blueprint("home", __name__)

CHANNEL_CN = {"work": "企业微信", "mp": "微信公众号"}


@bp.get("/")
def home() -> BaseResponse:
    kind = current_app.config["GRIDWATCH"].channel.kind
    if kind == "console":
        return redirect("/sim", code=302)
    text = (
        "gridwatch：居家隔离监测机器人（一日三联系、一日两汇报）。\n"
        f"这是{CHANNEL_CN.get(kind, kind)}的消息服务器，请在{CHANNEL_CN.get(kind, kind)}中使用；"
        "本地址没有网页。\n"
    )
    return Response(text, mimetype="text/plain")
