"""Errors the user can act on.

Every error that reaches the CLI is one of these: the CLI prints ``str(err)`` on one line and
exits with ``err.exit_code``. Anything else is a bug and shows a traceback only with --debug.
"""

import difflib
from typing import Any, Iterable


def did_you_mean(word: Any, choices: Iterable) -> str:
    """``; did you mean 'x'?`` naming the closest of ``choices`` to ``word``, or nothing."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (or its type's name), for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class AigcError(Exception):
    """A failure the user can understand from one line (exit 1)."""

    exit_code = 1


class UsageError(AigcError):
    """The command line or an argument is wrong (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value is wrong; the message starts with its full key path (exit 2)."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class PluginError(AigcError):
    """A plugin failed to load or broke the contract; names the plugin and its distribution."""


class CheckpointError(AigcError):
    """A checkpoint is missing, truncated, foreign or fails its hash check."""


class DataError(AigcError):
    """Input data is missing, empty or unreadable; names the file or directory."""


class Interrupted(AigcError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; rerunning resumes it.

    The exit code is the shell's convention for death by that signal (130, 143), so schedulers and
    scripts see an interruption, not a failure.
    """

    def __init__(self, signum: int, summary: str):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        #: What happened, without the advice (the CLI adds the exact command instead).
        self.summary = summary
        super().__init__(f"{summary}; run the same command again to resume")


class QualityGateError(AigcError):
    """A metric's quality gate set to ``fail`` tripped (collapse, ...); the run's files are kept for a look."""
