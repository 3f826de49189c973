"""Cooperative cancellation of a generation that nobody waits for any more.

A thread cannot be killed safely in Python, so a server that gave up on a request (timeout,
client gone) asks the generation to stop instead: it sets a :class:`CancelToken` current for the
work it runs, and a generator calls :func:`check_cancelled` at points where stopping is cheap and
leaves nothing half-done (between batches, between decoding steps). Outside such a scope the
check costs one context-variable lookup and never raises, so the CLI and tests are unaffected.

The token travels as a context variable rather than a ``generate`` argument: every generator
already in the wild keeps its signature, and one line per loop is all a plugin adds.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Iterator

from .errors import AigcError


class Cancelled(AigcError):
    """Raised by :func:`check_cancelled` once the work's token was cancelled."""


class CancelToken:
    """Set from any thread (the server's event loop); read by the generating thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(f"generation stopped: {self.reason}")


_current: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar("aigc_cancel_token", default=None)


@contextlib.contextmanager
def cancellation(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the one :func:`check_cancelled` consults in this thread, for the block."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if the current work was cancelled; a no-op otherwise."""
    token = _current.get()
    if token is not None:
        token.check()
