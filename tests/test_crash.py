"""Whatever happens to a process, a run loses nothing it had finished.

SIGKILL at random moments, planted and corrupt checkpoints, NaN losses, a full disk.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import mmap
import os
import pathlib
import pickle
import random
import re
import shutil
import signal
import struct
import time
from pathlib import Path

import pytest

from aigc_testutil import Forked, cli, tiny_gan_config, write_yaml

KILL_TRIALS = int(os.environ.get("AIGC_KILL_TRIALS", "3"))
#: ``train.checkpoint_every_n_steps`` of the crash config: every 3 batches (a GAN steps two optimisers per batch).
INTERVAL = 6


def crash_config(out: Path, epochs: int = 3, **data) -> dict:
    return tiny_gan_config(
        out, seed=5,
        data={"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 80, **data},
        train={"max_epochs": epochs, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1,
               "log_every_n_steps": 1, "checkpoint_every_n_steps": INTERVAL},
        generate={"num_samples": 4}, postprocess=[],
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_whole(run: Path) -> None:
    """Every file in the run directory is complete: parses, decodes, or matches its recorded sha256."""
    import torch
    from omegaconf import OmegaConf
    from PIL import Image
    from safetensors.torch import load_file

    from aigc_core.store.checkpoints import verify_checkpoint

    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(run).parts):
            continue  # a temporary name never renamed into place: swept away by the next run
        suffix = path.suffix
        if suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".yaml":
            OmegaConf.load(path)
        elif suffix == ".ckpt":
            verify_checkpoint(run, path)
            assert "state_dict" in torch.load(path, weights_only=True)
        elif suffix == ".safetensors":
            load_file(str(path))
        elif suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            assert rows and all(len(r) == len(rows[0]) for r in rows), path


# --------------------------------------------------------------------------------------------
# Killing a run and checking what its rerun did


RESUMED = re.compile(r"^aigc: resumed from (\S+): epoch (\d+), batch (\d+), step (\d+)$", re.M)


class Child(Forked):
    """A forked ``aigc`` (torch already imported, so signals land in training, not in imports).

    It tells its parent its global step after every training batch through shared memory, and
    writes its stderr to a file, so that a test knows how far a killed run had got and where its
    rerun said it resumed from.
    """

    def __init__(self, argv: list[str], stderr: Path):
        self.stderr = Path(stderr)
        self.memory = mmap.mmap(-1, 8)  # shared with the child: anonymous mappings survive fork
        self.memory[:] = struct.pack("q", -1)
        super().__init__(*argv, before=self._report_steps, output=self.stderr)

    def _report_steps(self) -> None:  # pragma: no cover - in the child
        import torch

        torch.set_num_threads(1)
        from aigc_core.store.checkpoints import RunCheckpoints

        memory, original = self.memory, RunCheckpoints.on_train_batch_end

        def reporting(callback, trainer, *args, **kwargs):
            memory[:] = struct.pack("q", int(trainer.global_step))  # this batch's optimiser steps are done
            return original(callback, trainer, *args, **kwargs)

        RunCheckpoints.on_train_batch_end = reporting

    @property
    def code(self) -> int | None:
        return self.returncode

    @property
    def step(self) -> int:
        """The global step after the last training batch it finished (-1 before the first)."""
        return struct.unpack("q", self.memory[:])[0]

    def wait(self, timeout: float = 300.0) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                self.wait()
                raise AssertionError(f"the child did not end within {timeout:.0f} s")
            time.sleep(0.01)
        return self.returncode

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_for_step(self, step: int, timeout: float = 300.0) -> bool:
        """True once it has finished ``step`` steps; False if it ended first."""
        deadline = time.monotonic() + timeout
        while self.step < step:
            if self.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise AssertionError(f"the child did not reach step {step} within {timeout:.0f} s")
            time.sleep(0.002)
        return True

    def err(self) -> str:
        return self.stderr.read_text()

    def resumed(self) -> dict | None:
        """Where it said it resumed from, or None if it started from scratch."""
        found = RESUMED.findall(self.err())
        assert len(found) <= 1, found
        if not found:
            return None
        path, epoch, batch, step = found[0]
        return {"checkpoint": path, "epoch": int(epoch), "batch": int(batch), "step": int(step)}


def written_position(run: Path) -> dict | None:
    """Where ``checkpoints/last.ckpt`` on disk says training stood, or None if there is none."""
    import torch

    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    state = torch.load(last, weights_only=True)["aigc_resume"]
    return {"checkpoint": str(last), "epoch": state["epoch"], "batch": state["batch"], "step": state["step"]}


def check_resume(kill: dict, interval: int) -> None:
    """The rerun after a kill resumed from the checkpoint on disk at the kill, losing at most one interval."""
    written, reported, reached = kill["written"], kill["reported"], kill["reached"]
    if written is None:
        assert reported is None, f"the rerun claims to resume from {reported}, but no checkpoint was on disk"
        assert reached <= interval, f"killed at step {reached} with no checkpoint on disk: more than {interval} lost"
        return
    assert reported is not None, f"the rerun started from scratch although {written} was on disk"
    assert reported == written, f"the rerun resumed from {reported}, but the checkpoint on disk was {written}"
    assert reported["step"] <= reached, f"resumed from step {reported['step']}, beyond the {reached} reached"
    assert reached - reported["step"] <= interval, \
        f"killed at step {reached}, resumed from step {reported['step']}: more than {interval} steps redone"


def kill_and_resume(config: Path, logs: Path, run: Path, kills: int, rng: random.Random, total_steps: int,
                    step_s: float, after_s: float, first_step: int | None = None) -> tuple[list[dict], Child]:
    """SIGKILL ``aigc run`` at random moments, each time rerunning it; returns the kills and the last child.

    Three kills in four land in training (at a random step, a random fraction into it), the rest
    after it (generation, export); ``first_step`` puts the first one just after that step. Each
    kill records the step reached, the checkpoint on disk and, once the rerun has started, where
    the rerun said it resumed from.
    """
    done: list[dict] = []
    child = Child(["run", str(config)], logs / "attempt-0.err")
    for attempt in range(1, kills + 1):
        if attempt == 1 and first_step is not None:
            alive = child.wait_for_step(first_step)
            delay = rng.uniform(0.0, step_s)
        elif rng.random() < 0.75:
            alive = child.wait_for_step(rng.randint(1, total_steps))
            delay = rng.uniform(0.0, step_s)
        else:
            alive = child.wait_for_step(total_steps)
            delay = rng.uniform(0.0, after_s)
        time.sleep(delay)
        if not alive or child.poll() is not None:
            break  # it finished first
        child.signal(signal.SIGKILL)
        child.wait()
        started = child.resumed()
        reached = child.step if child.step >= 0 else (started["step"] if started else 0)
        assert_whole(run)
        kill = {"reached": reached, "written": written_position(run)}
        child = Child(["run", str(config)], logs / f"attempt-{attempt}.err")
        kill["next"] = child
        done.append(kill)
    return done, child


def _settle(kills: list[dict]) -> None:
    """Once every rerun has started (and maybe ended), read where each said it resumed from."""
    for kill in kills:
        kill["reported"] = kill.pop("next").resumed()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The crash config run once uninterrupted, in a child like the killed runs (same threads)."""
    work = tmp_path_factory.mktemp("reference")
    run = work / "run"
    child = Child(["run", str(write_yaml(work / "c.yaml", crash_config(run, epochs=6)))], work / "run.err")
    assert child.wait_for_step(1)
    first = time.monotonic()
    assert child.wait_for_step(10**9) is False and child.code == 0  # runs to the end
    manifest = json.loads((run / "manifest.json").read_text())
    steps = manifest["training"]["global_step"]
    return {"run": run, "manifest": manifest, "steps": steps, "step_s": (time.monotonic() - first) / steps}


def test_sigkill_at_random_moments_then_resume(tmp_path, reference):
    run = tmp_path / "killed"
    config = write_yaml(tmp_path / "crash.yaml", crash_config(run, epochs=6))
    # the first kill lands inside epoch 2 (4 batches, 8 steps), after the checkpoint of its first batch
    kills, last = kill_and_resume(config, tmp_path, run, KILL_TRIALS, random.Random(7), reference["steps"],
                                  step_s=reference["step_s"], after_s=1.0, first_step=19)
    assert last.wait() == 0, last.err()
    _settle(kills)
    shown = [{k: v for k, v in kill.items() if k != "next"} for kill in kills]
    assert len(kills) >= 2, shown
    for kill in kills:
        check_resume(kill, INTERVAL)
    # a test of resuming must have seen resumes: here, from inside an epoch too
    assert sum(k["reported"] is not None for k in kills) >= 2, shown
    assert kills[0]["reported"]["batch"] > 0, shown

    assert_whole(run)
    expected = reference["manifest"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["training"]["resumed_from"] == {**kills[-1]["reported"], "checkpoint": "checkpoints/last.ckpt"}
    assert manifest["training"]["global_step"] == expected["training"]["global_step"]
    assert manifest["training"]["epochs"] == expected["training"]["epochs"]
    # the resumed run is the uninterrupted one, bit for bit
    assert manifest["checkpoint"]["files"] == expected["checkpoint"]["files"]
    samples = {o["path"]: o["sha256"] for o in manifest["outputs"] if o["path"].startswith("outputs/")}
    assert samples and samples == {o["path"]: o["sha256"] for o in expected["outputs"] if o["path"].startswith("outputs/")}
    # the loss log keeps the rows of every attempt, once each, as if nothing had happened
    assert (run / "logs/csv/metrics.csv").read_text() == (reference["run"] / "logs/csv/metrics.csv").read_text()
    assert not list(run.rglob(".*"))  # no temporaries left behind


def test_resume_checks_fail_on_a_restart_from_scratch():
    """What the kill test asserts catches the failure of issue 12: a rerun that quietly starts over."""
    written = {"checkpoint": "last.ckpt", "epoch": 2, "batch": 1, "step": 18}
    check_resume({"reached": 22, "written": written, "reported": dict(written)}, INTERVAL)
    with pytest.raises(AssertionError, match="started from scratch"):
        check_resume({"reached": 22, "written": written, "reported": None}, INTERVAL)
    with pytest.raises(AssertionError, match="more than 6 steps redone"):
        check_resume({"reached": 30, "written": written, "reported": dict(written)}, INTERVAL)
    with pytest.raises(AssertionError, match="but the checkpoint on disk was"):
        check_resume({"reached": 22, "written": written, "reported": {**written, "step": 12, "batch": 2}}, INTERVAL)
    with pytest.raises(AssertionError, match="no checkpoint on disk"):
        check_resume({"reached": 9, "written": None, "reported": None}, INTERVAL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_writes_a_checkpoint_and_says_how_to_resume(tmp_path, reference, signum):
    run = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", crash_config(run, epochs=6))
    child = Child(["run", str(config), "train.log_every_n_steps=1", "--restart"], tmp_path / "stopped.err")
    assert child.wait_for_step(3)
    child.signal(signum)
    reached = child.step
    assert child.wait(timeout=120) == 128 + signum
    err = child.err().strip().splitlines()
    assert err[0] == (f"aigc: {signal.Signals(signum).name} received: writing a checkpoint after this batch, "
                      "then stopping (press Ctrl-C again to exit at once)")
    written = written_position(run)
    assert written is not None and 0 <= written["step"] - reached <= 2  # the batch in progress, no more
    assert err[-1] == (f"aigc: stopped by {signal.Signals(signum).name} after writing {written['checkpoint']} "
                       f"(epoch {written['epoch']}, batch {written['batch']}, step {written['step']}); "
                       f"resume with: aigc run {config} train.log_every_n_steps=1")
    assert len(err) == 2 and "Traceback" not in child.err()
    assert_whole(run)

    again = Child(["run", str(config), "train.log_every_n_steps=1"], tmp_path / "resumed.err")
    assert again.wait() == 0, again.err()
    assert again.resumed() == written
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["checkpoint"]["files"] == reference["manifest"]["checkpoint"]["files"]


def test_second_ctrl_c_exits_at_once(tmp_path):
    run = tmp_path / "run"
    child = Child(["run", str(write_yaml(tmp_path / "c.yaml", crash_config(run, epochs=6)))], tmp_path / "c.err")
    assert child.wait_for_step(3)
    child.signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while "SIGINT received" not in child.err():  # a second signal sent before the first is taken is lost
        assert time.monotonic() < deadline and child.poll() is None, child.err()
        time.sleep(0.001)
    child.signal(signal.SIGINT)  # while the batch in progress is still running
    assert child.wait(timeout=60) == 130
    err = child.err().strip().splitlines()
    assert err[-1] == "aigc: SIGINT again: exiting at once; the last checkpoint on disk is kept"
    assert "stopped by" not in child.err()  # it did not wait for the checkpoint
    assert_whole(run)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    from aigc_core import Pipeline

    out = tmp_path_factory.mktemp("crash") / "base"
    Pipeline.from_config(crash_config(out, epochs=1)).fit()
    return out


@pytest.fixture()
def run_copy(base_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    return run


def _resume(capsys, run: Path, *overrides: str) -> tuple[int, str]:
    code, _, err = cli(capsys, "run", str(run / "config.yaml"), f"output.dir={run}", "train.max_epochs=2", *overrides)
    return code, err


def _vouch(run: Path, name: str = "last.ckpt") -> None:
    """What an attacker who can also edit manifest.json would do."""
    manifest = json.loads((run / "manifest.json").read_text())
    digest = sha(run / "checkpoints" / name)
    manifest["checkpoints"][name] = {"sha256": digest, "accept": [digest]}
    (run / "manifest.json").write_text(json.dumps(manifest))


class Planted:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("vouched", [False, True], ids=["unrecorded", "sha-in-manifest"])
def test_planted_pickle_is_never_run(run_copy, tmp_path, capsys, vouched):
    import torch

    marker = tmp_path / "pwned"
    payload = {"state_dict": {}, "loops": Planted(marker)}
    assert pickle.loads(pickle.dumps(payload)) and marker.exists()  # the plant is live...
    marker.unlink()
    torch.save(payload, run_copy / "checkpoints" / "last.ckpt")
    if vouched:
        _vouch(run_copy)
    code, err = _resume(capsys, run_copy)
    assert code == 1
    assert not marker.exists()  # ...and aigc never ran it
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    if vouched:
        assert "refused to load: it holds objects other than tensors" in line
    else:
        assert "refused" in line and "last.ckpt" in line


def test_corrupt_and_foreign_checkpoints_are_refused(run_copy, capsys):
    import torch

    last = run_copy / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])
    code, err = _resume(capsys, run_copy)
    assert code == 1 and "corrupt, truncated or foreign checkpoint (sha256 differs from manifest.json)" in err

    _vouch(run_copy)  # truncated but recorded: torch.load itself fails, still one clear line
    code, err = _resume(capsys, run_copy)
    assert code == 1 and "corrupt or truncated checkpoint" in err and "Traceback" not in err

    last.write_bytes(good)
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["state_dict"] = {f"other.{k}": v for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, last)
    _vouch(run_copy)
    code, err = _resume(capsys, run_copy)
    assert code == 1 and "does not fit this generator" in err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(run_copy, capsys, monkeypatch):
    from aigc_gan.training import DCGANTraining

    original = DCGANTraining.training_step

    def poisoned(self, batch, batch_idx):
        out = original(self, batch, batch_idx)
        if batch_idx == 2:
            self.log("loss_injected", math.nan)
        return out

    monkeypatch.setattr(DCGANTraining, "training_step", poisoned)
    last = run_copy / "checkpoints" / "last.ckpt"
    before = sha(last), sha(run_copy / "model" / "model.safetensors")
    code, err = _resume(capsys, run_copy, "train.checkpoint_every_n_steps=0")  # no newer good one before the NaN
    assert code == 1
    resumed, error = err.splitlines()  # where it resumed, then why it stopped: one line each
    assert resumed.startswith("aigc: resumed from ") and resumed.endswith("epoch 1, batch 0, step 8")
    assert error.startswith("aigc: error: training stopped: loss_injected became nan at step")
    assert "the last good checkpoint is kept" in error
    assert (sha(last), sha(run_copy / "model" / "model.safetensors")) == before
    assert_whole(run_copy)


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    import torch

    from aigc_core.store.checkpoints import NonFiniteLoss, RunCheckpointIO, verify_checkpoint

    io = RunCheckpointIO(tmp_path)
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    good = sha(path)
    with pytest.raises(NonFiniteLoss, match="weight w became non-finite at step 2"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, math.inf, 0.0])}, "global_step": 2}, path)
    assert sha(path) == good and verify_checkpoint(tmp_path, path) == good


@pytest.fixture()
def full_disk(monkeypatch):
    """fsyncs after the first ``limit`` fail as on a full disk."""
    calls = {"n": 0, "limit": 2}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > calls["limit"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_disk_full_while_writing_outputs(run_copy, tmp_path, capsys, full_disk):
    out = tmp_path / "out"
    code, _, err = cli(capsys, "generate", str(run_copy), "-n", "5", "--out", str(out))
    assert code == 1
    assert "No space left on device" in err and "earlier files are intact" in err and err.count("\n") == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["sample_00000.png", "sample_00001.png"]  # whole files only, no temporaries
    from PIL import Image

    for name in names:
        with Image.open(out / name) as image:
            image.load()


def test_disk_full_while_writing_shards(run_copy, tmp_path, capsys, full_disk):
    out = tmp_path / "shards"
    full_disk["limit"] = 3  # generation.json, then shard 0's sample and its shard.json
    code, _, err = cli(capsys, "generate", str(run_copy), "-n", "6", "--shard-size", "1", "--devices", "1",
                       "--out", str(out))
    assert code == 1
    assert "No space left on device" in err and "finished shards are intact" in err
    assert sorted(p.name for p in out.iterdir()) == ["generation.json", "shard_00000"]
    from aigc_core.train.sharding import shard_done

    assert shard_done(out, 0)
