"""Short probes of mel-vocoder settings on FSDD: which head, loss and schedule lowers the STFT
distance of held-out clips fastest, per second of CPU, against Griffin-Lim in the same run.

A probe trains only the non-adversarial part (the same crops, losses and optimiser as
``MelVocoderTraining.training_step`` before ``gan_start_steps``; the scored output is the network
alone, without ``griffin_lim_iters`` refinement, which --gl-eval adds) in a plain loop for a fixed number of
steps, so probes of different settings are comparable step for step; it prints the CPU seconds
they took (time.process_time, this process only) because the machine is shared.

    AIGC_DATA_DIR=../shared/data OMP_NUM_THREADS=1 nice -n 10 \\
        .venv/bin/python bench/bench_vocoder_probe.py --steps 600 --gl-eval stft_weight=0 magnitude_weight=1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def griffin_lim(net, spec, init: str, iters: int, length: int):
    """Plain Griffin-Lim with torchaudio's momentum (0.99) and a chosen initial phase."""
    import torch

    mag = spec.abs()
    angles = spec / mag.clamp_min(1e-10) if init == "net" else torch.ones_like(spec)
    prev = torch.zeros_like(spec)
    for _ in range(iters):
        wave = torch.istft(mag * angles, net.n_fft, net.hop_length, net.n_fft, net.window, center=True, length=length)
        rebuilt = torch.stft(wave, net.n_fft, net.hop_length, net.n_fft, net.window, center=True, return_complex=True)
        angles = rebuilt - 0.99 / 1.99 * prev
        prev = rebuilt
        angles = angles / angles.abs().clamp_min(1e-16)
    return torch.istft(mag * angles, net.n_fft, net.hop_length, net.n_fft, net.window, center=True, length=length)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--clips", type=int, default=100, help="held-out test clips scored")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--save", default="", help="write the trained net's state_dict here (torch.save)")
    ap.add_argument("--gl-eval", action="store_true",
                    help="also score Griffin-Lim run on the net's magnitudes (from zero phase and from the net's phase)")
    ap.add_argument("params", nargs="*", help="generator params as key=value")
    args = ap.parse_args()
    if not os.environ.get("AIGC_DATA_DIR"):
        sys.exit("bench_vocoder_probe: set AIGC_DATA_DIR to the FSDD recordings' parent")
    import torch
    from aigc_core import Pipeline
    from aigc_audio.model import split_tensors
    from aigc_audio.stft_distance import stft_distance
    from aigc_audio.vocoder import MelVocoder, MelVocoderParams
    from aigc_audio.vocoder_training import MelVocoderTraining

    torch.manual_seed(0)
    pipe = Pipeline.from_config(ROOT / "configs/vocoder-fsdd.yaml", ["output.dir=/tmp/vocoder-probe-unused"])
    source = pipe.data_source()
    overrides = {}
    for kv in args.params:
        k, v = kv.split("=", 1)
        overrides[k] = v
    base = {k: v for k, v in pipe.raw["generator"].items() if k != "name"}
    fields = MelVocoderParams.model_fields
    params = {**base, **overrides}
    for k, v in list(params.items()):
        t = fields[k].annotation
        if v is None:
            continue
        if "int" in str(t) and "Literal" not in str(t):
            params[k] = int(v)
        elif "float" in str(t):
            params[k] = float(v)
    model = MelVocoder.build(MelVocoderParams(**params), source, None)
    training = MelVocoderTraining(model)  # crops and the magnitude loss
    net = model.net
    train_waves, _ = split_tensors(source.split("train"))
    test_waves, _ = split_tensors(source.split("test"), limit=args.clips)
    with torch.no_grad():
        test_mel = model.features.log_mel(test_waves)
        gl = stft_distance(model.features.invert(test_mel, test_waves.shape[1]), test_waves, model.sample_rate).item()

    def evaluate() -> float:
        net.eval()
        with torch.no_grad():
            d = stft_distance(net(test_mel, test_waves.shape[1]), test_waves, model.sample_rate).item()
        net.train()
        return d

    p = model.params
    opt = torch.optim.AdamW(net.parameters(), lr=p.lr, betas=(0.8, 0.99))
    gen = torch.Generator().manual_seed(0)
    bs = 16
    cpu0 = time.process_time()
    for step in range(args.steps):
        if p.lr_schedule == "cosine":
            for g in opt.param_groups:
                g["lr"] = p.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        idx = torch.randint(len(train_waves), (bs,), generator=gen)
        mel, target = training.crops(train_waves[idx])
        spec = net.spectrum(mel)
        loss = mel.new_zeros(())
        if p.stft_weight:
            loss = loss + p.stft_weight * stft_distance(net._istft(spec, target.shape[1]), target, model.sample_rate)
        if p.magnitude_weight:
            loss = loss + p.magnitude_weight * training.magnitude_distance(spec, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            print(f"  step {step + 1}: test distance {evaluate():.3f} ({time.process_time() - cpu0:.0f} s CPU)", flush=True)
    cpu = time.process_time() - cpu0
    d = evaluate()
    print(f"probe {' '.join(args.params) or '(defaults)'}: {args.steps} steps, {cpu:.0f} s CPU; "
          f"test STFT distance {d:.3f} vs Griffin-Lim {gl:.3f} (ratio {d / gl:.3f}, {args.clips} clips)", flush=True)
    if args.gl_eval:
        with torch.no_grad():
            net.eval()
            spec = net.spectrum(test_mel)
            for init in ("zero", "net"):
                for iters in (0, 8, 32):
                    if init == "zero" and iters == 0:
                        continue
                    wave = griffin_lim(net, spec, init, iters, test_waves.shape[1])
                    d = stft_distance(wave, test_waves, model.sample_rate).item()
                    print(f"  GL on net magnitude, {init} initial phase, {iters} iterations: {d:.3f} (ratio {d / gl:.3f})")
    if args.save:
        torch.save(net.state_dict(), args.save)


if __name__ == "__main__":
    main()
