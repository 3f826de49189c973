"""Whatever happens to a process, a run loses nothing it had finished.

SIGKILL at random moments, planted and corrupt checkpoints, NaN losses, a full disk.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import pathlib
import pickle
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from aigc_testutil import cli, tiny_gan_config, write_yaml

KILL_TRIALS = int(os.environ.get("AIGC_KILL_TRIALS", "3"))


def crash_config(out: Path, epochs: int = 3) -> dict:
    return tiny_gan_config(
        out, seed=5,
        data={"source": "sklearn-digits", "image_size": 8, "batch_size": 16, "limit": 80},
        train={"max_epochs": epochs, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1,
               "log_every_n_steps": 1},
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

    from aigc_core.training import verify_checkpoint

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


def _child_run(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            import torch

            torch.set_num_threads(1)
            from aigc_core.cli import main

            code = main(argv)
        finally:
            os._exit(code)
    return pid


def _inode(path: Path):
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def started_work(run: Path, before, pid: int) -> float:
    """Wait until the child has rewritten config.yaml (a new inode: its imports are done); returns when."""
    while _inode(run / "config.yaml") in (before, None):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise RuntimeError(f"the child ended before it started work (exit {os.waitstatus_to_exitcode(status)})")
        time.sleep(0.005)
    return time.time()


def test_sigkill_at_random_moments_then_resume(tmp_path, capsys):
    reference = tmp_path / "reference"  # uninterrupted, in a child like the killed runs (same threads)
    pid = _child_run(["run", str(write_yaml(tmp_path / "reference.yaml", crash_config(reference)))])
    begun = started_work(reference, None, pid)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    duration = time.time() - begun  # from config.yaml to the end: training, generation, export
    expected = json.loads((reference / "manifest.json").read_text())

    run = tmp_path / "killed"
    config = write_yaml(tmp_path / "crash.yaml", crash_config(run))
    rng = random.Random(7)
    killed = 0
    for trial in range(KILL_TRIALS):
        before = _inode(run / "config.yaml")
        pid = _child_run(["run", str(config)])
        started_work(run, before, pid)
        time.sleep(rng.uniform(0.0, 0.8) * duration)
        if not os.waitpid(pid, os.WNOHANG)[0]:
            os.kill(pid, signal.SIGKILL)
            killed += 1
            os.waitpid(pid, 0)
        assert_whole(run)

    pid = _child_run(["run", str(config)])
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert_whole(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["training"]["global_step"] == expected["training"]["global_step"]
    assert manifest["training"]["epochs"] == expected["training"]["epochs"]
    # the epoch seeds make the resumed run the uninterrupted one, bit for bit
    assert manifest["checkpoint"]["files"] == expected["checkpoint"]["files"]
    samples = {o["path"]: o["sha256"] for o in manifest["outputs"] if o["path"].startswith("outputs/")}
    assert samples and samples == {o["path"]: o["sha256"] for o in expected["outputs"] if o["path"].startswith("outputs/")}
    # the loss log keeps the rows of every attempt, once each, as if nothing had happened
    assert (run / "logs/csv/metrics.csv").read_text() == (reference / "logs/csv/metrics.csv").read_text()
    assert killed >= 2
    assert not list(run.rglob(".*"))  # no temporaries left behind


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
    from aigc_gan.model import DCGAN

    original = DCGAN.training_step

    def poisoned(self, batch, batch_idx):
        out = original(self, batch, batch_idx)
        if batch_idx == 2:
            self.log("loss_injected", math.nan)
        return out

    monkeypatch.setattr(DCGAN, "training_step", poisoned)
    last = run_copy / "checkpoints" / "last.ckpt"
    before = sha(last), sha(run_copy / "model" / "model.safetensors")
    code, err = _resume(capsys, run_copy)
    assert code == 1
    assert err.startswith("aigc: error: training stopped: loss_injected became nan at step")
    assert "the last good checkpoint is kept" in err and err.count("\n") == 1
    assert (sha(last), sha(run_copy / "model" / "model.safetensors")) == before
    assert_whole(run_copy)


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    import torch

    from aigc_core.training import NonFiniteLoss, RunCheckpointIO, verify_checkpoint

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
    from aigc_core.sharding import shard_done

    assert shard_done(out, 0)
