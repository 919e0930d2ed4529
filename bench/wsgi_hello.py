"""The ceiling of the WeRoBot ratio: a WSGI callable that answers "success" to anything.

No Flask, no signature, no AES, no XML, no storage: whatever a callback does costs more
than this, under the same gunicorn, posts and wrk. When it is under 2 × the WeRoBot echo,
no callback on this server can be 2 × WeRoBot (`make bench` prints the ratio).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"success"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()  # the post is read, as any callback must
    start_response("200 OK", HEADERS)
    return [BODY]
