"""The allocator tuning (aigc_core/helpers/allocator.py) on a CPU network loop: tuned against untuned.

Each round runs two fresh processes, one with ``AIGC_MALLOC_TUNING=0`` (the reference) and one
with the tuning, alternating, and each reports DDPM sampling passes (the ``fast`` U-Net at
28x28, batch 64, inference) and training steps (the same U-Net at 32x32, batch 64, AdamW) per
CPU second, and the kernel's share of its CPU time. Printed: the medians and the ratio.

    .venv/bin/python bench/bench_allocator.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, os, sys, time, torch
from aigc_core.helpers.allocator import tune_allocator
tuned = tune_allocator()
torch.set_num_threads(int(sys.argv[1]))
from aigc_diffusion.denoiser import build_unet
from aigc_diffusion.model import SIZES
widths, layers, attention = SIZES["fast"]
t = torch.randint(0, 1000, (64,)); y = torch.randint(0, 10, (64,))

def cpu():
    r = os.times(); return r.user + r.system, r.system

net = build_unet((1, 28, 28), widths, layers, attention, num_classes=10)
x = torch.randn(64, 1, 28, 28)
with torch.inference_mode():
    net(x, t, class_labels=y)
    (c0, s0) = cpu()
    for _ in range(25):
        net(x, t, class_labels=y)
    (c1, s1) = cpu()
net = build_unet((1, 32, 32), widths, layers, attention, num_classes=10)
opt = torch.optim.AdamW(net.parameters())
x = torch.randn(64, 1, 32, 32)
def step():
    loss = net(x, t, class_labels=y).sample.pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
step()
(c2, s2) = cpu()
for _ in range(8):
    step()
(c3, s3) = cpu()
print(json.dumps({"tuned": tuned, "sample": 25 * 64 / (c1 - c0), "train": 8 / (c3 - c2),
                  "kernel": (s1 - s0 + s3 - s2) / (c1 - c0 + c3 - c2)}))
"""


def run(threads: int, tuned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["AIGC_MALLOC_TUNING"] = "1" if tuned else "0"
    env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["tuned"] == tuned, "the tuning did not take effect as asked"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.rounds):
        for tuned in (False, True):
            rows[tuned].append(run(args.threads, tuned))

    def med(tuned: bool, key: str) -> float:
        return statistics.median(r[key] for r in rows[tuned])

    print(f"{args.rounds} rounds, {args.threads} torch thread(s), fresh process per measurement")
    print("| figure | untuned (reference) | tuned | ratio |")
    print("|---|---:|---:|---:|")
    for key, label in (("sample", "U-Net passes per CPU-s, sampling (batch 64, 28x28)"),
                       ("train", "training steps per CPU-s (batch 64, 32x32)")):
        ref, new = med(False, key), med(True, key)
        print(f"| {label} | {ref:.3g} | {new:.3g} | {new / ref:.2f} |")
    print(f"| kernel share of CPU time | {med(False, 'kernel'):.0%} | {med(True, 'kernel'):.0%} | |")


if __name__ == "__main__":
    main()
