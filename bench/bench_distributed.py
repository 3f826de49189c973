"""Distributed and crash-safety figures for docs/benchmarks.md.

    .venv/bin/python bench/bench_distributed.py [--samples 3000] [--trials 10] [--kills 3] [--epochs 60] [--limit 400] [--skip-ddp]

1. Sharded generation throughput: ``aigc generate --devices 1`` against ``--devices 2`` on the same
   trained DCGAN (whole commands, start-up included), with a check that both wrote the same bytes.
2. Kill-and-resume: SIGKILL a training run at random moments (``--kills`` per trial), rerun after
   each kill; for each kill check that the rerun resumed from the checkpoint on disk at the kill
   and redid at most one checkpoint interval (``train.checkpoint_every_n_steps``), report the
   training time lost per kill, and count files lost or different from an uninterrupted run
   (goals: 0 restarts from scratch, 0 files lost).
3. DDP agreement: two CPU processes (gloo) against one process for the same global batch and seed.

Every ratio is against a reference measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
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


def bench_kills(work: Path, trials: int, kills: int, epochs: int, limit: int) -> dict:
    """SIGKILL a training run at random moments, rerun it each time, and measure what each kill cost.

    For every kill: the rerun must resume from the checkpoint that was on disk at the kill (a
    rerun that starts over although one was there counts as a restart from scratch), redoing at
    most one checkpoint interval; at the end the files must equal an uninterrupted run's.
    """
    from aigc_testutil import write_yaml
    from test_crash import INTERVAL, Child, _settle, check_resume, crash_config, kill_and_resume

    import torch

    torch.set_num_threads(1)
    durations = []
    for name in ("warm-up", "reference"):  # the first run pays for a cold disk cache
        child = Child(["run", str(write_yaml(work / f"{name}.yaml", crash_config(work / name, epochs=epochs, limit=limit)))],
                      work / f"{name}.err")
        child.wait_for_step(1)
        begun = time.monotonic()
        child.wait(timeout=3600)
        durations.append(time.monotonic() - begun)
    reference = work / "reference"
    training = json.loads((reference / "manifest.json").read_text())["training"]
    steps, step_s = training["global_step"], training["train_s"] / training["global_step"]
    expected = {k: v for k, v in tree(reference).items() if _compared(k)}

    rng = random.Random(11)
    records, lost, failures = [], 0, []
    for trial in range(trials):
        run = work / f"killed-{trial}"
        logs = work / f"killed-{trial}-logs"
        logs.mkdir()
        config = write_yaml(work / f"killed-{trial}.yaml", crash_config(run, epochs=epochs, limit=limit))
        done, last = kill_and_resume(config, logs, run, kills, rng, steps, step_s=step_s, after_s=2.0)
        if last.wait(timeout=3600) != 0:
            lost += len(expected)
            failures.append(f"trial {trial}: the final rerun failed: {last.err()[-500:]}")
            continue
        _settle(done)
        for kill in done:
            try:
                check_resume(kill, INTERVAL)
            except AssertionError as exc:
                failures.append(f"trial {trial}: {exc}")
            records.append(kill)
        got = {k: v for k, v in tree(run).items() if _compared(k)}
        lost += sum(1 for k, v in expected.items() if got.get(k) != v)
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    redone = [k["reached"] - (k["reported"]["step"] if k["reported"] else 0) for k in records]
    scratch = sum(1 for k in records if k["written"] is not None and k["reported"] is None)
    return {
        "trials": trials, "sigkills": len(records), "resumed": sum(k["reported"] is not None for k in records),
        "killed_before_any_checkpoint": sum(k["written"] is None for k in records),
        "restarts_from_scratch": scratch, "resume_check_failures": len(failures),
        "interval_steps": INTERVAL, "max_steps_redone": max(redone, default=0),
        "mean_steps_redone": round(statistics.mean(redone), 2) if redone else 0.0,
        "mean_training_s_lost_per_kill": round(statistics.mean(redone) * step_s, 3) if redone else 0.0,
        "training_s_per_step": round(step_s, 4), "steps": steps,
        "files_compared": len(expected), "files_lost_or_different": lost,
        "uninterrupted_s": round(min(durations), 1),
    }


def _compared(rel: str) -> bool:
    """Files whose bytes an interrupted run must reproduce (logs and plots name the directory or the time)."""
    return rel.startswith(("outputs/", "model/", "checkpoints/")) or rel == "logs/csv/metrics.csv"


def bench_ddp(work: Path) -> dict:
    import test_distributed as td
    from aigc_testutil import write_yaml

    import aigc_core.train.training as training
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
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per trial")
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the killed run")
    parser.add_argument("--limit", type=int, default=400, help="digits in the killed run (80%% train, batches of 16)")
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
            figures["kill_and_resume"] = bench_kills(work, args.trials, args.kills, args.epochs, args.limit)
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
