"""Stopping a run that is stuck in start-up: SIGINT and SIGTERM work while C code blocks.

A distributed run starts by meeting its other processes (``torch.distributed``'s rendezvous).
While it waits for one that never comes (a node nobody started, a process that died), the main
thread sits in C++ for up to half an hour; Python runs a signal handler only between bytecodes,
so Ctrl-C and SIGTERM do nothing and only SIGKILL ends it, leaving its new run directory behind.

:class:`StartupGuard` covers that stretch, from just before Lightning starts up to the first
training batch. Python's C-level handler writes each signal's number to a "wakeup" socket at
once, whatever the main thread does; a watcher thread reads it. After SIGINT or SIGTERM the main
thread has ``grace_s`` seconds to get through start-up (it stops at its first batch then, the
usual way) or to leave; if it does not, or at a second signal, the watcher stops the run itself:
one line on stderr, the fresh run directory removed (``cleanup``), Lightning's child processes
sent SIGTERM, and exit with 128 + the signal number. Nothing was trained yet, so nothing is lost.
Only in the main thread (signals are delivered there); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pytorch_lightning import Callback

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupGuard:
    """``with StartupGuard(cleanup) as guard: fit(..., callbacks=[guard.callback])``."""

    def __init__(self, cleanup: Callable[[], None] | None = None, grace_s: float = 3.0, stream: Any = None):
        self.cleanup = cleanup
        self.grace_s = grace_s
        self.stream = stream
        self.started = threading.Event()  # set at the first training batch: start-up is over
        self._done = threading.Event()
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._old_fd = -1
        self._thread: threading.Thread | None = None

    # -- the main thread ------------------------------------------------------------------------
    def __enter__(self) -> "StartupGuard":
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            self._old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            reader.close()
            writer.close()
            return self
        self._pair = (reader, writer)
        self._thread = threading.Thread(target=self._watch, name="aigc-startup-guard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._pair is None:
            return
        signal.set_wakeup_fd(self._old_fd)
        try:
            self._pair[1].send(b"\0")  # wakes the watcher now rather than at its next poll
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        for sock in self._pair:
            sock.close()
        self._pair = None

    @property
    def callback(self) -> Callback:
        """The Lightning callback that ends the guarded stretch at the first training batch."""
        return _StartupOver(self.started)

    # -- the watcher ----------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self._pair is not None
        reader = self._pair[0]
        reader.settimeout(0.2)
        signalled: int | None = None
        deadline = 0.0
        while not self._done.is_set():
            try:
                data = reader.recv(64)
            except socket.timeout:
                data = b""
            except OSError:
                return
            for signum in data:
                if signum not in STOP_SIGNALS or self.started.is_set():
                    continue
                if signalled is not None:  # a second one: at once
                    self._stop(signum)
                signalled, deadline = signum, time.monotonic() + self.grace_s
            if signalled is not None and not self.started.is_set() and time.monotonic() >= deadline:
                self._stop(signalled)

    def _stop(self, signum: int) -> None:
        if self._done.is_set() or self.started.is_set():
            return
        out = self.stream or sys.stderr
        name = signal.Signals(signum).name
        try:
            out.write(f"aigc: {name} during start-up (waiting for the other processes or nodes of the run): "
                      "stopping now; nothing was trained\n")
            out.flush()
        except (OSError, ValueError):
            pass
        for pid in _children():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        if self.cleanup is not None:
            try:
                self.cleanup()
            except Exception:  # noqa: BLE001 - exiting matters more than a tidy directory
                pass
        os._exit(128 + signum)


class _StartupOver(Callback):
    def __init__(self, started: threading.Event):
        self._started = started

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        self._started.set()

    def on_train_end(self, trainer: Any, module: Any) -> None:
        self._started.set()


def _children() -> list[int]:
    """This process's child processes (Lightning starts the other local ranks as children)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except (OSError, ValueError):
            pass
    return pids
