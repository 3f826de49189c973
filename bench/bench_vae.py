"""VAE benchmarks: training throughput through aigc against a plain PyTorch loop, and MNIST NLL.

    python bench/bench_vae.py throughput [--epochs 3]
        The same VAE (same init, data, batch size, optimiser) trained twice in one process:
        once by ``Pipeline.fit`` (Lightning Trainer, logging, checkpoints, validation), once by
        a bare loop doing the same training and validation passes. Prints images/s and the ratio.
        Uses MNIST (10,000 training images) when $AIGC_DATA_DIR holds it, else sklearn digits.

    AIGC_DATA_DIR=../shared/data python bench/bench_vae.py nll --budget-min 15 [--k 200 --images 1000]
        Trains configs/vae-mnist.yaml in stages (resuming each time) until the training budget is
        spent and, after each stage, scores the importance-sampled NLL (nats, k samples) on the first
        ``--images`` images of the binarised MNIST test split. Prints the curve as a table.

    AIGC_DATA_DIR=../shared/data python bench/bench_vae.py nll-full RUN_DIR [--k 200]
        The NLL of a finished run on the whole test split (10,000 images).

On a shared machine set OMP_NUM_THREADS=1: with two threads per process on two busy cores,
training ran about ten times slower here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _source_section() -> dict:
    data_dir = os.environ.get("AIGC_DATA_DIR")
    if data_dir and (Path(data_dir) / "mnist").is_dir():
        return {"source": "mnist", "root": str(Path(data_dir) / "mnist"), "image_size": 28, "batch_size": 128,
                "limit": 12500, "val_fraction": 0.1, "test_fraction": 0.1}
    return {"source": "sklearn-digits", "image_size": 28, "batch_size": 128}


def throughput(epochs: int, repeats: int, threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)  # one thread suffers least from other processes on a shared machine

    from aigc_core import Pipeline

    data = _source_section()
    base = {"name": "bench-vae", "seed": 0, "data": data,
            "generator": {"name": "vae", "size": "small", "likelihood": "bernoulli", "binarize": "dynamic"},
            "train": {"max_epochs": epochs, "accelerator": "cpu", "devices": 1, "progress_bar": False,
                      "sample_every_n_epochs": 0},
            "metrics": [], "postprocess": []}
    results = {"aigc": [], "plain": []}
    for r in range(repeats):
        for kind in ("plain", "aigc") if r % 2 == 0 else ("aigc", "plain"):
            with tempfile.TemporaryDirectory() as tmp:
                pipe = Pipeline.from_config({**base, "output": {"dir": tmp}})
                n_train = pipe.data_source().info["sizes"]["train"]  # read the data outside the timing
                wall, cpu = time.perf_counter(), time.process_time()
                pipe.fit(restart=True) if kind == "aigc" else plain_loop(pipe, epochs)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[kind].append((n_train * epochs / wall, n_train * epochs / cpu))
                print(f"  {kind:5s} run {r}: {n_train * epochs / wall:8.1f} images/s wall ({wall:.2f} s), "
                      f"{n_train * epochs / cpu:8.1f} images per CPU-second ({cpu:.2f} s)", flush=True)
    best = {k: (max(w for w, _ in v), max(c for _, c in v)) for k, v in results.items()}
    print(f"data: {data['source']} ({n_train} train images, {epochs} epochs, batch {data['batch_size']}), "
          f"torch threads {torch.get_num_threads()}; aigc includes Trainer setup, validation, checkpoints, logs")
    print(f"plain PyTorch loop: {best['plain'][0]:.1f} images/s wall, {best['plain'][1]:.1f} per CPU-s (best of {repeats})")
    print(f"aigc Pipeline.fit:  {best['aigc'][0]:.1f} images/s wall, {best['aigc'][1]:.1f} per CPU-s (best of {repeats})")
    print(f"ratio aigc/plain: wall {best['aigc'][0] / best['plain'][0]:.3f}, CPU time {best['aigc'][1] / best['plain'][1]:.3f}")


def plain_loop(pipe, epochs: int) -> None:
    """The same work as the Trainer does, without it: shuffle, step, validate once per epoch."""
    import pytorch_lightning as pl
    import torch

    pl.seed_everything(pipe.seed, verbose=False)
    source = pipe.data_source()
    from aigc_vae.training import VAETraining

    model = pipe.gen.cls.build(pipe.gen.params, source, Path(pipe.run_dir))
    opt = VAETraining(model).configure_optimizers()
    train, val = source.train_dataloader(), source.val_dataloader()
    for _ in range(epochs):
        model.train()
        for x, y in train:
            rec, kl = model.elbo_terms(model.prepare(x, train=True), y)
            loss = (model.params.beta * kl - rec).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for i, (x, y) in enumerate(val):
                model.elbo_terms(model.prepare(x, train=False, offset=i * x.shape[0]), y)


def nll_curve(budget_min: float, k: int, images: int, stages: list[int], run_dir: str, unit: str,
              overrides: list[str]) -> None:
    from aigc_core import MetricContext, Pipeline
    from aigc_vae.metrics import VAELikelihood, VAELikelihoodParams

    if not os.environ.get("AIGC_DATA_DIR"):
        sys.exit("bench_vae nll: set AIGC_DATA_DIR to the directory holding mnist/")
    budget_s = budget_min * 60
    trained_s, rows = 0.0, []
    started = time.perf_counter()
    for i, epochs in enumerate(stages):
        pipe = Pipeline.from_config(ROOT / "configs/vae-mnist.yaml",
                                    [f"train.max_{unit}={epochs}", "train.progress_bar=false",
                                     "train.sample_every_n_epochs=0", f"output.dir={run_dir}", *overrides])
        t0 = time.perf_counter()
        model = pipe.fit(restart=i == 0)  # later stages resume from the last checkpoint
        trained_s += time.perf_counter() - t0
        metric = VAELikelihood(VAELikelihoodParams(k=k, num_images=images))
        scores = metric.compute(MetricContext(model, pipe.data_source(), None, Path(run_dir), pipe.seed, Path(run_dir)))
        rows.append({unit: epochs, "train_min": round(trained_s / 60, 2), **scores})
        print(json.dumps(rows[-1]), flush=True)
        per_epoch = trained_s / epochs
        if i + 1 < len(stages) and trained_s + (stages[i + 1] - epochs) * per_epoch > budget_s:
            break  # the next stage would not fit in the budget
    print(f"\nNLL (nats, k={k}, first {images} test images, binarised MNIST) against training time; "
          f"wall {(time.perf_counter() - started) / 60:.1f} min in all")
    print(f"| {unit} | training min | NLL (± s.e.) | ELBO | KL |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[unit]} | {r['train_min']} | {r['nll_nats']:.2f} ± {r['nll_stderr']:.2f} | "
              f"{r['elbo_nats']:.2f} | {r['kl_nats']:.2f} |")
    print(f"reference: pythae's VAE, 89.78 nats; gap {rows[-1]['nll_nats'] - 89.78:+.2f}")


def nll_full(run_dir: str, k: int) -> None:
    """The trained run's NLL on the whole test split: the first images of MNIST's test file are
    the cleaner half (NIST SD-3), so a prefix alone flatters the model."""
    from aigc_core import MetricContext, Pipeline
    from aigc_vae.metrics import VAELikelihood, VAELikelihoodParams

    pipe = Pipeline.from_run_dir(run_dir)
    scores = VAELikelihood(VAELikelihoodParams(k=k)).compute(
        MetricContext(pipe.generator, pipe.data_source(), None, Path(run_dir), pipe.seed, Path(run_dir)))
    print(json.dumps({"training": pipe.manifest().get("training"), **scores}))
    print(f"NLL {scores['nll_nats']:.2f} ± {scores['nll_stderr']:.2f} nats (k={k}, {scores['num_images']} test images); "
          f"pythae's VAE: 89.78")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p = sub.add_parser("nll")
    p.add_argument("--budget-min", type=float, default=12.0, help="training minutes; no stage starts that would pass it")
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--stages", default="1,2,3,5,8,12,20", help="cumulative epochs after which to score")
    p.add_argument("--unit", choices=("epochs", "steps"), default="epochs", help="what --stages counts")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "bench-vae-mnist"))
    p.add_argument("overrides", nargs="*", help="config overrides (key=value) for configs/vae-mnist.yaml")
    p = sub.add_parser("nll-full", help="score a finished run on the whole test split")
    p.add_argument("run_dir")
    p.add_argument("--k", type=int, default=200)
    args = parser.parse_args()
    if args.what == "throughput":
        throughput(args.epochs, args.repeats, args.threads)
    elif args.what == "nll-full":
        nll_full(args.run_dir, args.k)
    else:
        nll_curve(args.budget_min, args.k, args.images, [int(s) for s in args.stages.split(",")], args.run_dir,
                  args.unit, args.overrides)


if __name__ == "__main__":
    main()
