"""When does a StyleGAN run lose its variety? A trace of one training run, scored every few hundred iterations.

    AIGC_DATA_DIR=../shared/data OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/stylegan_trace.py \\
        --out /tmp/trace [--iters 750] [--every 250] [--image-size 32] [generator.diversity_weight=0 ...]

Issue 25's collapse (the samples of a label drift to one picture) shows only after hundreds of
iterations, and a final score cannot say when it began or whether a change only delays it. This
trains the real ``StyleGANTraining`` step of ``configs/stylegan-mnist.yaml`` (with the overrides
given) in a plain loop, without Lightning's loop, so scoring in between costs nothing of the
training's CPU time, and every ``--every`` iterations scores the EMA generator (and the live one)
on ``--n-eval`` samples (fixed latents and noise, labels cycling) against as many MNIST validation
images, in the metrics' own classifier space (the classifier ``bench_gan_quality.py`` uses):
intra-class diversity (mean pairwise distance within a label over the real one; MNIST's own
floor is ~0.96), Fréchet distance, precision and recall (k=3), the share labelled as asked, and the
per-label pixel spread over the real one. One JSON line per point goes to ``OUT/log.jsonl`` (with
the mean losses, r1 and ADA's p and r_t since the last point) and a grid to ``OUT/grid_NNNNN.png``
(column = label, 10 samples each). The figures of 1,000 samples are for comparing runs of this
script, not for comparing with the benchmark's 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def pixel_spread(x, y) -> float:
    """Mean over labels of the per-pixel standard deviation among that label's images."""
    import numpy as np

    return float(np.mean([float(x[y == c].flatten(1).std(0).mean()) for c in sorted(set(y.tolist()))
                          if int((y == c).sum()) > 1]))


def save_grid(x, y, path: Path, per_label: int = 10) -> None:
    """A label per column, ``per_label`` rows, drawn 3x larger."""
    import torch

    from aigc_core.helpers.imaging import make_grid, png_bytes

    labels = sorted(set(y.tolist()))
    idx = torch.stack([torch.nonzero(y == c)[:per_label, 0] for c in labels], 1).flatten()
    grid = make_grid(list(x[idx].numpy()), nrow=len(labels), padding=1)
    path.write_bytes(png_bytes(grid.repeat(3, axis=1).repeat(3, axis=2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="configs/stylegan-mnist.yaml")
    parser.add_argument("--size", default="small")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=750)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("overrides", nargs="*", help="config overrides (generator.lr_d=0.01 ...)")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from aigc_core.builtin.frechet import tensors
    from aigc_core.builtin.image_diversity import _mean, intra_class_ratios, manifold_scores
    from aigc_core.contract.training_module import training_module
    from aigc_core.helpers.frechet import frechet_distance
    from bench_gan_quality import _classifier, _pipeline

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = Path(os.environ.get("AIGC_DATA_DIR", "data")) / "mnist"
    overrides = [f"data.root={data_root}", f"data.image_size={args.image_size}", f"generator.size={args.size}",
                 *args.overrides]
    pipe = _pipeline(str(ROOT / args.config), overrides, out / "run")
    source = pipe.data_source()
    classifier, _ = _classifier(pipe)
    x_val, y_val = tensors(source.split("val"))
    n = min(args.n_eval, len(x_val))
    f_val, y_val = torch.from_numpy(classifier.features(x_val[:n])), y_val[:n]
    real_spread = pixel_spread(x_val[:n], y_val)

    torch.manual_seed(pipe.seed)
    generator = pipe.gen.cls.build(pipe.gen.params, source, out)
    module = training_module(generator)
    # the training step as Lightning runs it, driven by hand: its own optimisers, plain backward,
    # the iteration count kept here (Lightning's global_step needs a Trainer)
    module.__class__ = type("Traced", (type(module),), {"iteration": property(lambda s: s._traced_it)})
    module._traced_it = 0
    optimisers = module.configure_optimizers()
    module.optimizers = lambda: optimisers
    module.manual_backward = lambda loss: loss.backward()
    logged: dict[str, list[float]] = {}
    module.log_dict = lambda d, **_: [logged.setdefault(k, []).append(float(v)) for k, v in d.items()]
    module.log = lambda *a, **k: None

    train = source.split("train")
    xs, ys = train.data, train.labels
    batch = source.params.batch_size
    order = torch.Generator().manual_seed(pipe.seed)
    perm, pos = torch.randperm(len(ys), generator=order), 0
    z_eval = torch.randn(n, generator.G.z_dim, generator=torch.Generator().manual_seed(123))
    y_eval = torch.arange(n) % max(generator.num_classes, 10)

    def score(it: int, cpu: float) -> None:
        record: dict = {"it": it, "train_cpu_s": round(cpu, 1)}
        for name, G in (("ema", generator.G), ("live", module.G)):
            with torch.no_grad():
                noise = G.synthesis.random_noise(n, generator=torch.Generator().manual_seed(7))
                x = torch.cat([G(z_eval[i:i + 250], y_eval[i:i + 250] if generator.num_classes else None,
                                 noise=[m[i:i + 250] for m in noise]) for i in range(0, n, 250)])
            x = ((x + 1) / 2).clamp(0, 1)
            f = torch.from_numpy(classifier.features(x))
            predicted = classifier.head(f).argmax(1)
            y = y_eval if generator.num_classes else predicted  # unconditional: the classes as seen
            m = manifold_scores(f_val, f, 3)
            record[name] = {
                "intra_class_diversity": round(_mean(intra_class_ratios(f, y, f_val, y_val).values()), 3),
                "frechet": round(frechet_distance(f.numpy(), f_val.numpy()), 1),
                "precision": round(m["precision"], 3), "recall": round(m["recall"], 3),
                "label_rate": round(float((predicted == y).float().mean()), 3),
                "pixel_spread": round(pixel_spread(x, y) / real_spread, 3)}
            if name == "ema":
                save_grid(x, y, out / f"grid_{it:05d}.png")
        for key, values in logged.items():
            record[key] = round(float(np.mean(values[-args.every:])), 4)
        print(json.dumps(record), flush=True)
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    module.train()
    cpu0 = time.process_time()
    for it in range(1, args.iters + 1):
        if pos + batch > len(ys):
            perm, pos = torch.randperm(len(ys), generator=order), 0
        idx = perm[pos:pos + batch]
        pos += batch
        module.training_step((xs[idx].float(), ys[idx]), it - 1)
        module._traced_it += 1
        if it % args.every == 0:
            paused = time.process_time()
            score(it, paused - cpu0)
            cpu0 += time.process_time() - paused  # scoring is not training


if __name__ == "__main__":
    main()
