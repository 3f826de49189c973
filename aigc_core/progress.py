"""Progress of one generation, reported by the generator and read by whoever asked for it.

A generator that works in steps (diffusion sampling, decoding tokens, batches) calls
:func:`report_progress` with how much is done of how much; the server shows it on the web page.
Like cancellation (``aigc_core.cancel``), the reporter travels as a context variable rather than
a ``generate`` argument: generators keep their signatures, and outside a reporting scope the
call costs one context-variable lookup and does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

#: ``(done, total)``; called on the generating thread, so it must be quick and never raise.
ProgressCallback = Callable[[int, int], None]

_current: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar("aigc_progress", default=None)


@contextlib.contextmanager
def progress_reporting(callback: ProgressCallback | None) -> Iterator[None]:
    """Send :func:`report_progress` calls of this thread to ``callback`` for the block (None: nowhere)."""
    reset = _current.set(callback)
    try:
        yield
    finally:
        _current.reset(reset)


def report_progress(done: int, total: int) -> None:
    """Tell whoever waits that ``done`` of ``total`` steps of the current generation are finished."""
    callback = _current.get()
    if callback is not None:
        try:
            callback(int(done), int(total))
        except Exception:  # noqa: BLE001 - a broken display must not break generation
            pass
