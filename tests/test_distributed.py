"""DDP over two CPU processes (gloo) against one process, and sharded generation on 1 and 2 processes.

Agreement of training is statistical, not bitwise: each DDP process draws its own latent noise
and normalises its own half-batch (SyncBatchNorm needs a GPU), while the data of every global
batch is the same. The stated tolerance is therefore relative to what a redraw of the noise alone
does to a one-process run: DDP must land no farther from the one-process weights than that, and
every logged loss must agree within 0.01.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from aigc_testutil import Forked, cli, run_aigc, tiny_gan_config, write_yaml

LOSS_TOLERANCE = 0.01  # absolute, per logged step
WEIGHT_TOLERANCE = 1.25  # DDP distance / noise-redraw distance


def _ddp_config(out: Path) -> dict:
    return tiny_gan_config(
        out, name="ddp", seed=0,
        data={"source": "sklearn-digits", "image_size": 8, "batch_size": 8, "limit": 80,
              "val_fraction": 0.1, "test_fraction": 0.1},
        generator={"name": "dcgan", "size": "debug", "ema_decay": 0.0},
        train={"max_epochs": 2, "accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress_bar": False,
               "sample_every_n_epochs": 0, "log_every_n_steps": 1},
        postprocess=[], generate={"num_samples": 2},
    )


def _losses(run: Path) -> list[tuple[float, float]]:
    with open(run / "logs" / "csv" / "metrics.csv", newline="") as f:
        return [(float(r["loss_d"]), float(r["loss_g"])) for r in csv.DictReader(f) if r.get("loss_d")]


def _weights(run: Path) -> dict:
    import torch

    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {k: v.float() for k, v in state.items() if v.is_floating_point() and "running" not in k}


def _distance(a: dict, b: dict) -> float:
    return float(sum(((a[k] - b[k]) ** 2).sum() for k in b) ** 0.5)


DDP_JOB = """
import os, sys
from pathlib import Path
from aigc_core.cli import main
from aigc_core.testing import check_mid_epoch_resume
rank = os.environ.get("LOCAL_RANK", "0")
code = main(["run", sys.argv[1]])  # the real `aigc run`: rank 0 prints the run directory, rank 1 nothing
if code:
    sys.exit(code)
config = {
    "name": "gan-ddp-resume", "seed": 4,
    "data": {"source": "sklearn-digits", "image_size": 8, "batch_size": 8, "limit": 120},
    "generator": {"name": "dcgan", "size": "debug", "conditional": True},
    "train": {"max_epochs": 2, "accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress_bar": False,
              "sample_every_n_epochs": 0, "log_every_n_steps": 1},
    "metrics": [],
}
# 96 images over 2 processes in batches of 8: 6 batches (12 steps) per process and epoch;
# checkpoints at steps 4, 8, 12 and 16 = epoch 1, batch 2; killed in the step after 18
try:
    resumed = check_mid_epoch_resume(config, Path(sys.argv[2]), kill_at_step=18, every_n_steps=4)
    print("job: rank", rank, "resumed", resumed, flush=True)
except KeyError:  # rank 1 writes no manifest to check: rank 0 speaks for the job
    if rank == "0":
        raise
"""


@pytest.fixture(scope="module")
def ddp_job(tmp_path_factory) -> tuple[Path, str]:
    """One two-process (gloo) job for both DDP tests, as each pays two fresh interpreters that import
    Lightning: ``aigc run`` of ``_ddp_config`` (run directory ``ddp``), then a mid-epoch resume
    check of another config in the same processes. Returns the folder and the job's stdout."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("ddp")
    (root / "job.py").write_text(DDP_JOB)
    path = write_yaml(root / "ddp.yaml", _ddp_config(root / "ddp"))
    done = subprocess.run([sys.executable, str(root / "job.py"), str(path), str(root / "resume")],
                          capture_output=True, text=True, timeout=900, cwd=str(root),
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return root, done.stdout


def test_ddp_two_processes_agree_with_one_process(ddp_job, tmp_path):
    import aigc_core.train.training as training
    from aigc_core import Pipeline

    root, stdout = ddp_job
    config = _ddp_config(root / "ddp")
    assert [line for line in stdout.splitlines() if not line.startswith("job:")] == [str(root / "ddp")]  # rank 1 stays quiet
    ddp = json.loads((root / "ddp" / "manifest.json").read_text())["training"]
    assert ddp["world_size"] == 2

    # the same global batch (2 x 8) on one process, then the same with the latent noise redrawn
    single_over = ["train.devices=1", "train.strategy=auto", "data.batch_size=16"]
    single = Pipeline.from_config(config, [*single_over, f"output.dir={tmp_path / 'single'}"])
    single.fit()
    original = training.derived_seed
    training.derived_seed = lambda *parts: original("redraw", *parts)
    try:
        Pipeline.from_config(config, [*single_over, f"output.dir={tmp_path / 'redraw'}"]).fit()
    finally:
        training.derived_seed = original
    one = json.loads((tmp_path / "single" / "manifest.json").read_text())["training"]
    assert (ddp["global_step"], ddp["epochs"]) == (one["global_step"], one["epochs"])

    curve_ddp, curve_one = _losses(root / "ddp"), _losses(tmp_path / "single")
    assert len(curve_ddp) == len(curve_one) == 8
    worst = max(abs(a - b) for p, q in zip(curve_ddp, curve_one) for a, b in zip(p, q))
    assert worst < LOSS_TOLERANCE

    w_ddp, w_one, w_redraw = (_weights(d) for d in (root / "ddp", tmp_path / "single", tmp_path / "redraw"))
    assert _distance(w_ddp, w_one) < WEIGHT_TOLERANCE * _distance(w_redraw, w_one)
    assert _distance(w_ddp, w_one) > 0  # two processes really ran their own halves


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    from aigc_core import Pipeline

    out = tmp_path_factory.mktemp("shard") / "run"
    config = tiny_gan_config(out, data={"source": "sklearn-digits", "image_size": 8, "batch_size": 32, "limit": 64},
                             train={"max_epochs": 1, "accelerator": "cpu", "progress_bar": False,
                                    "sample_every_n_epochs": 0}, postprocess=[])
    pipe = Pipeline.from_config(config)
    pipe.fit()
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_one_and_two_processes_write_identical_shards(gan_run, tmp_path, capsys):
    code, out, err = cli(capsys, "generate", str(gan_run), "-n", "10", "--shard-size", "3", "--devices", "1",
                         "--out", str(tmp_path / "one"))
    assert code == 0, err
    done = run_aigc("generate", str(gan_run), "-n", "10", "--shard-size", "3", "--devices", "2",
                    "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert one == two
    index = json.loads(one["index.json"])
    assert index["complete"] and [s["start"] for s in index["shards"]] == [0, 3, 6, 9]
    assert sum(len(s["files"]) for s in index["shards"]) == 10
    assert "shard_00003/sample_00009.png" in {f for s in index["shards"] for f in s["files"]}


def _die_in_the_third_shard() -> None:
    """In the killed process: die half-way into the third shard, its temporary directory left behind."""
    import signal

    from aigc_core.train import sharding

    original = sharding.ShardWriter.write_on_batch_end

    def killing(self, *args, **kwargs):
        if len(self.written) == 2:
            os.makedirs(os.path.join(self.out, ".shard_00002.k7x_q2ab.tmp"), exist_ok=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    sharding.ShardWriter.write_on_batch_end = killing


def test_killed_generation_resumes_without_rewriting_finished_shards(gan_run, tmp_path, capsys):
    out = tmp_path / "gen"
    args = ["generate", str(gan_run), "-n", "8", "--shard-size", "2", "--devices", "1", "--out", str(out)]
    killed = Forked(*args, before=_die_in_the_third_shard)  # a process of its own, SIGKILLed
    _, output = killed.communicate(timeout=300)
    assert killed.returncode == -9, output[-2000:]
    finished = sorted(p.name for p in out.glob("shard_*"))
    assert finished == ["shard_00000", "shard_00001"]
    stamps = {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard_*/*")}
    assert not (out / "index.json").exists()

    code, _, err = cli(capsys, *args)
    assert code == 0, err
    assert f"aigc: resumed from {out}: 2 of 4 shards already done (4 of 8 samples)\n" in err
    assert "2 already done" in err
    assert {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard_0000[01]/*")} == stamps
    assert not list(out.glob(".*.tmp"))
    code, _, err = cli(capsys, "generate", str(gan_run), "-n", "8", "--shard-size", "2", "--devices", "1",
                       "--out", str(tmp_path / "fresh"))
    assert code == 0, err
    assert "resumed" not in err
    resumed, fresh = _tree(out), _tree(tmp_path / "fresh")
    index, fresh_index = json.loads(resumed.pop("index.json")), json.loads(fresh.pop("index.json"))
    assert index.pop("resumed_from") == {"shards_done": 2, "samples_done": 4}
    assert fresh_index.pop("resumed_from") is None
    assert resumed == fresh and index == fresh_index  # the same bytes as a job never killed

    code, _, err = cli(capsys, "generate", str(gan_run), "-n", "9", "--shard-size", "2", "--devices", "1",
                       "--out", str(out))
    assert code == 2 and "other settings (differs at n)" in err


@pytest.mark.slow
def test_two_processes_resume_inside_an_epoch(ddp_job):
    """Each DDP process restores its own random state and leaves out its own done batches."""
    _, stdout = ddp_job
    assert "job: rank 0 resumed {'epoch': 1, 'batch': 2, 'step': 16, 'checkpoint': 'checkpoints/last.ckpt'}" in stdout, \
        stdout[-2000:]
