"""The WeChat / WeCom HTTP API: one base URL, an access token shared through SQLite, retries.

WeChat answers HTTP 200 with {"errcode": ..., "errmsg": ...}; `ApiClient.post` turns every
outcome, network failures included, into an `ApiResult` instead of raising, so a channel can
record each attempt in the outbox.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
import sqlite_utils

from bot.config import ChannelSettings
from storage.db import transaction

WORK_BASE = "https://qyapi.weixin.qq.com"
MP_BASE = "https://api.weixin.qq.com"
BUSY = -1  # 系统繁忙
NETWORK = -2  # ours: no usable answer (connection error, timeout, HTTP error, not JSON)
NOT_CONFIGURED = -3  # ours: a setting needed for the API is missing
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid / expired access token
RATE_LIMITED = 45009
MAX_RETRIES = 3
BACKOFF = 1.0  # seconds before the first retry; doubled each time
REFRESH_MARGIN = 300  # refresh the token this many seconds before it expires
# answers that mean a deployment step is missing (README "Deployment"): the log names it
SETUP_STEPS = {
    ("work", 60020): (
        "WeCom refuses calls from this server's IP (60020 not allow to access from your ip):"
        " add the server's public egress IP under 应用管理 → this app → 企业可信IP"
    ),
    ("work", 48001): (
        "WeCom says the API is not authorized for this app (48001 api unauthorized): check that"
        " WECHAT_SECRET is this app's Secret (WECHAT_AGENT_ID) and that the members are in the"
        " app's 可见范围"
    ),
    ("mp", 48001): (
        "the Official Account may not use this API (48001 api unauthorized): template messages"
        " need a verified service account (认证服务号) and templates added under 广告与服务 →"
        " 模板消息; customer-service messages need 认证"
    ),
    ("mp", 40164): (
        "the Official Account refuses this server's IP (40164 invalid ip, not in whitelist):"
        " add the server's public egress IP under 设置与开发 → 基本配置 → IP白名单"
    ),
}
SETUP_LOG_EVERY = 600.0  # seconds between two log lines about the same missing step

log = logging.getLogger("gridwatch.channel")
_setup_logged: dict[tuple[str, int], float] = {}


class ApiError(Exception):
    "WeChat refused a call (or could not be reached); errcode and errmsg say why."

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class ApiResult:
    """The last answer of a call, how many HTTP attempts it took, and why earlier ones failed."""

    errcode: int
    errmsg: str
    data: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 1
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.errcode == 0


class ApiClient:
    """Calls one account's API (a WeCom app or an Official Account) at `base`."""

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.kind = settings.kind
        self.settings = settings
        default = WORK_BASE if settings.kind == "work" else MP_BASE
        self.base = (settings.api_base or default).rstrip("/")
        account = settings.corp_id if settings.kind == "work" else settings.app_id
        self.token_name = f"{settings.kind}:{account}:{settings.agent_id}"
        self.sleep = sleep
        self.clock = clock
        self.timeout = timeout

    def post(self, db: sqlite_utils.Database, path: str, payload: Mapping[str, Any]) -> ApiResult:
        """POST JSON with the access token; re-fetch the token once, retry -1 with backoff."""
        failures: list[str] = []
        attempts = retries = 0
        refetched = False
        while True:
            attempts += 1
            token = None
            try:
                token = self.token(db)
                data = self._request("POST", path, {"access_token": token}, payload)
                errcode, errmsg = int(data.get("errcode") or 0), str(data.get("errmsg", ""))
            except ApiError as error:
                data, errcode, errmsg = {}, error.errcode, error.errmsg
            if errcode == 0:
                return ApiResult(0, errmsg, data, attempts, tuple(failures))
            failures.append(f"{errcode} {errmsg}".strip())
            if errcode in TOKEN_ERRORS and token is not None and not refetched:
                refetched = True
                self.forget_token(db, token)
                continue
            if errcode in (BUSY, NETWORK) and retries < MAX_RETRIES:
                self.sleep(BACKOFF * 2**retries)
                retries += 1
                continue
            self._log_setup_step(errcode, path)
            return ApiResult(errcode, errmsg, data, attempts, tuple(failures))

    def _log_setup_step(self, errcode: int, path: str) -> None:
        """An answer that means a deployment step is missing: one error line naming the step
        (at most one per step every SETUP_LOG_EVERY seconds: a round may hit it 1,000 times)."""
        step = SETUP_STEPS.get((self.kind, errcode))
        if step is None:
            return
        now = self.clock()
        if now - _setup_logged.get((self.kind, errcode), -SETUP_LOG_EVERY) < SETUP_LOG_EVERY:
            return
        _setup_logged[(self.kind, errcode)] = now
        log.error("%s channel, %s: %s (README: Deployment)", self.kind, path, step)

    def token(self, db: sqlite_utils.Database) -> str:
        """The cached access token, refreshed before it expires by one process at a time."""
        cached = self._cached(db)
        if cached is not None:
            return cached
        # a lock of its own, not the database's write lock: a slow token endpoint must not
        # hold up every inbound message while one process fetches
        with refresh_lock(db):
            cached = self._cached(db)  # another process may have refreshed it meanwhile
            if cached is not None:
                return cached
            value, lifetime = self._fetch_token()
            with transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO tokens (name, value, expires_at) VALUES (?, ?, ?)",
                    [self.token_name, value, self.clock() + lifetime],
                )
        return value

    def forget_token(self, db: sqlite_utils.Database, value: str) -> None:
        """Drop a token WeChat rejected, unless another process has replaced it already."""
        with transaction(db):
            db.execute("DELETE FROM tokens WHERE name = ? AND value = ?", [self.token_name, value])

    def _cached(self, db: sqlite_utils.Database) -> str | None:
        row = db.execute(
            "SELECT value, expires_at FROM tokens WHERE name = ?", [self.token_name]
        ).fetchone()
        if row and row[1] - REFRESH_MARGIN > self.clock():
            return row[0]
        return None

    def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        if not s.secret:
            raise ApiError(NOT_CONFIGURED, "WECHAT_SECRET is not set: cannot fetch an access token")
        if self.kind == "work":
            path, params = "/cgi-bin/gettoken", {"corpid": s.corp_id, "corpsecret": s.secret}
        else:
            params = {"grant_type": "client_credential", "appid": s.app_id, "secret": s.secret}
            path = "/cgi-bin/token"
        data = self._request("GET", path, params, None)
        if data.get("errcode") or not data.get("access_token"):
            raise ApiError(int(data.get("errcode") or NETWORK), str(data.get("errmsg", "no token")))
        return str(data["access_token"]), float(data.get("expires_in") or 7200)

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        payload: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        # ensure_ascii=False: some WeChat endpoints show \uXXXX escapes literally
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        try:
            # requests.request opens and closes its own session: no socket outlives the call
            response = requests.request(
                method,
                self.base + path,
                params=params,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"} if body else None,
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise ApiError(NETWORK, f"network: {type(error).__name__}") from None
        if response.status_code != 200:
            raise ApiError(NETWORK, f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise ApiError(NETWORK, "the answer is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(NETWORK, "the answer is not a JSON object")
        return data


_memory_refresh = threading.Lock()


@contextmanager
def refresh_lock(db: sqlite_utils.Database) -> Iterator[None]:
    """Exclusive across processes and threads: a flock on `<db>-token.lock`."""
    path = getattr(db, "path_key", "")
    fd = -1
    if path and not path.startswith(":memory:"):
        try:
            fd = os.open(f"{path}-token.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only folder: one refresh at a time within this process
            fd = -1
    if fd < 0:
        with _memory_refresh:
            yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock
