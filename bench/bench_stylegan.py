"""The style-based GAN against the DCGAN, on MNIST and on 2,000 MNIST images (issue 25's targets).

    AIGC_DATA_DIR=../shared/data OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_stylegan.py \\
        --budget-cpu-min 20 [--sides stylegan,dcgan,...] [--out /tmp/bench-stylegan]

Each side is ``aigc run`` of its config (``SIDES``) for the same budget of CPU time
(``time.process_time`` of its own process, one torch thread; a callback stops training when it is
spent; reading the data does not count), in parallel processes, as ``bench_gan_quality.py`` runs
its sides. Every side is then scored the same way, whatever data it trained on: 2,000 samples
against the full MNIST validation split in the feature space of the metrics' own cached MNIST
classifier (Fréchet distance, precision, recall, each with its real floor: MNIST's test file
against the same validation images). So the sides trained on 1,995 images are compared on the
same footing as those trained on 57,000.

Then, on each trained ``stylegan`` (from its run directory, as ``aigc generate`` loads it):

* projection: 100 held-out MNIST test digits are projected (``project_steps`` steps, batched);
  the classifier labels each reconstruction, and the rate at which it gives the original's digit is
  compared with its rate on the real digits; CPU seconds per image.
* mixing: pairs of samples of different classes A and B; for every crossover layer, how often the
  classifier labels the mix A's class (coarse layers from A) and how often B's (measured, not assumed).
* interpolation: walks in W between two samples; the largest step between successive frames as a
  share of the distance between the ends (1 / (frames - 1) for a perfectly even walk).
* sampling speed: images per CPU second, next to the DCGAN's.

Targets (20 CPU-minutes): MNIST: Fréchet <= the DCGAN's, recall >= the DCGAN's + 0.1; 2,000 images:
with ADA Fréchet <= 0.7x the DCGAN with DiffAugment and <= 0.8x the same StyleGAN without
augmentation; projection >= 0.9x the real rate at <= 2 CPU-s per image; mixing follows A.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

#: side -> (config, overrides)
SIDES = {
    "stylegan": ("configs/stylegan-mnist.yaml", []),
    "dcgan": ("configs/gan-mnist.yaml", []),
    "stylegan-ada-2k": ("configs/stylegan-digits-small.yaml", []),
    "stylegan-noaug-2k": ("configs/stylegan-digits-small.yaml", ["generator.augment=off"]),
    "dcgan-diffaug-2k": ("configs/gan-mnist.yaml", ["data.limit=2450", "generator.augment=translation,cutout,color"]),
}
#: every side is scored against full MNIST (the 2k sides' own held-out splits are a few hundred images)
SCORING_CONFIG = "configs/gan-mnist.yaml"


def _overrides(side: str, out: Path, extra: list[str]) -> list[str]:
    config, overrides = SIDES[side]
    root = Path(os.environ["AIGC_DATA_DIR"]) / "mnist"
    return [*overrides, *extra, f"data.root={root}", "metrics=[]", "train.sample_every_n_epochs=0",
            "train.limit_val_batches=0"]


def run_side(side: str, budget: float, out: str, extra: list[str], num_samples: int, queue) -> None:
    from aigc_core.generation.inference import generate_with
    import torch

    torch.set_num_threads(1)
    from bench_gan_quality import _pipeline, save_samples, train_aigc

    config, _ = SIDES[side]
    pipe = _pipeline(config, _overrides(side, Path(out), extra), Path(out) / side)
    pipe.data_source().setup()  # reading the data is not training
    cpu0, wall0 = time.process_time(), time.perf_counter()
    generator, _ = train_aigc(pipe, budget)
    # both GANs make two optimiser steps (D, then G) per iteration; Lightning counts each
    steps = int(pipe.manifest()["training"]["global_step"]) // 2
    result = {"side": side, "steps": steps, "train_cpu_s": round(time.process_time() - cpu0, 1),
              "train_wall_s": round(time.perf_counter() - wall0, 1),
              "train_images": len(pipe.data_source().split("train"))}
    save_samples(pipe, generator, Path(out) / f"{side}_samples.npz", num_samples)
    from PIL import Image

    from aigc_core.helpers.imaging import make_grid, to_uint8_hwc

    items = [i for i in generate_with(generator, 100, seed=1).items if i.meta.get("kind") != "grid"]
    Image.fromarray(to_uint8_hwc(make_grid([i.data for i in items], nrow=10, padding=2)).squeeze()).save(
        Path(out) / f"{side}_grid.png")
    (Path(out) / f"{side}.json").write_text(json.dumps(result))  # what --reuse reads
    queue.put(result)


def _last_logged(run_dir: Path, key: str):
    """The last value of ``key`` in the run's CSV log (``ada_p``), or None."""
    import csv

    value = None
    for path in sorted((run_dir / "logs").rglob("metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get(key) not in (None, ""):
                    value = float(row[key])
    return value


def projection(generator, classifier, x_test, y_test, steps: int, n: int = 100) -> dict:
    import torch

    x, y = x_test[:n], y_test[:n]
    real_acc = float((classifier(x).argmax(1) == y).float().mean())
    cpu0 = time.process_time()
    recon, _, error = generator.project_images(x * 2 - 1, steps=steps)
    cpu = time.process_time() - cpu0
    recon = torch.from_numpy(recon)
    recon_acc = float((classifier(recon).argmax(1) == y).float().mean())
    # one image alone, as `aigc generate ... project=FILE` does it
    cpu1 = time.process_time()
    generator.project_images(x[:1] * 2 - 1, steps=steps)
    single = time.process_time() - cpu1
    return {"images": n, "steps": steps, "real_accuracy": round(real_acc, 3), "recon_accuracy": round(recon_acc, 3),
            "ratio": round(recon_acc / real_acc, 3), "mse": round(float(error.mean()), 4),
            "cpu_s_per_image_batched": round(cpu / n, 3), "cpu_s_one_image": round(single, 3)}


def mixing(generator, classifier, pairs: int = 200) -> dict:
    """Pairs (A, B) drawn with different intended classes; the classifier's label of each mix."""
    import torch

    from aigc_gan.stylegan_net import mix_styles

    G = generator.G
    z_a, noise = generator.draw(11, list(range(pairs)))
    z_b, _ = generator.draw(12, list(range(pairs)))
    if generator.num_classes:
        y_a = torch.arange(pairs) % generator.num_classes
        y_b = (y_a + 1 + torch.arange(pairs) % (generator.num_classes - 1)) % generator.num_classes
    else:
        y_a = y_b = None
    with torch.no_grad():
        w_a, w_b = G.styles(z_a, y_a), G.styles(z_b, y_b)
        lab_a = classifier(G.synthesis(G.broadcast(w_a), noise).add(1).div(2).clamp(0, 1)).argmax(1)
        lab_b = classifier(G.synthesis(G.broadcast(w_b), noise).add(1).div(2).clamp(0, 1)).argmax(1)
        keep = lab_a != lab_b  # only pairs the classifier itself tells apart
        rows = {}
        for layer in range(1, G.num_ws):
            mixed = G.synthesis(mix_styles(w_a, w_b, layer, G.num_ws), noise).add(1).div(2).clamp(0, 1)
            lab = classifier(mixed).argmax(1)
            rows[layer] = {"follows_a": round(float((lab == lab_a)[keep].float().mean()), 3),
                           "follows_b": round(float((lab == lab_b)[keep].float().mean()), 3)}
    return {"pairs": int(keep.sum()), "depth": G.num_ws, "by_crossover": rows}


def smoothness(generator, walks: int = 20, frames: int = 16) -> dict:
    from aigc_core.generation.inference import generate_with
    import numpy as np

    content = generate_with(generator, walks, seed=3, interpolate=4, frames=frames)
    frames_ = np.stack([i.data for i in content.items if i.meta.get("kind") != "grid"]).reshape(walks, frames, -1)
    steps = np.linalg.norm(np.diff(frames_, axis=1), axis=2)
    ends = np.linalg.norm(frames_[:, -1] - frames_[:, 0], axis=1)
    share = steps.max(1) / ends
    return {"walks": walks, "frames": frames, "even_walk_share": round(1 / (frames - 1), 4),
            "largest_step_share_median": round(float(np.median(share)), 4),
            "largest_step_share_max": round(float(share.max()), 4)}


def speed(generator, n: int = 256) -> float:
    from aigc_core.generation.inference import generate_with
    generate_with(generator, 8, seed=5)
    c0 = time.process_time()
    generate_with(generator, n, seed=0, batch_size=64)
    return n / (time.process_time() - c0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-cpu-min", type=float, default=20.0, help="CPU minutes of training per side")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--out", default="/tmp/bench-stylegan")
    parser.add_argument("--project-steps", type=int, default=None, help="default: the generator's option default")
    parser.add_argument("--parallel", type=int, default=5, help="sides trained at once (each one process, one thread)")
    parser.add_argument("--reuse", action="store_true",
                        help="sides already trained under --out (their SIDE.json) are scored again, not retrained")
    parser.add_argument("overrides", nargs="*", help="config overrides for every side (generator.* keys must fit both)")
    args = parser.parse_args()
    if not os.environ.get("AIGC_DATA_DIR") or not (Path(os.environ["AIGC_DATA_DIR"]) / "mnist").is_dir():
        sys.exit("bench_stylegan: set AIGC_DATA_DIR to the directory holding mnist/")
    import torch

    torch.set_num_threads(1)
    from bench_gan_quality import _classifier, _pipeline, score_all

    sides = [s for s in args.sides.split(",") if s]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scoring = _pipeline(SCORING_CONFIG, [f"data.root={Path(os.environ['AIGC_DATA_DIR']) / 'mnist'}"], out / "classifier")
    classifier = _classifier(scoring)  # trained here once (or read from the cache) before the sides share it
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    results: dict[str, dict] = {}
    pending = [s for s in sides if not (args.reuse and (out / f"{s}.json").is_file())]
    for side in sides:
        if side not in pending:
            results[side] = json.loads((out / f"{side}.json").read_text())
    running: dict[str, object] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            side = pending.pop(0)
            p = ctx.Process(target=run_side, args=(side, args.budget_cpu_min * 60, str(out), args.overrides,
                                                   classifier[1].num_samples, queue))
            p.start()
            running[side] = p
        try:
            r = queue.get(timeout=10)
        except Exception:  # queue.Empty: look for a side that died without a result
            for side, p in list(running.items()):
                if not p.is_alive() and side not in results:
                    sys.exit(f"bench_stylegan: side {side} exited with code {p.exitcode} and no result")
            continue
        results[r["side"]] = r
        print(json.dumps(r), flush=True)
        running.pop(r["side"]).join()  # counted by its result, never by is_alive (a side may still be flushing)
    for side, scores in score_all(scoring, classifier, {s: out / f"{s}_samples.npz" for s in sides}).items():
        results[side].update(scores)

    from aigc_core import Run

    net = classifier[0]
    x_test, y_test = (t for t in _test_split(scoring))
    for side in sides:
        if not side.startswith("stylegan"):
            continue
        run = out / side
        results[side]["ada_p_logged"] = _last_logged(run, "ada_p")
        generator = Run.load(run).generator
        steps = args.project_steps or generator.GenerateOptions().project_steps
        results[side]["projection"] = projection(generator, net, x_test, y_test, steps)
        results[side]["mixing"] = mixing(generator, net)
        results[side]["interpolation"] = smoothness(generator)
        results[side]["images_per_cpu_s"] = round(speed(generator), 1)
    if "dcgan" in sides:
        results["dcgan"]["images_per_cpu_s"] = round(speed(Run.load(out / "dcgan").generator), 1)

    report(results, sides, args)


def _test_split(pipe):
    from aigc_core.builtin.frechet import tensors

    return tensors(pipe.data_source().split("test"))


def report(results: dict, sides: list[str], args) -> None:
    load = os.getloadavg()
    print(f"\nbudget {args.budget_cpu_min:g} CPU-min per side (time.process_time, 1 torch thread, sides in parallel); "
          f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")
    print("| side | train images | iterations | Fréchet | / floor | precision | recall (floor) | ADA p at end |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in sides:
        r = results[s]
        print(f"| {s} | {r['train_images']} | {r['steps']} | {r['fd_generated']:.1f} | "
              f"{r['fd_generated'] / r['fd_real_floor']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} "
              f"({r['recall_real_floor']:.3f}) | {r.get('ada_p_logged') if r.get('ada_p_logged') is not None else ''} |")

    def fd(s):
        return results[s]["fd_generated"] if s in results else None

    if fd("stylegan") and fd("dcgan"):
        a, b = results["stylegan"], results["dcgan"]
        print(f"MNIST: Fréchet stylegan / dcgan = {a['fd_generated'] / b['fd_generated']:.3f} (target <= 1); "
              f"recall stylegan - dcgan = {a['recall'] - b['recall']:+.3f} (target >= +0.1)")
    if fd("stylegan-ada-2k") and fd("dcgan-diffaug-2k"):
        print(f"2k images: Fréchet ADA / DCGAN+DiffAugment = {fd('stylegan-ada-2k') / fd('dcgan-diffaug-2k'):.3f} "
              f"(target <= 0.7)")
    if fd("stylegan-ada-2k") and fd("stylegan-noaug-2k"):
        print(f"2k images: Fréchet ADA / no augmentation = {fd('stylegan-ada-2k') / fd('stylegan-noaug-2k'):.3f} "
              f"(target <= 0.8)")
    for s in sides:
        r = results[s]
        if "projection" in r:
            print(f"{s} projection: {json.dumps(r['projection'])}")
            print(f"{s} interpolation: {json.dumps(r['interpolation'])}")
            m = r["mixing"]
            print(f"{s} mixing ({m['pairs']} pairs of different classifier labels, depth {m['depth']}): "
                  + "; ".join(f"crossover {k}: A {v['follows_a']:.2f} / B {v['follows_b']:.2f}"
                              for k, v in m["by_crossover"].items()))
        if "images_per_cpu_s" in r:
            print(f"{s} sampling: {r['images_per_cpu_s']} images per CPU-s (batch 64, 32x32)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
