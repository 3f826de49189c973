"""Generation speed of mel-diffusion on one core, in seconds of audio per second of CPU time (the
process's own CPU time, so other jobs on a shared machine do not count against it), at the FSDD
shape (1 s clips at 8 kHz, 64 mels x 64 frames), for a few sampler settings, with Griffin-Lim and
(given a mel-vocoder run) the neural vocoder; mel-vae measured in the same run as a reference.
Speed does not depend on training, so the models are untrained.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_mel_diffusion_speed.py [VOCODER_RUN] [--clips 16]
        [--set KEY=VALUE ...] [--mel-match N]

``--set`` changes a mel-diffusion setting (e.g. patch=4); ``--mel-match N`` gives both models
``mel_match_iters: N`` (after the vocoder, or after Griffin-Lim).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    from aigc_core.generation.inference import generate_with
    ap = argparse.ArgumentParser()
    ap.add_argument("vocoder", nargs="?")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--set", action="append", default=[], help="a mel-diffusion setting, KEY=VALUE")
    ap.add_argument("--mel-match", type=int, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from aigc_audio.diffusion import MelDiffusion
    from aigc_audio.model import MelVAE
    from aigc_core.store.config import build_params

    info = {"sample_rate": 8000, "num_samples": 8000, "classes": [str(i) for i in range(10)], "num_classes": 10}
    torch.manual_seed(0)
    match = {} if args.mel_match is None else {"mel_match_iters": args.mel_match}
    import yaml

    settings = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}  # as a config file reads it
    models = {"mel-vae": MelVAE(build_params(MelVAE.Params, match, "generator"), dict(info)),
              "mel-diffusion": MelDiffusion(build_params(MelDiffusion.Params, {**settings, **match}, "generator"), dict(info))}
    cases = [("mel-vae", {}), ("mel-diffusion", {"scheduler": "unipc", "num_inference_steps": 40, "guidance_scale": 1.5}),
             ("mel-diffusion", {"scheduler": "dpm-solver", "num_inference_steps": 20}),
             ("mel-diffusion", {"scheduler": "dpm-solver", "num_inference_steps": 10}),
             ("mel-diffusion", {"scheduler": "ddim", "num_inference_steps": 25})]
    vocoders = ["Griffin-Lim"] + ([args.vocoder] if args.vocoder else [])
    print(f"load {os.getloadavg()[0]:.1f}; mel-diffusion {settings or 'defaults'}; mel_match_iters {args.mel_match}; {args.clips} clips of 1 s per case; guidance 2 (two U-Net passes a step)")
    for vocoder in vocoders:
        for name, model in models.items():
            model.vocoder = None
            if vocoder != "Griffin-Lim":
                model.attach_vocoder(vocoder)
        for name, options in cases:
            model = models[name]
            generate_with(model, 1, seed=0, **options)  # warm-up
            c0, w0 = time.process_time(), time.perf_counter()
            generate_with(model, args.clips, seed=1, **options)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            shown = " ".join(f"{k}={v}" for k, v in options.items())
            print(f"{name:13s} {shown:40s} {vocoder:12.12s}: {args.clips / cpu:5.2f} s of audio per CPU-s "
                  f"({args.clips / wall:5.2f} per wall-s)", flush=True)


if __name__ == "__main__":
    main()
