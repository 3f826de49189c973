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

The cap counts connections that have a protocol, but each accepted socket is an open file a
moment earlier: asyncio accepts as many sockets per turn of its loop as the listen backlog it was
given (uvicorn's default: 2048), and closes an evicted one only on the next turn. Under a flood
the open files were thus the cap plus thousands, and with the common ``ulimit -n`` of 1024 and the
default cap of 512 the server hit ``EMFILE``: a traceback per failed ``accept``, accepting paused a
second at a time, real clients timed out (issue 29). So asyncio is told to accept at most
``ACCEPT_BATCH`` sockets per turn, the kernel keeps its own queue of ``KERNEL_BACKLOG`` pending
connections (which cost this process no file), and at start the open-file limit must leave room for
the cap plus a few batches (``check_file_limit``: the soft limit is raised toward the hard one, and
a cap that still does not fit is refused in one line).

The body deadline lives in ``security.BodyLimitMiddleware`` (408), the keep-alive idle time is
uvicorn's ``timeout_keep_alive``.
"""

from __future__ import annotations

import collections
import socket
from typing import Any, Callable

from ..contract.errors import AigcError, UsageError
from .settings import ServerSettings

#: Sockets asyncio accepts per turn of its event loop (uvicorn's ``backlog``): the open files the
#: connection cap has not seen yet are a few of these batches at most.
ACCEPT_BATCH = 64
#: Connections the kernel queues for ``accept`` (``listen``'s backlog); they cost this process no file.
KERNEL_BACKLOG = 2048
#: Files the process keeps besides connections: the listener, the model's files, the loop's, logs.
FILE_RESERVE = 128


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


def files_needed(settings: ServerSettings) -> int:
    """Open files the server may hold at once: the cap, the batches not yet counted, the rest."""
    return settings.max_connections + 4 * ACCEPT_BATCH + FILE_RESERVE


def check_file_limit(settings: ServerSettings) -> None:
    """Raise the soft open-file limit toward the hard one when the cap needs it; refuse a cap that
    cannot fit, so that ``accept`` never fails with ``EMFILE`` under a flood."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to ask
        return
    need = files_needed(settings)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            return
        except (ValueError, OSError):
            pass
    raise UsageError(f"server setting max_connections: {settings.max_connections} connections need about {need} "
                     f"open files, but this process may open {hard} (ulimit -Hn); lower --max-connections "
                     "or raise the limit")


def guarded_server(config: Any, on_started: Callable[[], None] | None = None) -> Any:
    """A ``uvicorn.Server`` for ``config`` (from ``uvicorn_config``) whose listening sockets get the
    kernel's full queue back after asyncio set it to ``ACCEPT_BATCH``; ``on_started()`` is called
    once it listens (``aigc serve`` prints its URL then)."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for sock in sockets or ():  # asyncio's create_server set the queue to the accept batch
                try:
                    sock.listen(KERNEL_BACKLOG)
                except OSError:
                    pass
            if self.started and on_started is not None:
                on_started()

    return _Server(config)


def uvicorn_config(app: Any, settings: ServerSettings, **kwargs: Any) -> Any:
    """The uvicorn configuration ``aigc serve`` and the test server share (after
    ``check_file_limit``); serve it with ``guarded_server``."""
    import uvicorn

    check_file_limit(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings),
        timeout_keep_alive=settings.keep_alive_s,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        backlog=ACCEPT_BATCH,
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
