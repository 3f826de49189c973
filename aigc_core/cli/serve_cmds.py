"""``aigc serve``: the HTTP API and web page over trained runs (``aigc_core.server``).

Loading runs takes seconds to minutes (torch's import, checkpoints checked against their sha256),
so the command says what it loads as it goes, on stderr, and where the server listens once it
does: a line per model and a heartbeat, never more than ten seconds of silence.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve trained runs over HTTP, with a web page at /",
        description="Load each RUN_DIR once (checkpoints verified) and serve it as a model: a JSON API "
                    "(OpenAPI at /docs and /openapi.json), text streaming as server-sent events, and a "
                    "web page at /. Binds to loopback unless --host says otherwise; any other address "
                    "needs an API key in the environment (see --api-key-env).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a directory written by 'aigc run'; NAME=RUN_DIR serves it under NAME. Personalised runs "
                        "on one base share one copy of it, served too: a request picks the adapter "
                        "('adapter' field)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key-env", default="AIGC_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default: AIGC_API_KEY); when set, "
                        "every request must send it")
    p.add_argument("--max-batch", type=int, default=16, help="samples merged into one generate call (default: 16)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to batch with (default: 5)")
    p.add_argument("--queue-size", type=int, default=64,
                   help="waiting requests per model before answering 429 (default: 64)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: 60)")
    p.add_argument("--max-samples", type=int, default=64, help="items per request (default: 64)")
    p.add_argument("--max-body-kb", type=int, default=64, help="request body size limit in KiB (default: 64)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from ORIGIN to call the API (repeatable; default: none)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="on a loopback bind, also answer requests whose Host header is NAME (a local reverse "
                        "proxy's name; repeatable). Other names are refused with 421: DNS-rebinding protection")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a client has to send a request's headers (default: 10)")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a client has to send a request's body once its headers arrived (default: 30)")
    p.add_argument("--keep-alive", type=float, default=5.0, metavar="S",
                   help="seconds an idle keep-alive connection stays open (default: 5)")
    p.add_argument("--max-connections", type=int, default=512, metavar="N",
                   help="open connections at most; past it the oldest one still owing its headers is closed "
                        "(default: 512; keep it under the process's open-file limit, ulimit -n)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..contract.errors import AigcError
    from ..server.settings import ServerSettings
    from ..helpers.waiting import passive_waits

    passive_waits()  # before torch is imported (see aigc_core.helpers.waiting)

    settings = ServerSettings(
        host=args.host, port=args.port, api_key_env=args.api_key_env, max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms, queue_size=args.queue_size, timeout_s=args.timeout,
        max_samples=args.max_samples, max_body_bytes=args.max_body_kb * 1024, cors_origins=args.cors_origin,
        allowed_hosts=args.allow_host, header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
        keep_alive_s=args.keep_alive, max_connections=args.max_connections,
    )  # refuses a public bind without a (strong) key before any model loads
    beat = Heartbeat().__enter__()  # from here to the first "serving" line, never a silence longer than the interval
    try:
        say("loading " + (f"{len(args.runs)} models" if len(args.runs) > 1 else "1 model")
            + " (the first load imports torch)")
        from ..helpers.collector import held_off_while_loading

        with held_off_while_loading():  # imports and the models' objects: see aigc_core.helpers.collector
            beat.doing("loading the server (FastAPI, uvicorn)")
            from ..server.app import create_app
            from ..server.connections import bind_socket, guarded_server, uvicorn_config
            from ..server.models import load_models

            given = {str(spec).partition("=")[2] if "=" in str(spec) else str(spec) for spec in args.runs}

            def report(position: int, total: int, run_dir, model) -> None:
                if model is None:
                    beat.doing(f"loading {run_dir}")
                    base = "" if str(run_dir) in given else " (the base of personalised runs given, loaded once for them)"
                    say(f"loading model {position + 1} of {total}: {run_dir}{base}")
                else:
                    say(f"loaded {model.name} ({_kind(model)}) in {beat.elapsed():.1f} s")
                    beat.doing("loading the next model")

            beat.doing("reading the run directories")  # which runs share a base: configs read, torch imported
            models = load_models(args.runs, report=report)  # a bad run directory fails here, before a socket is bound
            beat.doing("starting the server")
            app = create_app(models, settings)
        sock = bind_socket(settings.host, settings.port)
    except BaseException:
        beat.__exit__()
        raise
    url = _url(settings.host, sock.getsockname()[1])

    def started() -> None:  # uvicorn says nothing of a socket it was handed: say where to go
        beat.__exit__()
        say(f"serving {', '.join(models)} at {url} (web page; API reference at {url}docs); Ctrl-C stops")

    try:
        server = guarded_server(uvicorn_config(app, settings, log_level=args.log_level), on_started=started)
        server.run(sockets=[sock])
    finally:
        beat.__exit__()
        sock.close()
    if not server.started:
        raise AigcError(f"the server on {settings.host}:{settings.port} did not start; see the log above")
    return 0


_said = [time.monotonic()]  # when the last line went out: the heartbeat speaks after a silence, not on a clock


def say(text: str) -> None:
    print(f"aigc serve: {text}", file=sys.stderr, flush=True)
    _said[0] = time.monotonic()


def _kind(model) -> str:
    shared = f", adapter on {model.base}, sharing its weights" if model.base else ""
    return f"{model.modality}, {model.inference.generator_name}" + (", streams" if model.can_stream else "") + shared


def _url(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class Heartbeat:
    """A line once ``every`` seconds (``AIGC_PROGRESS_INTERVAL``, 5 by default) have passed without
    one while a step (importing, loading a model, starting the server) goes on."""

    def __init__(self, every: float | None = None):
        from ..contract import progress

        self.every = every if every is not None else (progress.interval() or progress.DEFAULT_INTERVAL_S)
        self._what: str | None = None
        self._since = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="aigc-serve-heartbeat", daemon=True)

    def doing(self, what: str | None) -> None:
        self._what, self._since = what, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._since

    def _beat(self) -> None:
        while not self._done.wait(min(0.25, self.every)):
            what = self._what
            if what is not None and time.monotonic() - _said[0] >= self.every:
                say(f"still {what} ({self.elapsed():.0f} s)")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._done.is_set():
            return
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1)
