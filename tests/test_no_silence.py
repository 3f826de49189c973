"""No bundled config leaves its user in silence (#26): `aigc run`, `aigc generate` and `aigc serve`'s
start never go 10 s without a line on stderr.

A silent log looks hung, and on a busy machine a step of one second becomes ten: the promise holds
only if every long step is inside a progress phase, whose heartbeat speaks whatever the work's pace.
So each config runs at its smallest (debug size, one or two steps, a few items, its metrics at their
cheapest) with plain progress lines every second, the arrival of each stderr line is timed, and the
longest gap, counted from the process's start to its exit (or to /readyz answering), must stay
under ten seconds. Inside a phase the heartbeat bounds a gap at about a second whatever the load;
outside one, a step is caught once it lasts ten seconds, which a step of a few seconds here does on
a loaded machine (the imports before the first phase took 11.6 s at load 9 before they had one).

Process start and the heavy imports are part of what is measured: one config goes through each
command in a fresh interpreter (``quickstart``), and ``aigc serve`` always is one; the other
configs run in this process (the imports are paid once), to keep the test to a fraction of a
minute of CPU per config.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from aigc_testutil import ROOT, data_dir

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
MAX_SILENCE_S = 10.0
#: The config whose `run` and `generate` start in a fresh interpreter (imports measured).
FRESH = "quickstart"
ENV = {"AIGC_PROGRESS": "plain", "AIGC_PROGRESS_INTERVAL": "1"}

#: How each data source is made small.
SMALL_DATA = {
    "sklearn-digits": ["data.limit=120"],
    "mnist": ["data.limit=120"],
    "text-files": ["data.max_chars=20000"],
    "python-docs": ["data.limit=20", "data.max_chars=20000"],
    "synth-notes": ["data.num_items=60"],
    "audio-folder": ["data.limit=60"],
}
#: Each metric at its cheapest setting that still runs its code (a classifier trained for one epoch...).
CHEAP_METRICS = {
    "frechet": {"num_samples": 10, "classifier_epochs": 1},
    "image-diversity": {"num_samples": 10, "classifier_epochs": 1},
    "image-memorisation": {"num_samples": 10, "classifier_epochs": 1},
    "vae-likelihood": {"k": 2, "num_images": 8},
    "audio-classifier": {"num_samples": 10, "classifier_epochs": 1},
    "vocoder-fidelity": {"num_clips": 2, "stoi": False},
    "text-likelihood": {"max_chars": 2000},
    "memorisation": {},
}
#: Generator settings that make sampling and building cheap (beyond ``size: debug``).
CHEAP_GENERATOR = {
    "ddpm": {},
    "mel-vocoder": {"griffin_lim_iters": 2, "mel_match_iters": 2},
    "causal-lm": {"vocab_size": 300, "n_layer": None, "n_head": None, "n_embd": None, "context": None},
}
CHEAP_GENERATE = {
    "ddpm": {"num_inference_steps": 2},
    "mel-diffusion": {"num_inference_steps": 2},
    "causal-lm": {"max_new_tokens": 8},
}
#: Configs built on another run (``generator.base``/``generator.vocoder``): the bundled config whose
#: tiny run stands in for it.
STAND_INS = {"../runs/gan-mnist": "quickstart", "../runs/text-shakespeare": "text-pydocs"}


def needs_data(name: str) -> bool:
    return "AIGC_DATA_DIR" in (ROOT / "configs" / f"{name}.yaml").read_text()


def _value(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


class Timeline(io.TextIOBase):
    """A stand-in for stderr that notes when each line arrives (seconds since ``t0``)."""

    def __init__(self, t0: float | None = None):
        self.t0 = time.monotonic() if t0 is None else t0
        self.lines: list[tuple[float, str]] = []
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            now = time.monotonic() - self.t0
            *whole, self._partial = (self._partial + text).split("\n")
            self.lines += [(now, line) for line in whole]
        return len(text)

    def isatty(self) -> bool:
        return False

    def add(self, line: str) -> None:
        self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    def longest_silence(self, end: float, start_label: str, end_label: str) -> tuple[float, str, str]:
        points = [(0.0, start_label), *self.lines, (end, end_label)]
        return max((b[0] - a[0], a[1], b[1]) for a, b in zip(points, points[1:]))


def assert_never_silent(timeline: Timeline, end: float, what: str, end_label: str = "exit") -> None:
    gap, before, after = timeline.longest_silence(end, "process start", end_label)
    assert gap < MAX_SILENCE_S, (
        f"{what}: {gap:.1f} s without a line on stderr, between {before!r} and {after!r} "
        f"(a long step outside any progress phase?)")


def run_fresh(args: list[str], env: dict) -> tuple[int, Timeline, float, str]:
    """``aigc ARGS`` in a new interpreter: exit code, timed stderr lines, time of exit, stdout."""
    timeline, out = Timeline(), []
    proc = subprocess.Popen([sys.executable, "-m", "aigc_core", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env}, cwd=str(ROOT))
    readers = [threading.Thread(target=lambda: [timeline.add(line) for line in proc.stderr], daemon=True),
               threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=600)
    finally:
        proc.kill()
    end = time.monotonic() - timeline.t0
    for reader in readers:
        reader.join(timeout=10)
    return code, timeline, end, "".join(out)


def run_here(args: list[str], env: dict) -> tuple[int, Timeline, float, str]:
    """``aigc ARGS`` in this process (imports already paid), stderr timed the same way."""
    from aigc_core.cli import main

    timeline, out = Timeline(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setattr(sys, "stderr", timeline)
        mp.setattr(sys, "stdout", out)
        code = main(args)
    return code, timeline, time.monotonic() - timeline.t0, out.getvalue()


def explain(code: int, timeline: Timeline, what: str) -> str:
    tail = "\n".join(line for _, line in timeline.lines[-15:])
    return f"{what} exited {code}:\n{tail}"


class TinyRuns:
    """The tiny run of each config, made once per session (a personalised config needs its base's)."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {**ENV, "AIGC_CACHE_DIR": str(root / "cache")}
        self.made: dict[str, tuple[Path, Timeline, float]] = {}

    def overrides(self, name: str) -> list[str]:
        from omegaconf import OmegaConf

        from aigc_core.plugins import get_registry

        raw = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / f"{name}.yaml"))
        gen = raw["generator"]
        out = [f"output.dir={self.root / name}", "train.max_steps=1", "train.sample_every_n_epochs=0",
               "generate.num_samples=4", *SMALL_DATA[raw["data"]["source"]]]
        for key, target in (("base", "base"), ("vocoder", "vocoder")):
            if gen.get(key):
                stand_in = STAND_INS.get(gen[key], Path(gen[key]).name)
                out.append(f"generator.{target}={self.get(stand_in)[0]}")
        if not gen.get("base"):  # a personalised run takes its base's size and shapes
            fields = get_registry().get("generator", gen["name"], "generator.name").load().Params.model_fields
            if "size" in fields:
                out.append("generator.size=debug")
            out += [f"generator.{k}={_value(v)}" for k, v in CHEAP_GENERATOR.get(gen["name"], {}).items()]
        out += [f"generate.{k}={_value(v)}" for k, v in CHEAP_GENERATE.get(gen["name"], {}).items()]
        for i, metric in enumerate(raw.get("metrics") or []):
            assert metric["name"] in CHEAP_METRICS, f"{name}: add metric {metric['name']!r} to CHEAP_METRICS"
            out += [f"metrics.{i}.{k}={_value(v)}" for k, v in CHEAP_METRICS[metric["name"]].items()]
        return out

    def get(self, name: str) -> tuple[Path, Timeline, float]:
        if name not in self.made:
            if needs_data(name) and data_dir() is None:
                pytest.skip(f"configs/{name}.yaml reads $AIGC_DATA_DIR, which is not set to ../shared/data")
            args = ["run", str(ROOT / "configs" / f"{name}.yaml"), *self.overrides(name)]
            code, timeline, end, out = (run_fresh if name == FRESH else run_here)(args, self.env)
            assert code == 0, explain(code, timeline, f"aigc run {name}")
            self.made[name] = (Path(out.strip().splitlines()[-1]), timeline, end)
        return self.made[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("silence"))


@pytest.mark.parametrize("name", CONFIGS)
def test_run_and_generate_are_never_silent_for_ten_seconds(tiny_runs, name):
    run_dir, timeline, end = tiny_runs.get(name)
    assert_never_silent(timeline, end, f"aigc run configs/{name}.yaml")
    code, timeline, end, _ = (run_fresh if name == FRESH else run_here)(["generate", str(run_dir)], tiny_runs.env)
    assert code == 0, explain(code, timeline, f"aigc generate {run_dir}")
    assert_never_silent(timeline, end, f"aigc generate ({name})")


def test_serve_start_is_never_silent_for_ten_seconds(tiny_runs):
    """Every tiny run at once in one fresh `aigc serve`, from the process's start to /readyz."""
    runs = []
    for name in CONFIGS:
        if needs_data(name) and data_dir() is None:
            continue  # skipped (and said so) by the run test
        runs.append(str(tiny_runs.get(name)[0]))
    timeline, serving = Timeline(), threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "aigc_core", "serve", "--port", "0", "--log-level", "warning",
                             *runs], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **tiny_runs.env}, cwd=str(ROOT))
    url: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            timeline.add(line)
            found = re.search(r" at (http://\S+/) ", line)
            if found and not url:
                url.append(found.group(1))
                serving.set()
        serving.set()  # the process ended without serving

    threading.Thread(target=read, daemon=True).start()
    try:
        serving.wait(timeout=300)
        assert url, explain(proc.poll(), timeline, "aigc serve (no 'serving ... at URL' line)")
        while True:
            try:
                with urllib.request.urlopen(url[0] + "readyz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() - timeline.t0 < 300, explain(-1, timeline, "aigc serve: /readyz never answered")
            time.sleep(0.05)
        ready = time.monotonic() - timeline.t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert_never_silent(timeline, ready, f"aigc serve ({len(runs)} runs)", end_label="/readyz answered")
