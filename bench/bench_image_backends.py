"""DCGAN, VAE and DDPM on MNIST side by side: the same training budget, the same metrics, and
sampling speed.

    AIGC_DATA_DIR=../shared/data OMP_NUM_THREADS=1 nice -n 10 \\
        python bench/bench_image_backends.py --budget-cpu-min 5 [--metrics frechet,image-diversity]

Each backend trains on MNIST (32x32, so that the DCGAN fits) in stages that resume from the
last checkpoint, until its budget of CPU time (``time.process_time`` of the training, with
``--threads`` torch threads) is spent: no stage starts that would pass it. CPU time, not wall
time, because the machine is shared and its load changes from minute to minute; with one thread
CPU time is close to what an idle core would take. ``--budget-cpu-min 20`` is the long version.

Every backend is then scored by the same metrics, named with ``--metrics`` (any registered
metric that needs no options of its own; ``frechet`` gets ``--metric-samples``), and timed
while sampling: images per second of wall time and per CPU second, for the DDPM at each
``--steps`` count of the DDIM sampler. The DCGAN's speed is the reference measured in the same
run; each other speed is printed as a ratio to it. A DDPM of the same size built at 28x28 (speed
does not depend on the weights) is timed too, for the 28x28 target; a U-Net that cannot take
28x28 (``patch: 2`` with three levels needs sides divisible by 8) is timed at 32x32, more pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: each backend as its MNIST config trains and samples it (generator and generate sections)
CONFIGS = {"dcgan": "configs/gan-mnist.yaml", "vae": "configs/vae-mnist.yaml", "ddpm": "configs/diffusion-mnist.yaml"}


def sections(backend: str) -> tuple[dict, dict]:
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(ROOT / CONFIGS[backend]), resolve=False)
    generate = {k: v for k, v in (raw.get("generate") or {}).items() if k != "num_samples"}
    return dict(raw["generator"]), generate


def config(backend: str, out: Path, steps: int, metrics: list[str], metric_samples: int, guidance: float | None,
           ddpm: dict | None = None) -> dict:
    mnist = Path(os.environ["AIGC_DATA_DIR"]) / "mnist"
    generator, generate = sections(backend)
    if backend == "ddpm" and guidance is not None:
        generate["guidance_scale"] = guidance
    if backend == "ddpm":
        generator.update(ddpm or {})
    return {
        "name": f"bench-{backend}", "seed": 0,
        # 32x32 for every backend, so that the DCGAN fits; one batch size, so a step means the same
        "data": {"source": "mnist", "root": str(mnist), "image_size": 32, "batch_size": 64, "val_fraction": 0.02},
        "generator": generator,
        "train": {"max_steps": steps, "max_epochs": 1000, "accelerator": "cpu", "devices": 1, "progress_bar": False,
                  "sample_every_n_epochs": 0, "limit_val_batches": 0, "checkpoint_every_n_epochs": 1},
        # metrics sample with these options too (the run's generate: section)
        "generate": {"num_samples": 100, **generate},
        "postprocess": [{"name": "image-grid", "nrow": 10, "max_images": 100}],
        # two classifier epochs already give ~98% MNIST test accuracy (as in gan-mnist.yaml)
        "metrics": [{"name": m, **({"num_samples": metric_samples, "classifier_epochs": 2}
                                   if m in ("frechet", "image-diversity") else {})} for m in metrics],
        "output": {"dir": str(out / backend)},
    }


def train(backend: str, out: Path, budget_s: float, stage: int, metrics: list[str], metric_samples: int,
          guidance: float, ddpm: dict | None = None):
    """Train in stages that resume, each sized from the CPU time per step so far, until the next
    one would be shorter than ``stage`` steps. Loading the data each stage counts as training."""
    from aigc_core import Pipeline

    spent, steps, pipe, more = 0.0, 0, None, stage
    while more >= stage or steps == 0:
        steps += more
        pipe = Pipeline.from_config(config(backend, out, steps, metrics, metric_samples, guidance, ddpm))
        t0 = time.process_time()
        pipe.fit(restart=steps == more)
        spent += time.process_time() - t0
        training = pipe.manifest().get("training", {})
        print(f"  {backend}: {training.get('global_step')} steps (resumed from {training.get('resumed_from')}), "
              f"{spent / 60:.2f} CPU-min", flush=True)
        more = int((budget_s - spent) / (spent / steps))
    return pipe, steps, spent


def sampling_speed(generator, n: int, **options) -> tuple[float, float]:
    """Images per wall second and per CPU second."""
    from aigc_core.generation.inference import generate_with
    generate_with(generator, min(n, 4), seed=123, **options)  # warm-up: first calls allocate
    w0, c0 = time.perf_counter(), time.process_time()
    generate_with(generator, n, seed=0, **options)
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def untrained(backend: str, shape: list[int], **overrides):
    """A backend's generator as the benchmark builds it, with its initial weights: sampling costs
    the same whatever the weights are."""
    from aigc_core import get_registry
    from aigc_core.store.config import build_params

    generator, _ = sections(backend)
    cls = get_registry().get("generator", backend, "generator.name").load()
    params = build_params(cls.Params, {**{k: v for k, v in generator.items() if k != "name"}, **overrides}, "generator")
    return cls(params, {"shape": shape, "num_classes": 10}).eval()


def ddpm_variant(spec: str) -> tuple[str, dict]:
    """``SIZE``, ``SIZE/BASE_CHANNELS`` (``small/8`` is the lean U-Net), and ``/pN`` for patch N
    (``small/p2``) -> label and overrides."""
    size, *rest = spec.split("/")
    overrides, label = {"size": size}, f"size {size}"
    for part in rest:
        key, value = ("patch", int(part[1:])) if part.startswith("p") else ("base_channels", int(part))
        overrides[key] = value
        label += f" {key} {value}"
    return label, overrides


def speed_side(overrides: dict) -> int:
    """28 (the target's MNIST size) when the U-Net takes it, else 32."""
    from aigc_diffusion.model import SIZES
    from aigc_diffusion.denoiser import side_multiple

    generator = {**sections("ddpm")[0], **overrides}
    size, patch = generator.get("size", "small"), generator.get("patch", 1)
    return 28 if 28 % side_multiple(len(SIZES[size][0]), patch) == 0 else 32


def speed_only(n: int, step_counts: list[int], threads: int, variants: list[str]) -> None:
    rows = []
    ref = sampling_speed(untrained("dcgan", [1, 32, 32]), n, batch_size=n)
    rows.append(("dcgan 32x32 (reference)", *ref))
    rows.append(("vae 28x28", *sampling_speed(untrained("vae", [1, 28, 28]), n, batch_size=n)))
    config_size = sections("ddpm")[0].get("size", "small")
    for v, spec in enumerate(variants or [config_size]):
        label, overrides = ddpm_variant(spec)
        side = speed_side(overrides)
        ddpm = untrained("ddpm", [1, side, side], **overrides)
        if "patch" not in overrides and ddpm.params.patch > 1:
            label += f" patch {ddpm.params.patch} (config)"
        which = " (diffusion-mnist.yaml)" if spec == config_size else ""
        # every step count for the first variant; the others at the target's 25 steps
        counts = step_counts if v == 0 else [25]
        for k, scale in [(k, 1.0) for k in counts] + [(25, 2.0)]:
            rows.append((f"ddpm {side}x{side} {label}{which}, ddim {k} steps, guidance {scale:g}",
                         *sampling_speed(ddpm, n, num_inference_steps=k, scheduler="ddim", guidance_scale=scale,
                                         batch_size=n)))
    again = sampling_speed(untrained("dcgan", [1, 32, 32]), n, batch_size=n)  # the load may have changed
    rows.append(("dcgan 32x32 (reference, again)", *again))
    print(f"\n{n} images per measurement, batch {n}, {threads} torch thread(s)")
    print("| sampler | images/s (wall) | images per CPU-s | ratio to dcgan (CPU) |\n|---|---:|---:|---:|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.3g} | {cpu:.3g} | {cpu / ref[1]:.3g} |")


def ddpm_overrides(args) -> dict:
    """``--ddpm-size`` and every ``--ddpm-set KEY=VALUE`` (VALUE read as YAML: 5, true, [16, 32])."""
    import yaml

    overrides = {"size": args.ddpm_size} if args.ddpm_size else {}
    for item in args.ddpm_set:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"bench_image_backends: --ddpm-set wants KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-cpu-min", type=float, default=3.0, help="CPU minutes of training per backend")
    parser.add_argument("--stage", type=int, default=50, help="the shortest training stage, in optimiser steps")
    parser.add_argument("--guidance", type=float, default=None,
                        help="the DDPM's guidance_scale for grid and metrics (default: diffusion-mnist.yaml's)")
    parser.add_argument("--content-samples", type=int, default=0,
                        help="images generated with the run's options and handed to metrics that read them "
                             "(frechet and image-diversity make their own, with the same options)")
    parser.add_argument("--backends", default="ddpm,vae,dcgan")
    parser.add_argument("--metrics", default="frechet,image-diversity", help="comma-separated metric names, the same for every backend")
    parser.add_argument("--metric-samples", type=int, default=200, help="generated images per metric (frechet)")
    parser.add_argument("--steps", default="10,25,50", help="DDIM step counts at which to time DDPM sampling")
    parser.add_argument("--speed-samples", type=int, default=32, help="images per speed measurement")
    parser.add_argument("--ddpm-size", default=None,
                        help="the trained DDPM's generator.size (default: diffusion-mnist.yaml's)")
    parser.add_argument("--ddpm-set", action="append", default=[], metavar="KEY=VALUE",
                        help="another generator option of the trained DDPM, e.g. snr_gamma=5 (repeatable)")
    parser.add_argument("--ddpm-sizes", default="",
                        help="--speed-only: DDPM U-Nets to time, comma-separated SIZE, SIZE/BASE_CHANNELS or SIZE/pPATCH "
                             "(default: diffusion-mnist.yaml's size)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed, so CPU time compares)")
    parser.add_argument("--out", default="/tmp/bench-image-backends")
    parser.add_argument("--speed-only", action="store_true",
                        help="only sampling speed, of untrained models of the benchmarked sizes (no data needed)")
    args = parser.parse_args()
    if not args.speed_only and (not os.environ.get("AIGC_DATA_DIR") or not (Path(os.environ["AIGC_DATA_DIR"]) / "mnist").is_dir()):
        sys.exit("bench_image_backends: set AIGC_DATA_DIR to the directory holding mnist/")

    import torch

    torch.set_num_threads(args.threads)
    if args.speed_only:
        speed_only(args.speed_samples, [int(s) for s in args.steps.split(",")], args.threads,
                   [v for v in args.ddpm_sizes.split(",") if v])
        return
    out = Path(args.out)
    metrics = [m for m in args.metrics.split(",") if m]
    step_counts = [int(s) for s in args.steps.split(",")]
    rows, speeds = [], []
    ddpm = ddpm_overrides(args)
    for backend in args.backends.split(","):
        pipe, steps, spent = train(backend, out, args.budget_cpu_min * 60, args.stage, metrics, args.metric_samples,
                                   args.guidance, ddpm)
        content = pipe.postprocess(pipe.generate(100))
        pipe.export(content)
        t0 = time.process_time()
        scores = {f"{metric}.{key}": value for metric, values in pipe.score(pipe.generate(args.content_samples)).items()
                  for key, value in values.items()}
        rows.append({"backend": backend, "steps": steps, "train_cpu_min": round(spent / 60, 2),
                     "score_cpu_min": round((time.process_time() - t0) / 60, 2), "scores": scores})
        print(json.dumps(rows[-1]), flush=True)
        gen = pipe.generator
        if backend == "ddpm":
            # guidance other than 0 and 1 costs a second U-Net pass per step: timed once, at 25 steps
            for k, scale in [(k, 1.0) for k in step_counts] + [(25, 2.0)]:
                wall, cpu = sampling_speed(gen, args.speed_samples, num_inference_steps=k, scheduler="ddim",
                                           guidance_scale=scale, batch_size=args.speed_samples)
                speeds.append((f"ddpm 32x32, ddim {k} steps, guidance {scale:g}", wall, cpu))
        else:
            wall, cpu = sampling_speed(gen, args.speed_samples, batch_size=args.speed_samples)
            speeds.append((f"{backend} 32x32", wall, cpu))
        print(speeds[-1], flush=True)
    if "ddpm" in args.backends:
        side = speed_side(ddpm)
        fresh = untrained("ddpm", [1, side, side], **ddpm)
        for scale in (1.0, 2.0):
            wall, cpu = sampling_speed(fresh, args.speed_samples, num_inference_steps=25, scheduler="ddim",
                                       guidance_scale=scale, batch_size=args.speed_samples)
            speeds.append((f"ddpm {side}x{side}, ddim 25 steps, guidance {scale:g}", wall, cpu))

    print(f"\nTraining budget {args.budget_cpu_min:g} CPU-min per backend, {args.threads} torch thread(s)")
    names = sorted({k for r in rows for k in r["scores"]})
    print("| backend | steps | train CPU-min | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for r in rows:
        cells = [f"{r['scores'][k]:.4g}" if isinstance(r["scores"].get(k), (int, float)) else "" for k in names]
        print(f"| {r['backend']} | {r['steps']} | {r['train_cpu_min']} | " + " | ".join(cells) + " |")
    ref = next((s for s in speeds if s[0].startswith("dcgan")), None)
    print("\n| sampler | images/s (wall) | images per CPU-s | ratio to dcgan (CPU) |\n|---|---:|---:|---:|")
    for name, wall, cpu in speeds:
        ratio = f"{cpu / ref[2]:.3g}" if ref else ""
        print(f"| {name} | {wall:.3g} | {cpu:.3g} | {ratio} |")


if __name__ == "__main__":
    main()
