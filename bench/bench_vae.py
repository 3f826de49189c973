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


def throughput(epochs: int, repeats: int) -> None:
    import torch

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
                if kind == "aigc":
                    pipe.fit(restart=True)
                    seconds = pipe.manifest()["training"]["train_s"]
                else:
                    seconds = plain_loop(pipe, epochs)
                n_train = pipe.data_source().info["sizes"]["train"]
                results[kind].append(n_train * epochs / seconds)
                print(f"  {kind:5s} run {r}: {n_train * epochs / seconds:8.1f} train images/s ({seconds:.2f} s)")
    best = {k: max(v) for k, v in results.items()}
    print(f"data: {data['source']} ({n_train} train images, {epochs} epochs, batch {data['batch_size']}), "
          f"torch threads {torch.get_num_threads()}")
    print(f"plain PyTorch loop: {best['plain']:.1f} images/s (best of {repeats})")
    print(f"aigc Pipeline.fit:  {best['aigc']:.1f} images/s (best of {repeats})")
    print(f"ratio aigc/plain: {best['aigc'] / best['plain']:.3f}")


def plain_loop(pipe, epochs: int) -> float:
    """The same work as the Trainer does, without it: shuffle, step, validate once per epoch."""
    import pytorch_lightning as pl
    import torch

    pl.seed_everything(pipe.seed, verbose=False)
    source = pipe.data_source()
    model = pipe.gen.cls.build(pipe.gen.params, source, Path(pipe.run_dir))
    opt = model.configure_optimizers()
    train, val = source.train_dataloader(), source.val_dataloader()
    started = time.perf_counter()
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
    return time.perf_counter() - started


def nll_curve(budget_min: float, k: int, images: int, stages: list[int], run_dir: str) -> None:
    from aigc_core import MetricContext, Pipeline
    from aigc_vae.metrics import VAELikelihood, VAELikelihoodParams

    if not os.environ.get("AIGC_DATA_DIR"):
        sys.exit("bench_vae nll: set AIGC_DATA_DIR to the directory holding mnist/")
    budget_s = budget_min * 60
    trained_s, rows = 0.0, []
    started = time.perf_counter()
    for i, epochs in enumerate(stages):
        pipe = Pipeline.from_config(ROOT / "configs/vae-mnist.yaml",
                                    [f"train.max_epochs={epochs}", "train.progress_bar=false",
                                     "train.sample_every_n_epochs=0", f"output.dir={run_dir}"])
        t0 = time.perf_counter()
        model = pipe.fit(restart=i == 0)  # later stages resume from the last checkpoint
        trained_s += time.perf_counter() - t0
        metric = VAELikelihood(VAELikelihoodParams(k=k, num_images=images))
        scores = metric.compute(MetricContext(model, pipe.data_source(), None, Path(run_dir), pipe.seed, Path(run_dir)))
        rows.append({"epochs": epochs, "train_min": round(trained_s / 60, 2), **scores})
        print(json.dumps(rows[-1]), flush=True)
        per_epoch = trained_s / epochs
        if i + 1 < len(stages) and trained_s + (stages[i + 1] - epochs) * per_epoch > budget_s:
            break  # the next stage would not fit in the budget
    print(f"\nNLL (nats, k={k}, first {images} test images, binarised MNIST) against training time; "
          f"wall {(time.perf_counter() - started) / 60:.1f} min in all")
    print("| epochs | training min | NLL (± s.e.) | ELBO | KL |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['epochs']} | {r['train_min']} | {r['nll_nats']:.2f} ± {r['nll_stderr']:.2f} | "
              f"{r['elbo_nats']:.2f} | {r['kl_nats']:.2f} |")
    print(f"reference: pythae's VAE, 89.78 nats; gap {rows[-1]['nll_nats'] - 89.78:+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p = sub.add_parser("nll")
    p.add_argument("--budget-min", type=float, default=12.0, help="training minutes; no stage starts that would pass it")
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--stages", default="1,2,3,5,8,12,20", help="cumulative epochs after which to score")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "bench-vae-mnist"))
    args = parser.parse_args()
    if args.what == "throughput":
        throughput(args.epochs, args.repeats)
    else:
        nll_curve(args.budget_min, args.k, args.images, [int(s) for s in args.stages.split(",")], args.run_dir)


if __name__ == "__main__":
    main()
