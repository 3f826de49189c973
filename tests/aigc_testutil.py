"""Helpers for aigc tests: tiny configs built in code, CLI runners, the shared-data switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tiny_gan_config(out_dir: Path, **changes) -> dict:
    """A DCGAN on 8x8 digits that trains in a few seconds."""
    config = {
        "name": "tiny-gan",
        "seed": 3,
        "data": {"source": "sklearn-digits", "image_size": 8, "batch_size": 32, "limit": 256},
        "generator": {"name": "dcgan", "size": "debug"},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1,
                  "log_every_n_steps": 1},
        "generate": {"num_samples": 6},
        "postprocess": [{"name": "image-grid", "nrow": 3}],
        "metrics": [],
        "output": {"dir": str(out_dir)},
    }
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            config[section][sub] = value
        else:
            config[section] = value
    return config


def write_yaml(path: Path, config: dict) -> Path:
    from omegaconf import OmegaConf

    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    return path


def run_aigc(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=str(ROOT))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (fast): exit code, stdout, stderr."""
    from aigc_core.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class Forked:
    """``aigc ARGS`` in a forked copy of this process: a process of its own (its own signals, exit
    status and children) that starts with torch and Lightning already imported, where a fresh
    interpreter pays seconds of CPU to import them again. For tests of what a running process
    does (a signal, a kill), not of what it imports. Stdout and stderr go to one pipe, or to the
    file ``output``; ``before()`` runs in the child first (to patch it). The API is the part of
    ``subprocess.Popen``'s the tests use (``returncode`` is -N after signal N)."""

    def __init__(self, *args: str, env: dict | None = None, cwd: str | Path = ROOT,
                 before: Callable[[], None] | None = None, output: Path | None = None):
        import signal
        import threading

        read, write = os.pipe() if output is None else (-1, -1)
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                if output is None:
                    os.close(read)
                else:
                    write = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(write, 1)
                os.dup2(write, 2)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # not pytest's capture
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                if env is not None:
                    os.environ.clear()
                    os.environ.update(env)
                os.chdir(cwd)
                if before is not None:
                    before()
                from aigc_core.cli import main

                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:  # noqa: BLE001 - the parent reads the traceback
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self.pid, self.returncode, self._chunks = pid, None, []
        #: (time.monotonic() of its arrival, line) for each line read from the pipe
        self.lines: list[tuple[float, str]] = []
        self._reader = None
        if output is None:
            os.close(write)
            self._reader = threading.Thread(target=self._read, args=(read,), daemon=True)
            self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                self.lines.append((time.monotonic(), line.decode("utf-8", "replace").rstrip("\n")))
                self._chunks.append(line)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Waits for the exit (``subprocess.TimeoutExpired`` after ``timeout`` s): ("", output)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"aigc (forked, pid {self.pid})", timeout)
            time.sleep(0.02)
        if self._reader is not None:
            self._reader.join(timeout=10)
        return "", b"".join(self._chunks).decode("utf-8", "replace")


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, every: float = 0.01) -> bool:
    """Whether ``predicate`` holds within ``timeout`` seconds (asked every ``every`` s): a bounded wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def register_test_plugin(plugin: Any, name: str, registry: Any = None) -> None:
    """Add a test's plugin object to ``registry`` (default: the process-wide one) through pluggy,
    modalities first, as plugin discovery does; a second call changes nothing."""
    import pluggy

    from aigc_core import get_registry, hookspecs
    from aigc_core.plugins import HOOKS
    from aigc_core.plugins.registry import KINDS, PluginInfo

    registry = registry or get_registry()
    if name in registry.plugins:
        return
    pm = pluggy.PluginManager("aigc")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=name)
    info = PluginInfo(name, "0", "aigc-core (tests)")
    pm.hook.aigc_register_modalities(register=registry.modality_register_function(info))
    for kind in KINDS:
        getattr(pm.hook, HOOKS[kind])(register=registry.register_function(kind, info))
    registry.plugins.setdefault(name, info)


def data_dir() -> Path | None:
    value = os.environ.get("AIGC_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


requires_data = pytest.mark.skipif(data_dir() is None, reason="AIGC_DATA_DIR is not set to ../shared/data")


def tiny_backend_configs(out_dir: Path) -> dict[str, dict]:
    """One tiny config per bundled backend (a few training steps each), keyed by generator name.

    For tests and benchmarks that need a finished run of every backend, not a good one."""
    def config(name: str, data: dict, generator: dict, generate: dict | None = None) -> dict:
        return {
            "name": f"tiny-{name}", "seed": 0, "data": data, "generator": generator,
            "train": {"max_epochs": 1, "max_steps": 2, "accelerator": "cpu", "progress_bar": False,
                      "sample_every_n_epochs": 0, "limit_val_batches": 0},
            "generate": {"num_samples": 4, **(generate or {})},
            "metrics": [], "output": {"dir": str(Path(out_dir) / name)},
        }

    digits = {"source": "sklearn-digits", "image_size": 16, "batch_size": 16, "limit": 64}
    notes = {"source": "synth-notes", "sample_rate": 8000, "duration": 0.25, "num_items": 32, "batch_size": 8}
    return {
        "dcgan": config("dcgan", digits, {"name": "dcgan", "size": "debug"}),
        "vae": config("vae", digits, {"name": "vae", "size": "debug"}),
        "ddpm": config("ddpm", digits, {"name": "ddpm", "size": "debug"}, {"num_inference_steps": 2}),
        "causal-lm": config("causal-lm", {"source": "python-docs", "limit": 20, "max_chars": 20_000, "batch_size": 8},
                            {"name": "causal-lm", "size": "debug", "vocab_size": 300}, {"max_new_tokens": 8}),
        "mel-diffusion": config("mel-diffusion", notes, {"name": "mel-diffusion", "size": "debug"},
                                {"num_inference_steps": 2}),
    }
