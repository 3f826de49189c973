"""ASGI middleware for the two checks every request passes before any handler runs.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so that a client leaving a text stream is
still seen by the stream: both pass ``http.disconnect`` through untouched.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any, Awaitable, Callable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key from ``Authorization: Bearer K``, ``X-API-Key: K`` or HTTP Basic (any user, K as
    password: that is what lets a browser, prompted once, use the web page)."""
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    key = headers.get(b"x-api-key")
    return key.decode("latin-1").strip() if key is not None else None


class APIKeyMiddleware:
    def __init__(self, app: Any, api_key: str):
        self.app = app
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = presented_key(dict(scope.get("headers") or []))
        # compare_digest on bytes of any length: no early exit that leaks the key by timing.
        if given is None or not hmac.compare_digest(given.encode("utf-8"), self._key):
            message = "missing API key" if given is None else "wrong API key"
            await send_error(send, 401, f"{message}: send 'Authorization: Bearer KEY'",
                             {"WWW-Authenticate": 'Basic realm="aigc", charset="UTF-8"'})
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by header or by counting what arrives."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        too_big = f"request body over the limit of {self.limit} bytes"
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.limit:
                    await send_error(send, 413, too_big)
                    return
            except ValueError:
                await send_error(send, 400, "invalid Content-Length header")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send_error(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[dict], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
