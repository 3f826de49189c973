"""Test helpers for the server: a tiny trained GAN run, a real tiny text run when aigc-text is
installed, and a fake streaming text generator for when it is not.

Test-only code, so it lives beside the tests, not in the product. The fake is registered through a
pluggy plugin object, the same way a real plugin is, so the server is exercised only through the
public plugin contract.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

from aigc_core import Field, Params, hookimpl
from aigc_core.server.live import LiveServer  # noqa: F401 - re-exported for the tests

# -- a tiny trained GAN -------------------------------------------------------------------


def tiny_gan_run(run_dir: str | Path, name: str = "digits-gan") -> Path:
    """A DCGAN trained for one epoch on 200 digits at 8x8: seconds on a laptop CPU. Reused
    when ``run_dir`` already holds it, so several test modules can share one."""
    from aigc_core import Pipeline

    from aigc_core import RunDir

    run_dir = Path(run_dir)
    if RunDir(run_dir).manifest_path.is_file() and RunDir(run_dir).model_dir.is_dir():
        return run_dir
    pipe = Pipeline.from_config({
        "name": name,
        "seed": 0,
        "data": {"source": "sklearn-digits", "image_size": 8, "limit": 200, "batch_size": 64},
        "generator": {"name": "dcgan", "size": "debug"},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [],
        "output": {"dir": str(run_dir)},
    })
    pipe.fit()
    return run_dir



def tiny_text_run(run_dir: str | Path, name: str = "tiny-lm", steps: int = 2, vocab_size: int = 300,
                  limit: int = 20, max_chars: int = 20_000) -> Path | None:
    """A real ``causal-lm`` (aigc-text) at debug size on the Python docs, or None when that plugin
    is not installed. Two steps leave it untrained, but every code path is the real one."""
    from aigc_core import Pipeline
    from aigc_core import get_registry

    if "causal-lm" not in get_registry().names("generator"):
        return None
    from aigc_core import RunDir

    run_dir = Path(run_dir)
    if RunDir(run_dir).manifest_path.is_file() and RunDir(run_dir).model_dir.is_dir():
        return run_dir
    Pipeline.from_config({
        "name": name, "seed": 0,
        "data": {"source": "python-docs", "limit": limit, "max_chars": max_chars, "batch_size": 8},
        "generator": {"name": "causal-lm", "size": "debug", "vocab_size": vocab_size},
        "train": {"max_epochs": 1, "max_steps": steps, "accelerator": "cpu", "progress_bar": False,
                  "sample_every_n_epochs": 0},
        "metrics": [], "output": {"dir": str(run_dir)},
    }).fit()
    return run_dir

# -- a fake streaming text generator -------------------------------------------------------

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "far")


class FakeTextOptions(Params):
    prompt: str = ""
    max_new_tokens: int = Field(8, ge=1, le=10_000)
    delay_s: float = Field(0.0, ge=0, le=3, description="pause per piece, to make streams slow enough to cancel")
    ignore_cancel: bool = Field(False, description="behave like a generator that never calls check_cancelled()")
    steps: int = Field(0, ge=0, le=10_000, description="slow steps before answering, like diffusion steps: each "
                                                     "sleeps step_s, then reports progress and checks cancellation")
    step_s: float = Field(0.05, ge=0, le=3, description="seconds per step")


class _Counters:
    """What the fake's streams did, for tests to check that cancelled streams stop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.closed = 0
        self.pieces = 0
        self.cancelled = 0  # generate calls stopped early by a cancelled token
        #: ``[asked, done]`` per generate call that asked for ``steps``, in call order; ``done``
        #: grows while the call runs, so a test sees where a stopped call stopped.
        self.steps: list[list[int]] = []


counters = _Counters()


def _fake_classes():
    # Imported lazily: the bases pull in torch and Lightning.
    from aigc_core import (Cancelled, Content, DataParams, DataSource, Generator, Item, check_cancelled,
                           report_progress, sample_seed)

    class FakeTextParams(Params):
        words: int = len(WORDS)

    class FakeTextSource(DataSource):
        modality = "text"
        Params = DataParams

        @property
        def info(self) -> dict:
            return {"kind": "fake"}

    class FakeText(Generator):
        modality = "text"
        streams = True
        Params = FakeTextParams
        GenerateOptions = FakeTextOptions

        @staticmethod
        def _words(seed: int, index: int, count: int) -> list[str]:
            state = sample_seed(seed, index)
            out = []
            for _ in range(count):
                state = (state * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
                out.append(WORDS[(state >> 33) % len(WORDS)])
            return out

        def generate(self, n: int, seed: int = 0, prompt: str = "", max_new_tokens: int = 8,
                     delay_s: float = 0.0, ignore_cancel: bool = False, steps: int = 0,
                     step_s: float = 0.05) -> Content:
            if steps:  # a slow model that works in steps, checking between them as a real one does
                record = [steps, 0]
                with counters.lock:
                    counters.steps.append(record)
                for done in range(steps):
                    if not ignore_cancel:
                        check_cancelled()
                    time.sleep(step_s)
                    record[1] = done + 1
                    report_progress(done + 1, steps)
            # once per call: a slow model, for queue and timeout tests. The delay passes in small
            # steps with a cancellation check between them, as a real decoding loop checks per token.
            deadline = time.monotonic() + delay_s
            while (left := deadline - time.monotonic()) > 0:
                report_progress(round((delay_s - left) * 1000), round(delay_s * 1000))  # milliseconds waited
                if not ignore_cancel:
                    try:
                        check_cancelled()
                    except Cancelled:
                        with counters.lock:
                            counters.cancelled += 1
                        raise
                time.sleep(min(0.01, left))
            items = []
            for i in range(n):
                text = " ".join(([prompt] if prompt else []) + self._words(seed, i, max_new_tokens))
                items.append(Item(text, {"index": i, "seed": seed, "prompt": prompt}))
            return Content("text", items)

        def stream(self, seed: int = 0, prompt: str = "", max_new_tokens: int = 8,
                   delay_s: float = 0.0, ignore_cancel: bool = False, steps: int = 0,
                   step_s: float = 0.05) -> Iterator[str]:
            with counters.lock:
                counters.started += 1
            try:
                if prompt:
                    yield prompt
                for word in self._words(seed, 0, max_new_tokens):
                    if delay_s:
                        time.sleep(delay_s)
                    with counters.lock:
                        counters.pieces += 1
                    yield " " + word
            finally:
                with counters.lock:
                    counters.closed += 1

        def save_artifact(self, directory: Path) -> list[Path]:
            path = Path(directory) / "fake.json"
            path.write_text('{"fake": true}\n')
            return [path]

        @classmethod
        def load_artifact(cls, directory: Path, params: Any, info: dict | None = None) -> "FakeText":
            return cls(params, info or {})

    return FakeTextSource, FakeText


class FakeTextPlugin:
    """A pluggy plugin object registering the fake; see ``register_fake_text``."""

    @hookimpl
    def aigc_register_data_sources(self, register):
        register("fake-text-source", "server_kit:FakeTextSource", modality="text",
                 description="Test-only: no data")

    @hookimpl
    def aigc_register_generators(self, register):
        register("fake-text", "server_kit:FakeText", modality="text",
                 description="Test-only: deterministic words, streams with an optional delay")


def __getattr__(name: str) -> Any:
    if name in ("FakeTextSource", "FakeText"):
        source, gen = _fake_classes()
        globals().update(FakeTextSource=source, FakeText=gen)
        return globals()[name]
    raise AttributeError(name)


def register_fake_text(registry: Any = None) -> None:
    """Add the fake's components to ``registry`` (default: the process-wide one) through pluggy."""
    import pluggy

    from aigc_core import get_registry, hookspecs
    from aigc_core.plugins import HOOKS
    from aigc_core.registry import PluginInfo

    registry = registry or get_registry()
    if "fake-text" in registry.names("generator"):
        return
    pm = pluggy.PluginManager("aigc")
    pm.add_hookspecs(hookspecs)
    pm.register(FakeTextPlugin(), name="fake-text")
    info = PluginInfo("fake-text", "0", "aigc-core (tests)")
    for kind in ("data_source", "generator"):
        getattr(pm.hook, HOOKS[kind])(register=registry.register_function(kind, info))
    registry.plugins.setdefault("fake-text", info)


def fake_text_run(run_dir: str | Path, name: str = "fake-text", generate: str = "{num_samples: 2}") -> Path:
    """A run directory for the fake text generator (it has nothing to train), written through ``RunDir``."""
    from aigc_core import RunDir

    register_fake_text()
    rundir = RunDir(run_dir)
    if rundir.state() == "run":
        rundir.clear()
    rundir.create(f"name: {name}\nseed: 0\ndata: {{source: fake-text-source}}\ngenerator: {{name: fake-text}}\n"
                  f"generate: {generate}\n", {"name": name, "modality": "text"})
    rundir.save_model(lambda directory: (Path(directory) / "fake.json").write_text('{"fake": true}\n'))
    return rundir.path


def tiny_vae_run(run_dir: str | Path, name: str = "digits-vae") -> Path | None:
    """A ``vae`` (aigc-vae) at debug size trained for one epoch on 100 digits at 8x8, or None when
    that plugin is not installed; reused when ``run_dir`` already holds it."""
    from aigc_core import Pipeline, RunDir, get_registry

    if "vae" not in get_registry().names("generator"):
        return None
    run_dir = Path(run_dir)
    if RunDir(run_dir).manifest_path.is_file() and RunDir(run_dir).model_dir.is_dir():
        return run_dir
    Pipeline.from_config({
        "name": name, "seed": 0,
        "data": {"source": "sklearn-digits", "image_size": 8, "limit": 100, "batch_size": 50},
        "generator": {"name": "vae", "size": "debug"},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [], "output": {"dir": str(run_dir)},
    }).fit()
    return run_dir
