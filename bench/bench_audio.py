"""Generation speed of the mel VAE: seconds of audio made per second of wall time.

Measured for a batch (one generate call of --batch clips) and for single clips (one call per
clip, as a server answering one request at a time does), alternating the two so machine noise
hits both. Weights do not change the cost, so the model is the FSDD shape (8 kHz, 1 s clips,
size small, 64 mel bands, 32 Griffin-Lim iterations) freshly initialised; no data is needed.
The reference measured in the same run is real time (1 s of audio per second): the ratios say
how many times faster than real time each path is, and batch/single what batching buys.

    .venv/bin/python bench/bench_audio.py [--batch 32] [--repeats 3] [--size small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--singles", type=int, default=8, help="clips generated one call each")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="small")
    ap.add_argument("--sample-rate", type=int, default=8000)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()

    import torch

    from aigc_audio.model import MelVAE, MelVAEParams

    torch.manual_seed(0)
    n = int(args.sample_rate * args.seconds)
    info = {"sample_rate": args.sample_rate, "num_samples": n, "num_classes": 10, "classes": [str(i) for i in range(10)]}
    model = MelVAE(MelVAEParams(size=args.size), info).eval()
    model.generate(2, seed=0)  # warm-up: first calls allocate and pick kernels

    batch_rates, single_rates = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        content = model.generate(args.batch, seed=r, batch_size=args.batch)
        wall = time.perf_counter() - start
        batch_rates.append(sum(len(i.data) for i in content.items) / args.sample_rate / wall)

        start = time.perf_counter()
        audio = 0
        for i in range(args.singles):
            audio += len(model.generate(1, seed=r, start=i).items[0].data)
        single_rates.append(audio / args.sample_rate / (time.perf_counter() - start))

    batch, single = statistics.median(batch_rates), statistics.median(single_rates)
    load = os.getloadavg()
    print(f"mel-vae size={args.size}, {args.sample_rate} Hz, {args.seconds:g} s clips, torch threads={torch.get_num_threads()}")
    print(f"batch of {args.batch}: {batch:8.1f} s of audio per s  ({batch:.1f}x real time)  runs: "
          + ", ".join(f"{x:.1f}" for x in batch_rates))
    print(f"single clip:  {single:8.1f} s of audio per s  ({single:.1f}x real time)  runs: "
          + ", ".join(f"{x:.1f}" for x in single_rates))
    print(f"ratio batch / single: {batch / single:.2f}")
    print(f"load average (1, 5, 15 min) at the end: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}")


if __name__ == "__main__":
    main()
