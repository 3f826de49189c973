"""Connections: the listening socket and uvicorn's HTTP protocol, hardened against slow clients.

uvicorn closes a keep-alive connection that idles, and bounds the size of a request head, but
gives a new connection all the time in the world to send its head: 20,000 connections that never
finish their headers fill the open-file table and the server stops accepting (``EMFILE``). Its
``limit_concurrency`` does not help there: it answers 503 once a head has arrived and closes
nothing. So the protocol here adds, per server:

- a head deadline: a connection that owes a request head (new, or a keep-alive connection that
  started sending the next one) has ``header_timeout_s`` from its first moment to finish it; the
  clock is not restarted by each byte, so trickling one byte a second does not keep it open;
- a connection cap: past ``max_connections``, the oldest connection that owes a head (half-open
  or idle keep-alive) is closed to make room, so a flood of idle sockets evicts itself and a real
  client, which sends its head at once, is still served; when every connection is busy with a
  request, the new one is closed instead.

The body deadline lives in ``security.BodyLimitMiddleware`` (408), the keep-alive idle time is
uvicorn's ``timeout_keep_alive``.
"""

from __future__ import annotations

import collections
import socket
from typing import Any

from ..errors import AigcError
from .settings import ServerSettings


def guarded_protocol(settings: ServerSettings) -> type:
    """An ``H11Protocol`` subclass enforcing ``settings``' head deadline and connection cap; one
    class per server, since the register of connections owing a head is shared by its connections."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    owing: collections.OrderedDict[Any, None] = collections.OrderedDict()  # oldest first

    class GuardedH11Protocol(H11Protocol):
        _head_timer = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > settings.max_connections:
                victim = next(iter(owing), None)
                if victim is None:  # every connection is busy with a request: refuse this one
                    self._drop()
                    return
                victim._drop()
            self._owe_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE:
                self._owe_head()  # a partial head: the deadline runs from its first byte
            else:
                self._head_done()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                owing[self] = None  # idle keep-alive: evictable; uvicorn's keep-alive timer closes it

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_done()
            super().connection_lost(exc)

        def _owe_head(self) -> None:
            owing[self] = None
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(settings.header_timeout_s, self._drop)

        def _head_done(self) -> None:
            owing.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _drop(self) -> None:
            self._head_done()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(app: Any, settings: ServerSettings, **kwargs: Any) -> Any:
    """The uvicorn configuration ``aigc serve`` and the test server share."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings),
        timeout_keep_alive=settings.keep_alive_s,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        lifespan="on",
        **kwargs,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one line and exit 1, not uvicorn's
    multi-line log and exit 3."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; a live listener still refuses
        sock.bind((host.strip("[]"), port))
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = "; is another server running there? choose another --port" if exc.errno in (98, 48, 10048) else ""
        raise AigcError(f"cannot listen on {host}:{port}: {reason.lower()}{hint}") from None
    except OverflowError:
        sock.close()
        raise AigcError(f"cannot listen on {host}:{port}: the port must be between 0 and 65535") from None
    return sock
