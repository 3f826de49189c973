"""ASGI middleware for the checks every request passes before any handler runs: the Host
header (on loopback), the body's size and arrival time, and the API key.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so that a client leaving a text stream is
still seen by the stream: they pass ``http.disconnect`` through untouched.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
from typing import Any, Awaitable, Callable, Iterable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def presented_key(headers: dict[bytes, bytes]) -> bytes | None:
    """The key, as the raw bytes the client sent, from ``Authorization: Bearer K``,
    ``X-API-Key: K`` or HTTP Basic (any user, K as password: that is what lets a browser,
    prompted once, use the web page).

    Bytes all the way: a header arrives as bytes and a key outside ASCII is sent as its UTF-8
    bytes (curl, httpx, browsers' Basic with charset=UTF-8), so it is compared with the
    configured key's UTF-8 bytes, never through a text decoding that could disagree.
    """
    auth = headers.get(b"authorization", b"").strip()
    scheme, _, value = auth.partition(b" ")
    if scheme.lower() == b"bearer":
        return value.strip()
    if scheme.lower() == b"basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return None
        return decoded.partition(b":")[2]
    key = headers.get(b"x-api-key")
    return key.strip() if key is not None else None


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
        if given is None or not hmac.compare_digest(given, self._key):
            message = "missing API key" if given is None else "wrong API key"
            await send_error(send, 401, f"{message}: send 'Authorization: Bearer KEY'",
                             {"WWW-Authenticate": 'Basic realm="aigc", charset="UTF-8"'})
            return
        await self.app(scope, receive, send)


LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def host_name(value: bytes) -> str:
    """The name in a Host header, without the port: ``[::1]:8000`` -> ``::1``."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheckMiddleware:
    """On a loopback bind, answer only requests addressed to this machine by name.

    A web page on another site can make the browser resolve its own name to 127.0.0.1 (DNS
    rebinding) and then call the server with that name in the Host header, reading the replies
    as same-origin. Refusing any Host that is not a loopback name or address (or one the operator
    allowed) closes that door; it costs nothing to clients that use 127.0.0.1 or localhost.
    """

    def __init__(self, app: Any, allowed: Iterable[str] = ()):
        self.app = app
        self.allowed = {a.strip().lower().rstrip(".") for a in allowed if a.strip()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host")
            if host is not None:  # HTTP/1.0 may omit it; a browser never does
                name = host_name(host)
                if not (is_loopback_name(name) or name in self.allowed):
                    shown = host.decode("latin-1")[:100]
                    await send_error(send, 421, f"Host {shown!r} is not this server: it listens on loopback and "
                                                "answers to localhost or a loopback address only (see --allow-host)")
                    return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by header or by counting what arrives, and
    bodies that take longer than ``timeout_s`` to arrive with 408 (a slow client holds a
    connection and a task for as long as it trickles)."""

    def __init__(self, app: Any, limit: int, timeout_s: float = float("inf")):
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            left = deadline - loop.time()
            try:
                message = await (asyncio.wait_for(receive(), max(0.0, left)) if left != float("inf") else receive())
            except TimeoutError:
                await send_error(send, 408, f"request body not received within {self.timeout_s:g} s",
                                 {"Connection": "close"})
                return
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
