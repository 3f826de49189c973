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


def trained_once(run_dir: str | Path, name: str, data: dict, generator: dict, **train: Any) -> Path:
    """``run_dir`` as it is when it already holds a finished run (so several test modules share
    one), else ``generator`` trained there on ``data`` for one epoch on the CPU (``train`` adds to that)."""
    from aigc_core import Pipeline, RunDir

    run_dir = Path(run_dir)
    if RunDir(run_dir).manifest_path.is_file() and RunDir(run_dir).model_dir.is_dir():
        return run_dir
    Pipeline.from_config({
        "name": name, "seed": 0, "data": data, "generator": generator,
        "train": {"max_epochs": 1, **train, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0},
        "metrics": [], "output": {"dir": str(run_dir)},
    }).fit()
    return run_dir


def tiny_gan_run(run_dir: str | Path, name: str = "digits-gan") -> Path:
    """A DCGAN trained for one epoch on 200 digits at 8x8: seconds on a laptop CPU. Reused
    when ``run_dir`` already holds it, so several test modules can share one."""
    return trained_once(run_dir, name, {"source": "sklearn-digits", "image_size": 8, "limit": 200, "batch_size": 64},
                        {"name": "dcgan", "size": "debug"})


def tiny_text_run(run_dir: str | Path, name: str = "tiny-lm", steps: int = 2, vocab_size: int = 300,
                  limit: int = 20, max_chars: int = 20_000) -> Path | None:
    """A real ``causal-lm`` (aigc-text) at debug size on the Python docs, or None when that plugin
    is not installed. Two steps leave it untrained, but every code path is the real one."""
    from aigc_core import get_registry

    if "causal-lm" not in get_registry().names("generator"):
        return None
    data = {"source": "python-docs", "limit": limit, "max_chars": max_chars, "batch_size": 8}
    return trained_once(run_dir, name, data, {"name": "causal-lm", "size": "debug", "vocab_size": vocab_size},
                        max_steps=steps)

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

        def generate(self, n: int, seed: int, options: Any) -> Content:
            prompt, max_new_tokens, delay_s = options.prompt, options.max_new_tokens, options.delay_s
            ignore_cancel, steps, step_s = options.ignore_cancel, options.steps, options.step_s
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

        def stream(self, seed: int, options: Any) -> Iterator[str]:
            prompt, max_new_tokens, delay_s = options.prompt, options.max_new_tokens, options.delay_s
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
    from aigc_testutil import register_test_plugin

    register_test_plugin(FakeTextPlugin(), "fake-text", registry)


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
    from aigc_core import get_registry

    if "vae" not in get_registry().names("generator"):
        return None
    return trained_once(run_dir, name, {"source": "sklearn-digits", "image_size": 8, "limit": 100, "batch_size": 50},
                        {"name": "vae", "size": "debug"})


def _personalised_runs(base_run: str | Path, out_dir: str | Path, names: list[str], first_seed: int, data: dict,
                       generator, train: dict) -> list[Path]:
    """One adapter run per name on ``base_run``, each with its own seed; reused when already there.
    ``generator(position)`` is the generator section past name and base."""
    from aigc_core import Pipeline, RunDir

    runs = []
    for position, name in enumerate(names):
        run_dir = Path(out_dir) / name
        if not (RunDir(run_dir).manifest_path.is_file() and RunDir(run_dir).model_dir.is_dir()):
            Pipeline.from_config({
                "name": name, "seed": first_seed + position, "data": data,
                "generator": {"base": str(Path(base_run).absolute()), **generator(position)},
                "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0,
                          **train},
                "metrics": [], "output": {"dir": str(run_dir)},
            }).fit()
        runs.append(run_dir)
    return runs


def personalised_gan_runs(base_run: str | Path, out_dir: str | Path, names: list[str]) -> list[Path]:
    """LoRA adapters (rank 1, the projection and the transposed convolution that makes the pixels) on a finished
    ``tiny_gan_run``, each trained a few steps with its own seed so each changes the output its own
    way. What ``aigc serve`` holds on one base."""
    return _personalised_runs(
        base_run, out_dir, names, 10, {"source": "sklearn-digits", "image_size": 8, "limit": 64, "batch_size": 16},
        lambda position: {"name": "dcgan", "adapter": {"rank": 1, "targets": ["project.0", "body.0"]},
                          **({"lr_g": 1e-3} if position == 1 else {})},  # one changes a base parameter
        {"max_steps": 4, "limit_val_batches": 0})


def personalised_text_runs(base_run: str | Path, out_dir: str | Path, names: list[str]) -> list[Path]:
    """LoRA adapters (rank 2, attention projections) on a finished ``tiny_text_run``, a few steps each."""
    return _personalised_runs(
        base_run, out_dir, names, 20, {"source": "python-docs", "limit": 20, "max_chars": 20_000, "batch_size": 8},
        lambda position: {"name": "causal-lm", "adapter": {"rank": 2, "targets": ["c_attn"]}}, {"max_steps": 2})


# -- fuzzing the server's bodies -----------------------------------------------------------


#: Strings a lax reader might take for numbers, booleans or nothing.
ODD_STRINGS = ["99999999", "5000", "1e3", "-1", "nan", "inf", " 7 ", "true", "", "0x10"]


def fuzz_json(*more_strings: str) -> tuple[Any, Any]:
    """Hypothesis strategies for JSON scalars and for nested values built of them, hostile ones
    included (huge and non-finite numbers, ``ODD_STRINGS`` and ``more_strings``)."""
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 20),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
        st.sampled_from([*ODD_STRINGS, *more_strings]),
    )
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=5)
    return scalars, values
