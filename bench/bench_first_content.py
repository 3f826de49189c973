"""Time to first content: `aigc generate RUN -n 4` and `aigc serve RUN` readiness against the
import floor of the libraries each backend is built on, measured in the same run (issue 30).

    .venv/bin/python bench/bench_first_content.py [--repeats 5] [--backends dcgan,vae,...]

For each bundled backend it trains a tiny run (a few steps: loading cost does not depend on how
well a model learnt), then times, in fresh interpreters, median of ``--repeats``:
- the floor: dcgan and vae `import torch`; ddpm `from diffusers import UNet2DModel, DDIMScheduler`;
  causal-lm `import torch, transformers` plus loading the run's model and tokenizer with
  `from_pretrained`;
  mel-diffusion the diffusers import plus `import torchaudio`;
- `aigc generate RUN -n 4` (wall time of the whole command);
- `aigc serve RUN` until `GET /readyz` answers 200.
It prints each ratio to the floor; the targets are generate <= 1.5x (dcgan, vae) or 1.1x (the
others), and serve within the same bound plus 1 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DIFFUSERS = "from diffusers import UNet2DModel, DDIMScheduler"
FLOORS = {
    "dcgan": ("import torch", 1.5),
    "vae": ("import torch", 1.5),
    "ddpm": (DIFFUSERS, 1.1),
    # a text model is its weights and its tokenizer: both are loaded before the first token
    "causal-lm": ("import torch, transformers; transformers.AutoModelForCausalLM.from_pretrained({model!r}); "
                  "transformers.AutoTokenizer.from_pretrained({model!r})", 1.1),
    "mel-diffusion": (DIFFUSERS + "; import torchaudio", 1.1),
}


def timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ready(run: Path, env: dict, limit_s: float = 120.0) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "aigc_core", "serve", str(run), "--port", str(port)],
                            env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < limit_s:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"aigc serve {run} exited with {proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError(f"aigc serve {run} not ready within {limit_s} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default=",".join(FLOORS))
    args = parser.parse_args()
    from aigc_core import Pipeline
    from aigc_testutil import tiny_backend_configs

    env = {k: v for k, v in os.environ.items() if k != "AIGC_API_KEY"}
    work = Path(tempfile.mkdtemp(prefix="aigc-first-content-"))
    configs = tiny_backend_configs(work / "runs")
    print(f"{'backend':<14} {'floor s':>8} {'generate s':>11} {'ratio':>6} {'target':>6}   {'serve s':>8} {'ratio':>6}")
    for name in args.backends.split(","):
        Pipeline.from_config(configs[name]).fit()
        run = Path(configs[name]["output"]["dir"])
        floor_code, target = FLOORS[name]
        floor_code = floor_code.format(model=str(run / "model"))
        floors, gens, serves = [], [], []
        for k in range(args.repeats):  # interleaved, so a burst of load hits all three alike
            floors.append(timed([sys.executable, "-c", floor_code], env))
            gens.append(timed([sys.executable, "-m", "aigc_core", "generate", str(run), "-n", "4",
                               "--out", str(work / "out" / name / str(k))], env))
            serves.append(serve_ready(run, env))
        floor, gen, serve = (statistics.median(v) for v in (floors, gens, serves))
        verdict = "ok" if gen <= target * floor else "MISSED"
        serve_verdict = "ok" if serve <= target * floor + 1.0 else "MISSED"
        print(f"{name:<14} {floor:8.2f} {gen:11.2f} {gen / floor:6.2f} {target:6.1f}x  {serve:8.2f} "
              f"{serve / floor:6.2f}  generate {verdict}, serve {serve_verdict} (<= {target}x floor + 1 s)", flush=True)


if __name__ == "__main__":
    main()
