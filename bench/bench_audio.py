"""Generation speed of the mel VAE: seconds of audio made per second of wall time.

Both vocoders are measured in the same run, alternating: Griffin-Lim (no vocoder configured)
and the neural mel-vocoder (``--vocoder-size``, freshly initialised: weights do not change
the cost).

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
    ap.add_argument("--vocoder-size", default="small")
    ap.add_argument("--vocoder-refine", type=int, default=32,
                    help="the vocoder's Griffin-Lim refinement iterations (configs/vocoder-fsdd.yaml: 32)")
    args = ap.parse_args()

    import torch

    from aigc_audio.model import MelVAE, MelVAEParams

    torch.manual_seed(0)
    n = int(args.sample_rate * args.seconds)
    info = {"sample_rate": args.sample_rate, "num_samples": n, "num_classes": 10, "classes": [str(i) for i in range(10)]}
    griffin = MelVAE(MelVAEParams(size=args.size), info).eval()
    neural = MelVAE(MelVAEParams(size=args.size), info).eval()
    neural.load_state_dict(griffin.state_dict())
    from aigc_audio.vocoder import MelVocoderParams, VocoderNet

    settings = neural.mel_settings()
    net = VocoderNet(MelVocoderParams(size=args.vocoder_size, griffin_lim_iters=args.vocoder_refine, **settings))
    neural._set_vocoder(net, {"run": "(fresh)", "params": settings})
    models = {"griffin-lim": griffin, "mel-vocoder": neural}
    for model in models.values():
        model._noticed = True  # no Griffin-Lim notice in the figures
        model.generate(2, seed=0)  # warm-up: first calls allocate and pick kernels

    rates = {name: {"batch": [], "single": []} for name in models}
    for r in range(args.repeats):
        for name, model in models.items():
            start = time.perf_counter()
            content = model.generate(args.batch, seed=r, batch_size=args.batch)
            wall = time.perf_counter() - start
            rates[name]["batch"].append(sum(len(i.data) for i in content.items) / args.sample_rate / wall)
            start = time.perf_counter()
            audio = 0
            for i in range(args.singles):
                audio += len(model.generate(1, seed=r, start=i).items[0].data)
            rates[name]["single"].append(audio / args.sample_rate / (time.perf_counter() - start))

    load = os.getloadavg()
    print(f"mel-vae size={args.size}, {args.sample_rate} Hz, {args.seconds:g} s clips, torch threads={torch.get_num_threads()}, "
          f"vocoder refinement {args.vocoder_refine} Griffin-Lim iterations")
    medians = {}
    for name in models:
        for path in ("batch", "single"):
            runs = rates[name][path]
            medians[name, path] = statistics.median(runs)
            label = f"batch of {args.batch}" if path == "batch" else "single clip"
            print(f"{name:12s} {label:12s}: {medians[name, path]:8.1f} s of audio per s (x real time)  runs: "
                  + ", ".join(f"{x:.1f}" for x in runs))
    for path in ("batch", "single"):
        print(f"ratio mel-vocoder / griffin-lim, {path}: {medians['mel-vocoder', path] / medians['griffin-lim', path]:.2f}")
    print(f"load average (1, 5, 15 min) at the end: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}")


if __name__ == "__main__":
    main()
