"""Progress: what long work tells the person waiting for it.

Two channels, and neither is an argument, so no signature carries them:

* **Steps.** A generator that works in steps (diffusion sampling, decoding tokens, batches), or a
  loop such as a scoring classifier's training, calls :func:`report_progress` with how much is
  done of how much. Whoever opened the scope receives it: the server's request (the web page's
  bar), or the CLI's current phase. Outside any scope the call costs one context-variable lookup.
* **Phases.** The pipeline names each long phase with :func:`phase` (reading data, training,
  generating, post-processing, exporting, each metric). The CLI turns phases into a rich line on
  stderr (what runs, done/total, elapsed, time left) on a terminal, and into plain lines in a log
  (one when a phase starts, one when it ends, one every ``AIGC_PROGRESS_INTERVAL`` seconds, 5 by
  default, while it moves), so no long stretch is silent. Without a display (the Python API, the
  server, ``--quiet``) a phase costs almost nothing and prints nothing.

This module imports only the standard library: the CLI imports it at start-up. rich is imported
when a terminal display shows its first phase.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, TextIO

#: ``(done, total)``; called on the generating thread, so it must be quick and never raise.
ProgressCallback = Callable[[int, int], None]

_current: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar("aigc_progress", default=None)

#: Display kinds: ``rich`` (a live line, for terminals), ``plain`` (lines, for logs), ``off`` (--quiet).
KINDS = ("auto", "rich", "plain", "off")
DEFAULT_INTERVAL_S = 5.0


@contextlib.contextmanager
def progress_reporting(callback: ProgressCallback | None) -> Iterator[None]:
    """Send :func:`report_progress` calls of this thread to ``callback`` for the block (None: nowhere)."""
    reset = _current.set(callback)
    try:
        yield
    finally:
        _current.reset(reset)


def report_progress(done: int, total: int) -> None:
    """Tell whoever waits that ``done`` of ``total`` steps of the current work are finished."""
    callback = _current.get()
    if callback is not None:
        try:
            callback(int(done), int(total))
        except Exception:  # noqa: BLE001 - a broken display must not break generation
            pass


# --------------------------------------------------------------------------------------------
# Phases


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h04m``: short enough for a progress line."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Phase:
    """One running phase: a label, how much of how much is done, and the time it started.

    ``update`` may be called as often as a loop likes: the display decides what to show. A phase
    that ``listens`` receives the :func:`report_progress` calls made inside it; a report in other
    units than the phase's (a diffusion sampler's steps in a phase counted in samples) moves it by
    the same fraction.
    """

    def __init__(self, display: "Display | None", label: str, total: float | None, parent: "Phase | None",
                 *, unit: str = "", external: bool = False, lazy: bool = False):
        self.display = display
        self.label = label
        self.total = total
        #: ``%``: ``done`` of ``total`` (100) is shown as a percentage.
        self.unit = unit
        self.external = external
        #: Shown in a log only once it has lasted ``AIGC_PROGRESS_INTERVAL`` seconds (see :func:`phase`).
        self.lazy = lazy
        #: A plain line about this phase was printed (a lazy phase says its end only then).
        self.shown = False
        self.done: float = 0
        self.detail = ""
        self.eta: float | None = None  # set by the caller who knows better (a time budget)
        self.parent = parent
        self.started = time.monotonic()
        self._rate_mark: tuple[float, float] | None = None  # (time, done) of the first update
        self.key: Any = None  # the display's handle

    @property
    def path(self) -> str:
        """The label with its parents': ``metric frechet > training the scoring classifier``."""
        return f"{self.parent.path} > {self.label}" if self.parent is not None else self.label

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float | None:
        """Seconds left: the caller's estimate, else the pace since the first update."""
        if self.eta is not None:
            return max(0.0, self.eta)
        if not self.total or self._rate_mark is None:
            return None
        t0, d0 = self._rate_mark
        moved, spent = self.done - d0, time.monotonic() - t0
        if moved <= 0 or spent <= 0:
            return None
        return max(0.0, (self.total - self.done) * spent / moved)

    def update(self, done: float, total: float | None = None, *, detail: str | None = None,
               eta: float | None = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        if detail is not None:
            self.detail = detail
        self.eta = eta
        if self._rate_mark is None:
            self._rate_mark = (time.monotonic(), done)
        if self.display is not None:
            try:
                self.display.update(self)
            except Exception:  # noqa: BLE001 - a broken display must not break the work
                pass

    def advance(self, steps: float = 1) -> None:
        self.update(self.done + steps)

    def report(self, done: int, total: int) -> None:
        """A :func:`report_progress` call inside this phase (another unit moves it by the same share)."""
        if self.total and total and total != self.total:
            self.update(self.total * done / total)
        else:
            self.update(done, total or None)

    def line(self) -> str:
        """The phase as one plain line (without the ``aigc:`` prefix)."""
        parts = [self.path]
        if self.unit == "%" and self.total:
            parts.append(f"{100 * self.done / self.total:.0f}%")
        elif self.total:
            parts.append(f"{int(self.done)}/{int(self.total)}")
        elif self.done:
            parts.append(f"{int(self.done)}")
        if self.detail:
            parts.append(self.detail)
        left = self.remaining()
        text = parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
        timing = f"{format_duration(self.elapsed)} elapsed"
        if left is not None and self.done < (self.total or 0):
            timing += f", about {format_duration(left)} left"
        return f"{text} ({timing})"


class _NullPhase(Phase):
    """What ``phase`` yields without a display: every call does nothing."""

    def __init__(self) -> None:
        super().__init__(None, "", None, None)

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    report = advance = update  # type: ignore[assignment]


_NULL = _NullPhase()
_display: "Display | None" = None
_stack: contextvars.ContextVar[Phase | None] = contextvars.ContextVar("aigc_phase", default=None)


def display_kind() -> str | None:
    """The display the CLI chose (``rich``, ``plain``, ``off``), or None when none was chosen (the
    Python API, the server): training then leaves Lightning's bar to the ``train`` section."""
    return None if _display is None else _display.kind


@contextlib.contextmanager
def phase(label: str, total: float | None = None, *, listen: bool = True, external: bool = False,
          unit: str = "", lazy: bool = False) -> Iterator[Phase]:
    """Run the block as a named phase of the work; yields the :class:`Phase` to update.

    ``listen``: :func:`report_progress` calls inside the block move this phase (leave it False
    where nested work reports its own steps, as a preview made during training would).
    ``external``: something else draws the live view of this phase on a terminal (Lightning's bar
    during training); the display then only prints its end.
    ``lazy``: a log hears of the phase only if it lasts ``AIGC_PROGRESS_INTERVAL`` seconds (then its
    heartbeat and end, as any phase's). For steps that are quick on an idle machine but may crawl on
    a busy one (importing torch, checking the config): their silence is still covered, and a config
    error found inside them stays the one line it is, with no "started"/"stopped" around it.
    """
    display = _display
    if display is None or display.kind == "off":
        yield _NULL
        return
    p = Phase(display, label, total, _stack.get(), unit=unit, external=external, lazy=lazy)
    token = _stack.set(p)
    reporter = _current.set(p.report) if listen else None
    display.start(p)
    ok = False
    try:
        yield p
        ok = True
    finally:
        if reporter is not None:
            _current.reset(reporter)
        _stack.reset(token)
        try:
            display.finish(p, ok)
        except Exception:  # noqa: BLE001 - never hide the work's own error behind the display's
            pass


# --------------------------------------------------------------------------------------------
# Displays


class Display:
    kind = "off"

    def start(self, p: Phase) -> None: ...

    def update(self, p: Phase) -> None: ...

    def finish(self, p: Phase, ok: bool) -> None: ...

    def close(self) -> None: ...


class PlainDisplay(Display):
    """Lines for a log: a phase's start, its end, and its state every ``interval`` seconds while it
    moves. A phase whose work reports nothing (one long forward pass) still gets a line when the
    log has been silent for ``interval`` seconds, so a log never looks hung while work goes on."""

    kind = "plain"

    def __init__(self, stream: TextIO | None = None, interval: float | None = None):
        self.stream = stream
        self.interval = _interval() if interval is None else float(interval)
        self._last: dict[int, float] = {}
        self._said: dict[int, tuple] = {}
        self._lock = threading.Lock()
        self._open: list[Phase] = []
        self._quiet_since = time.monotonic()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _print(self, text: str, about: Phase | None = None) -> None:
        stream = self.stream or sys.stderr  # the stream of the moment: tests and pytest swap sys.stderr
        with self._lock:
            print(f"aigc: {text}", file=stream, flush=True)
            self._quiet_since = time.monotonic()
            if about is not None:
                about.shown = True

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            if self._open and time.monotonic() - self._quiet_since >= self.interval:
                try:
                    p = self._open[-1]
                    self._print(p.line(), p)
                except Exception:  # noqa: BLE001 - the heartbeat must never take the work down
                    pass

    def start(self, p: Phase) -> None:
        self._last[id(p)] = time.monotonic()
        self._open.append(p)
        if self._heartbeat is None and self.interval > 0:
            self._heartbeat = threading.Thread(target=self._beat, name="aigc-progress", daemon=True)
            self._heartbeat.start()
        if p.lazy:
            return
        total = f" ({int(p.total)} to do)" if p.total else ""
        self._print(f"{p.path}: started{total}", p)

    def update(self, p: Phase) -> None:
        now = time.monotonic()
        said = (int(p.done), p.total, p.detail)
        if now - self._last.get(id(p), 0.0) >= self.interval and said != self._said.get(id(p)):
            self._last[id(p)] = now
            self._said[id(p)] = said
            self._print(p.line(), p)

    def finish(self, p: Phase, ok: bool) -> None:
        self._last.pop(id(p), None)
        self._said.pop(id(p), None)
        if p in self._open:
            self._open.remove(p)
        if p.lazy and not p.shown:
            return
        if not ok:
            self._print(f"{p.path}: stopped after {format_duration(p.elapsed)}")
            return
        self._print(f"{p.path}: done ({_amount(p)}{format_duration(p.elapsed)})")

    def close(self) -> None:
        self._stop.set()


class RichDisplay(Display):
    """A live rich line per running phase on stderr; a finished phase leaves one line behind.

    The live view runs only while a phase that it draws is open, so what other code prints
    between phases (warnings, Lightning's own bar during training) is never drawn over.
    """

    kind = "rich"

    def __init__(self) -> None:
        self._progress: Any = None
        self._lock = threading.RLock()
        self._live = 0

    def _ensure(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[amount]}"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        return self._progress

    def start(self, p: Phase) -> None:
        if p.external:
            return
        with self._lock:
            progress = self._ensure()
            if self._live == 0:
                progress.start()
            self._live += 1
            p.key = progress.add_task(p.path, total=p.total, amount=_amount(p).rstrip(", "))

    def update(self, p: Phase) -> None:
        if p.key is None:
            return
        with self._lock:
            description = f"{p.path} [dim]{p.detail}[/]" if p.detail else p.path
            self._progress.update(p.key, completed=p.done, total=p.total, description=description,
                                  amount=_amount(p).rstrip(", "))

    def finish(self, p: Phase, ok: bool) -> None:
        with self._lock:
            progress = self._ensure()
            if p.key is not None:
                progress.remove_task(p.key)
                self._live -= 1
            if p.key is not None and self._live == 0:
                progress.stop()
            if p.lazy:  # its live line was enough: a quick start-up leaves no line behind
                return
            done = f" {_amount(p).rstrip(', ')}" if p.total else ""
            mark = "[green]done[/]" if ok else "[red]stopped[/]"
            progress.console.print(f"aigc: {p.path}:{done} {mark} in {format_duration(p.elapsed)}", highlight=False)

    def close(self) -> None:
        with self._lock:
            if self._progress is not None and self._live:
                self._progress.stop()
                self._live = 0


def _amount(p: Phase) -> str:
    if not p.total:
        return ""
    return f"{100 * p.done / p.total:.0f}%, " if p.unit == "%" else f"{int(p.done)}/{int(p.total)}, "


def interval() -> float:
    """Seconds of silence a log may see while work goes on (``AIGC_PROGRESS_INTERVAL``, 5 by default)."""
    return _interval()


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("AIGC_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def choose(kind: str = "auto", stream: TextIO | None = None) -> str:
    """The display ``kind`` stands for here: ``auto`` (and ``$AIGC_PROGRESS``, which overrides it)
    is rich on a terminal and plain lines otherwise."""
    kind = os.environ.get("AIGC_PROGRESS", kind) if kind == "auto" else kind
    if kind not in KINDS:
        kind = "auto"
    if kind == "auto":
        stream = stream or sys.stderr
        kind = "rich" if getattr(stream, "isatty", lambda: False)() else "plain"
    return kind


@contextlib.contextmanager
def showing(kind: str = "auto") -> Iterator[str]:
    """Show phases on stderr for the block (the CLI's commands run inside one); yields the kind chosen."""
    global _display
    chosen = choose(kind)
    previous = _display
    _display = RichDisplay() if chosen == "rich" else PlainDisplay() if chosen == "plain" else Display()
    try:
        yield chosen
    finally:
        try:
            _display.close()
        finally:
            _display = previous
