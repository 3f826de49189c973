"""Spoken digits: train configs/audio-fsdd.yaml once and report the classifier figures.

The reference measured in the same run is the floor: the same classifier's accuracy on real
held-out recordings. The goal is accuracy on generated digits >= 0.80; the ratio
generated / floor says how close to real recordings the generated ones are heard. Also prints
the training wall time, the CPU time the process actually got, and the machine's load average,
because on a shared machine wall time alone says little.

    AIGC_DATA_DIR=../shared/data nice .venv/bin/python bench/bench_audio_fsdd.py [key=value ...]
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

    out = Path(tempfile.mkdtemp(prefix="bench-audio-fsdd-"))
    os.environ.setdefault("AIGC_CACHE_DIR", str(out / "cache"))  # the classifier is trained fresh
    overrides = [f"output.dir={out / 'run'}", "train.progress_bar=false", *sys.argv[1:]]
    pipe = Pipeline.from_config(ROOT / "configs/audio-fsdd.yaml", overrides)
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    run_dir = pipe.run(restart=True)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    load_after = os.getloadavg()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    m = manifest["metrics"]["audio-classifier"]
    t = manifest["timings"]
    print(f"config: configs/audio-fsdd.yaml {' '.join(sys.argv[1:])}".rstrip())
    print(f"training: {manifest['training']['epochs']} epochs, {manifest['training']['global_step']} steps, "
          f"{manifest['training']['train_s']:.0f} s wall (fit {t['fit_s']:.0f} s)")
    print(f"whole run: {wall:.0f} s wall, {cpu:.0f} s CPU in this process (metrics {t['metrics_s']:.0f} s)")
    print(f"accuracy on generated digits: {m['accuracy_generated']:.3f}  (goal >= 0.80)")
    print(f"accuracy on real held-out digits (floor): {m['accuracy_real_floor']:.3f}")
    print(f"ratio generated / floor: {m['accuracy_generated'] / m['accuracy_real_floor']:.3f}")
    print(f"Frechet distance in the classifier embedding: generated {m['fd_generated']:.2f}, "
          f"real floor {m['fd_real_floor']:.2f} (ratio {m['ratio_to_floor']})  n={m['num_samples']}")
    print(f"load average before: {load_before[0]:.1f}, after: {load_after[0]:.1f} (1 min), on {os.cpu_count()} cores")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
