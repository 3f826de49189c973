"""The ``aigc`` command. Each subcommand lives in its own light module (no torch at import):
``add_parser(subparsers)`` declares it, the function set as ``func`` runs it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..contract.errors import AigcError, UsageError

#: Subcommand modules, in the order ``aigc --help`` lists them.
COMMAND_MODULES = ("pipeline_cmds", "plugins_cmds", "serve_cmds")

EXIT_CODES = """exit codes:
  0  success
  1  failure while running (data, checkpoint, training, writing outputs)
  2  usage or configuration error
"""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(
        prog="aigc",
        description="Build AI-generated content: train a generator on data, generate, post-process, export.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("AIGC_DEBUG") == "1"
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        _take_late_key_values(args, extra)
        if args.version:
            from .. import __version__

            print(f"aigc {__version__}")
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return 2 if not args.command else 0
        return int(args.func(args) or 0)
    except AigcError as exc:
        if debug:
            raise
        print(f"aigc: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aigc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug or an unexpected library failure
        if debug:
            raise
        print(f"aigc: error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _take_late_key_values(args: argparse.Namespace, extra: list[str]) -> None:
    """``key=value`` words may follow flags (``aigc generate RUN -n 4 label=3``): argparse leaves
    them over, and they join the command's own list of overrides or options."""
    if not extra:
        return
    target = next((name for name in ("overrides", "options") if isinstance(getattr(args, name, None), list)), None)
    stray = [word for word in extra if word.startswith("-") or "=" not in word]
    if target is None or stray:
        raise UsageError(f"aigc: unrecognized arguments: {' '.join(stray or extra)}")
    getattr(args, target).extend(extra)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
