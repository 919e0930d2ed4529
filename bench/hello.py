"""The peer for the callback budget: a bare Flask "hello" under the same server and load."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> str:
    return "ok"


@app.post("/wechat")
def hello() -> str:
    return "success"
