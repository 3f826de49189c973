"""Memory of serving three adapters over one base against serving one plain model (issue 24, target <= 1.2x).

    .venv/bin/python bench/bench_serve_adapters.py [--size base] [--image-size 64] [--rank 8] [--adapters 3]

1. Trains a DCGAN base run (digits upscaled to ``--image-size``, ``--size`` preset, a few steps: the
   figure is about memory, not quality) and ``--adapters`` LoRA adapters of rank ``--rank`` on it
   (its projection and every transposed convolution), each a few steps with its own seed.
2. In a fresh interpreter each, loads what ``aigc serve`` would serve (``load_models``, the server's
   own loader) and measures it two ways:
   - tensor bytes: every parameter and buffer reachable from the served models' generators,
     counted once per storage (exact: what the models hold);
   - RSS growth: the process's resident memory after loading minus before, with torch, aigc, its
     plugins and peft (which pulls in transformers) imported before the first reading in every
     case, so the figure is the models' and not the libraries'.
   Cases: the base alone (one plain model, the reference); the adapters together (one base in
   memory, the adapters attached to it, base served too); and, for contrast, each adapter loaded
   on a base of its own (``Run.load`` per run, what serving them apart would hold).
3. Prints each case's figures and its ratio to the reference, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import gc, json, sys
import torch, peft  # noqa: F401 - imported before the first reading: libraries are not the models
import aigc_core
from aigc_core.plugins import get_registry
from aigc_core.server.models import load_models
from aigc_core import Run

get_registry()  # the plugins' registration, as serve does before loading
mode, runs = sys.argv[1], sys.argv[2:]

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

gc.collect()
before = rss()
if mode == "apart":  # each run loaded on its own copy of the base
    loaded = [Run.load(r) for r in runs]
    generators = [r.generator for r in loaded]
    served = len(loaded)
else:
    models = load_models(runs)
    generators = [m.run.generator for m in models.values()]
    served = len(models)
gc.collect()
after = rss()
seen, tensor_bytes = set(), 0
for g in generators:
    for t in [*g.parameters(), *g.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            tensor_bytes += t.numel() * t.element_size()
print(json.dumps({"rss": after - before, "tensor_bytes": tensor_bytes, "served": served,
                  "generators": len({id(g) for g in generators})}))
"""


def make_runs(work: Path, size: str, image_size: int, rank: int, count: int) -> tuple[Path, list[Path]]:
    import torch.nn as nn

    from aigc_core import Pipeline, Run

    train = {"max_epochs": 1, "max_steps": 2, "accelerator": "cpu", "progress_bar": False,
             "sample_every_n_epochs": 0, "limit_val_batches": 0}
    data = {"source": "sklearn-digits", "image_size": image_size, "limit": 64, "batch_size": 16}
    base = work / "base"
    if not (base / "model").is_dir():
        Pipeline.from_config({"name": "base", "seed": 0, "data": data, "generator": {"name": "dcgan", "size": size},
                              "train": train, "metrics": [], "output": {"dir": str(base)}}).fit()
    # the projection and every transposed convolution wide enough for the rank (not the one to pixels)
    layers = Run.load(base).generator.G.named_modules()
    targets = [name for name, m in layers if (isinstance(m, nn.Linear) and min(m.in_features, m.out_features) >= rank)
               or (isinstance(m, nn.ConvTranspose2d) and min(m.in_channels, m.out_channels) >= rank)]
    adapters = []
    for index in range(count):
        run = work / f"adapter-{index}"
        if not (run / "model").is_dir():
            Pipeline.from_config({"name": f"adapter-{index}", "seed": 1 + index, "data": data,
                                  "generator": {"name": "dcgan", "base": str(base),
                                                "adapter": {"rank": rank, "targets": targets}},
                                  "train": train, "metrics": [], "output": {"dir": str(run)}}).fit()
        adapters.append(run)
    return base, adapters


def measure(mode: str, runs: list[Path]) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, mode, *map(str, runs)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measuring {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="base", choices=["debug", "small", "base"], help="DCGAN preset")
    parser.add_argument("--image-size", type=int, default=64, choices=[8, 16, 32, 64])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-adapters-") as tmp:
        work = args.work or Path(tmp)
        base, adapters = make_runs(work, args.size, args.image_size, args.rank, args.adapters)
        adapter_params = sum(json.loads((a / "model" / "adapter.json").read_text())["parameters"] for a in adapters)
        cases = [("one plain model (the base alone)", measure("serve", [base])),
                 (f"{args.adapters} adapters over one base (base served too)", measure("serve", adapters)),
                 (f"{args.adapters} adapters, each on its own base", measure("apart", adapters))]
    ref = cases[0][1]
    print(f"DCGAN size {args.size}, {args.image_size}x{args.image_size}; {args.adapters} LoRA adapters of rank "
          f"{args.rank}, {adapter_params:,} adapter parameters in all")
    print("| served | models | generators in memory | tensor MiB | ratio | RSS growth MiB | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, c in cases:
        print(f"| {label} | {c['served']} | {c['generators']} | {c['tensor_bytes'] / 2**20:.2f} | "
              f"{c['tensor_bytes'] / ref['tensor_bytes']:.3f}x | {c['rss'] / 2**20:.1f} | {c['rss'] / ref['rss']:.2f}x |")
    shared = cases[1][1]
    verdict = "meets" if shared["tensor_bytes"] / ref["tensor_bytes"] <= 1.2 else "misses"
    print(f"ratio (3 adapters over one base / one model): tensors {shared['tensor_bytes'] / ref['tensor_bytes']:.3f}x, "
          f"RSS {shared['rss'] / ref['rss']:.2f}x; {verdict} the target <= 1.2x")


if __name__ == "__main__":
    main()
