"""The CPU allocator tuning: fewer page faults in a network loop, applied by training and inference."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from aigc_core.helpers import allocator

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning needs glibc")

LOOP = textwrap.dedent("""
    import resource, sys, torch
    from aigc_core.helpers.allocator import tune_allocator
    print(tune_allocator())
    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.GroupNorm(8, 32), torch.nn.SiLU(),
                              torch.nn.Conv2d(32, 1, 3, padding=1))
    x = torch.randn(64, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            net(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def run_loop(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != allocator.ENV}
    out = subprocess.run([sys.executable, "-c", LOOP], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


def test_tuning_cuts_the_page_faults_of_a_network_loop():
    """glibc raises its own mmap threshold after the first large free, so where the freed buffers
    land decides whether an untuned process faults them back: 5 of 8 processes here did (76,000 to
    91,000 faults), 3 had none. So the untuned reference is the first of up to six processes that
    faults, and the tuned figure is the worst of four (0 to 3,136 seen): a tuning that does nothing
    has a worst of four that faults as the reference does."""
    tuned = [run_loop() for _ in range(4)]
    assert {flag for flag, _ in tuned} == {"True"}
    plain_faults = 0
    for _ in range(6):
        flag, plain_faults = run_loop(**{allocator.ENV: "0"})
        assert flag == "False"
        if plain_faults:
            break
    worst = max(faults for _, faults in tuned)
    assert worst * 5 < plain_faults, (worst, plain_faults)


def test_a_users_malloc_settings_are_left_alone(monkeypatch):
    """In this process, with mallopt replaced: a user's MALLOC_* variable means no call at all."""
    calls = []

    class Libc:
        def mallopt(self, *args):
            calls.append(args)
            return 1

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(allocator, "_done", None)
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert allocator.tune_allocator() is False and calls == []
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.setattr(allocator, "_done", None)
    assert allocator.tune_allocator() is True and len(calls) == 2  # the stand-in does see an untuned process


def test_training_and_inference_tune_the_allocator(monkeypatch):
    from aigc_core.generation import inference
    from aigc_core.train import training

    calls = []
    monkeypatch.setattr(inference, "tune_allocator", lambda: calls.append("inference"))
    inference.Inference(object(), generator_name="g", run_name="r", modality="image",
                        validate_options=lambda mapping, prefix: mapping, defaults={}, num_samples=1, seed=0)
    assert calls == ["inference"]

    class Tuned(Exception):
        pass

    def tuned():
        raise Tuned

    monkeypatch.setattr(training, "tune_allocator", tuned)
    with pytest.raises(Tuned):  # before it reads any argument
        training.fit(None, None, None, seed=0, rundir=None, resume=False)
