"""Spoken digits: train configs/audio-fsdd.yaml (or --config) once and report the honest metric's figures.

The references measured in the same run are the floors: the same classifier (trained on the
validation split, which the generator never learns from) on real test recordings, and the
Fréchet distance between two halves of the test split. Goals: accuracy on generated digits at
least 0.9 x the floor, Fréchet ratio at most 3. With a vocoder run named (the config does:
generator.vocoder=runs/vocoder-fsdd, or pass another), also the vocoder's fidelity against
Griffin-Lim on held-out clips, and the vocoder run's own training time. Also prints
the training wall time, the CPU time the process actually got, and the machine's load average,
because on a shared machine wall time alone says little.

    AIGC_DATA_DIR=../shared/data nice .venv/bin/python bench/bench_audio_fsdd.py [--config FILE] [key=value ...]

The config defaults to configs/audio-fsdd.yaml (mel-diffusion); configs/audio-fsdd-vae.yaml is
the VAE. Also printed: the floor's real clips re-synthesised from their own mels by
the same vocoder, the ceiling of any spectrogram model with that vocoder.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if not os.environ.get("AIGC_DATA_DIR") and not any(a.startswith("data.path=") for a in sys.argv[1:]):
        sys.exit("bench_audio_fsdd: set AIGC_DATA_DIR (or pass data.path=...) to the FSDD recordings' parent")
    from aigc_core import Pipeline

    args = sys.argv[1:]
    config = ROOT / "configs/audio-fsdd.yaml"
    if args[:1] == ["--config"]:
        config, args = Path(args[1]), args[2:]
    out = Path(tempfile.mkdtemp(prefix="bench-audio-fsdd-"))
    os.environ.setdefault("AIGC_CACHE_DIR", str(out / "cache"))  # the classifier is trained fresh
    overrides = [f"output.dir={out / 'run'}", "train.progress_bar=false", *args]
    pipe = Pipeline.from_config(config, overrides)
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    run_dir = pipe.run(restart=True)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    load_after = os.getloadavg()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    m = manifest["metrics"]["audio-classifier"]
    t = manifest["timings"]
    print(f"config: {config} {' '.join(args)}".rstrip())
    print(f"training: {manifest['training']['epochs']} epochs, {manifest['training']['global_step']} steps, "
          f"{manifest['training']['train_s']:.0f} s wall (fit {t['fit_s']:.0f} s)")
    print(f"whole run: {wall:.0f} s wall, {cpu:.0f} s CPU in this process (metrics {t['metrics_s']:.0f} s)")
    print(f"classifier trained on {m['classifier_clips']} validation clips (never generator training data)")
    print(f"accuracy on generated digits: {m['accuracy_generated']:.3f}")
    print(f"accuracy on real held-out digits (floor): {m['accuracy_real_floor']:.3f}")
    print(f"ratio generated / floor: {m['accuracy_generated'] / m['accuracy_real_floor']:.3f}  (goal >= 0.90)")
    print("per asked digit: " + ", ".join(f"{k.rsplit('_', 1)[1]}={v:.2f}" for k, v in m.items()
                                          if k.startswith("accuracy_generated_")))
    print(f"Frechet distance in the classifier embedding: generated {m['fd_generated']:.2f}, "
          f"real floor {m['fd_real_floor']:.2f} (ratio {m['ratio_to_floor']}, goal <= 3)  n={m['num_samples']}")
    if "fd_resynthesised" in m:
        print(f"the floor's real clips re-synthesised by the same vocoder: accuracy {m['accuracy_resynthesised']:.3f} "
              f"({m['accuracy_resynthesised_ratio']:.3f} of the same clips unprocessed), Frechet {m['fd_resynthesised']:.2f} "
              f"(ratio {m['resynthesised_ratio_to_floor']}): the ceiling of any spectrogram model with this vocoder")
    v = manifest["metrics"].get("vocoder-fidelity")
    if v:
        print(f"vocoder fidelity on {v['num_clips']} held-out clips re-synthesised from their mels: STFT distance "
              f"vocoder {v.get('stft_distance_vocoder')} vs Griffin-Lim {v['stft_distance_griffin_lim']} "
              f"(ratio {v.get('ratio_vocoder_to_griffin_lim')}); STOI {v.get('stoi_vocoder')} vs {v.get('stoi_griffin_lim')}")
    vocoder = ((manifest.get("config") or {}).get("generator") or {}).get("vocoder")
    if vocoder and (Path(vocoder) / "manifest.json").is_file():
        vm = json.loads((Path(vocoder) / "manifest.json").read_text())
        print(f"vocoder run {vocoder}: {vm['training']['global_step']} optimiser steps, "
              f"fit {vm['timings']['fit_s'] / 60:.1f} min wall")
    print(f"load average before: {load_before[0]:.1f}, after: {load_after[0]:.1f} (1 min), on {os.cpu_count()} cores")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
