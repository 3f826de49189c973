"""Distributed and crash-safety figures for docs/benchmarks.md.

    .venv/bin/python bench/bench_distributed.py [--samples 3000] [--trials 10] [--skip-ddp]

1. Sharded generation throughput: ``aigc generate --devices 1`` against ``--devices 2`` on the same
   trained DCGAN (whole commands, start-up included), with a check that both wrote the same bytes.
2. Kill-and-resume: SIGKILL a training run at random moments, rerun, count files lost or different
   from an uninterrupted run (goal: zero).
3. DDP agreement: two CPU processes (gloo) against one process for the same global batch and seed.

Every ratio is against a reference measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def aigc(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"aigc {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _digest(path: Path) -> str:
    """Bytes, except for Lightning checkpoints: they name their directory, so compare what they hold."""
    if path.suffix != ".ckpt":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    import torch

    ckpt = torch.load(path, weights_only=True)
    h = hashlib.sha256(f"{ckpt['epoch']}:{ckpt['global_step']}".encode())
    for key, value in sorted(ckpt["state_dict"].items()):
        h.update(key.encode() + value.cpu().numpy().tobytes())
    return h.hexdigest()


def bench_generation(work: Path, samples: int) -> dict:
    from aigc_testutil import tiny_gan_config, write_yaml

    run = work / "gen-run"
    config = tiny_gan_config(run, data={"source": "sklearn-digits", "image_size": 32, "batch_size": 64, "limit": 256},
                             generator={"name": "dcgan", "size": "small"}, postprocess=[],
                             train={"max_epochs": 1, "accelerator": "cpu", "progress_bar": False,
                                    "sample_every_n_epochs": 0})
    aigc("run", str(write_yaml(work / "gen.yaml", config)))
    shard = str(max(1, samples // 12))
    result = {}
    for devices in (1, 2):
        out = work / f"gen-{devices}"
        seconds = aigc("generate", str(run), "-n", str(samples), "--devices", str(devices), "--shard-size", shard,
                       "--out", str(out))
        result[devices] = {"seconds": round(seconds, 2), "samples_per_s": round(samples / seconds, 1)}
    result["identical"] = tree(work / "gen-1") == tree(work / "gen-2")
    result["ratio_2_over_1"] = round(result[2]["samples_per_s"] / result[1]["samples_per_s"], 2)
    return result


def bench_kills(work: Path, trials: int) -> dict:
    from aigc_testutil import write_yaml
    from test_crash import _child_run, _inode, assert_whole, crash_config, started_work

    class child:  # a forked `aigc run` (torch already imported, so kills land in training, not imports)
        def __init__(self, config: Path):
            self.pid, self.code = _child_run(["run", str(config)]), None

        def poll(self):
            if self.code is None:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.code = os.waitstatus_to_exitcode(status)
            return self.code

        def send_signal(self, sig):
            os.kill(self.pid, sig)

        def wait(self):
            if self.code is None:
                self.code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            return self.code

    import torch

    torch.set_num_threads(1)
    reference = work / "reference"
    durations = []
    for name in ("warm-up", "reference"):  # the first run pays for a cold disk cache
        proc = child(write_yaml(work / f"{name}.yaml", crash_config(work / name)))
        begun = started_work(work / name, None, proc.pid)
        proc.wait()
        durations.append(time.time() - begun)  # from config.yaml (imports done) to the end
    duration = min(durations)
    expected = {k: v for k, v in tree(reference).items() if _compared(k)}

    rng = random.Random(11)
    kills = lost = broken = 0
    for trial in range(trials):
        run = work / f"killed-{trial}"
        config = write_yaml(work / f"killed-{trial}.yaml", crash_config(run))
        for _ in range(3):  # up to three kills per trial, then a clean finish
            before = _inode(run / "config.yaml")
            proc = child(config)
            started_work(run, before, proc.pid)
            time.sleep(rng.uniform(0.0, 0.8) * duration)
            finished = proc.poll() is not None
            if not finished:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            try:
                assert_whole(run)
            except Exception as exc:  # noqa: BLE001 - counted and shown, not raised
                broken += 1
                print(f"half-written after a kill: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
            if finished:
                break
        if child(config).wait() != 0:
            lost += len(expected)
            continue
        got = {k: v for k, v in tree(run).items() if _compared(k)}
        lost += sum(1 for k, v in expected.items() if got.get(k) != v)
    return {"trials": trials, "sigkills": kills, "files_compared": len(expected), "files_lost_or_different": lost,
            "half_written_states_seen": broken, "uninterrupted_s": round(duration, 1)}


def _compared(rel: str) -> bool:
    """Files whose bytes an interrupted run must reproduce (logs and plots name the directory or the time)."""
    return rel.startswith(("outputs/", "model/", "checkpoints/")) or rel == "logs/csv/metrics.csv"


def bench_ddp(work: Path) -> dict:
    import test_distributed as td
    from aigc_testutil import write_yaml

    import aigc_core.training as training
    from aigc_core import Pipeline

    config = td._ddp_config(work / "ddp")
    seconds_ddp = aigc("run", str(write_yaml(work / "ddp.yaml", config)))
    over = ["train.devices=1", "train.strategy=auto", "data.batch_size=16"]
    started = time.perf_counter()
    Pipeline.from_config(config, [*over, f"output.dir={work / 'single'}"]).fit()
    seconds_one = time.perf_counter() - started
    original = training.derived_seed
    training.derived_seed = lambda *p: original("redraw", *p)
    Pipeline.from_config(config, [*over, f"output.dir={work / 'redraw'}"]).fit()
    training.derived_seed = original
    a, b = td._losses(work / "ddp"), td._losses(work / "single")
    w = {d: td._weights(work / d) for d in ("ddp", "single", "redraw")}
    return {
        "steps": len(a), "max_abs_loss_diff": round(max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p, q)), 5),
        "weight_distance_ddp_vs_1proc": round(td._distance(w["ddp"], w["single"]), 5),
        "weight_distance_noise_redraw_vs_1proc": round(td._distance(w["redraw"], w["single"]), 5),
        "ratio": round(td._distance(w["ddp"], w["single"]) / td._distance(w["redraw"], w["single"]), 3),
        "ddp_command_s": round(seconds_ddp, 1), "single_fit_s": round(seconds_one, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-kills", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aigc-bench-dist-") as tmp:
        work = Path(tmp)
        figures = {"cpus": os.cpu_count()}
        if not args.skip_generation:
            figures["generation"] = bench_generation(work, args.samples)
            print(json.dumps(figures, indent=2), flush=True)
        if not args.skip_kills:
            figures["kill_and_resume"] = bench_kills(work, args.trials)
            print(json.dumps(figures["kill_and_resume"], indent=2), flush=True)
        if not args.skip_ddp:
            figures["ddp"] = bench_ddp(work)
            print(json.dumps(figures["ddp"], indent=2), flush=True)
    g = figures.get("generation")
    if g:
        print(f"generation: {g[1]['samples_per_s']} samples/s on 1 process, {g[2]['samples_per_s']} on 2 "
              f"(ratio {g['ratio_2_over_1']}), identical bytes: {g['identical']}")


if __name__ == "__main__":
    main()
