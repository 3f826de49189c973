"""Run the benchmarks cheap enough to be a default, one after another, and print each one's ratio lines.

    .venv/bin/python bench/run_all.py            # what `make bench` runs
    .venv/bin/python bench/run_all.py --list     # every benchmark it knows, its command, what it needs
    .venv/bin/python bench/run_all.py --only gan-throughput,startup   # these (default or not)

Each benchmark is its own script under bench/, run in a fresh interpreter with the arguments and
environment that produced its figure in docs/benchmarks.md, so a figure printed here compares with
the one recorded there. The scripts measure the thing and its reference in the same run; this
runner only sequences them (never two at once: they would share the cores and blur each other)
and, at the end, repeats each one's lines that carry a ratio or a goal.

The default set takes about 25 minutes on an idle 2-core machine. A benchmark whose data set is
not under $AIGC_DATA_DIR is skipped with the reason printed; one that is named but whose script
is not in this checkout is skipped the same way. Benchmarks that train for many CPU-minutes are
listed but run only when named with --only.

Exit status: 0 when every benchmark ran or was skipped with a reason, 1 when one failed, 2 for a
usage error (an unknown name).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    args: tuple[str, ...] = ()
    about: str = ""
    env: dict[str, str | None] = field(default_factory=dict)  # None removes the variable
    data: str | None = None  # path under $AIGC_DATA_DIR that the benchmark reads
    default: bool = True
    cost: str = ""  # rough wall time on an idle 2-core machine
    keep: str = r"ratio|goal"  # which output lines the summary repeats

    def command(self) -> str:
        unset = [f"-u {k}" for k, v in self.env.items() if v is None]
        words = (["env", *unset] if unset else []) + [f"{k}={v}" for k, v in self.env.items() if v is not None]
        if self.data:
            words.insert(0, "AIGC_DATA_DIR=...")
        return " ".join([*words, ".venv/bin/python", f"bench/{self.script}", *self.args])


BENCHES = [
    Bench("startup", "bench_startup.py", (),
          "`aigc plugins list` against `import pluggy, omegaconf` (target <= 1.5)", cost="~15 s"),
    Bench("config-loc", "config_loc.py", (),
          "lines of configuration code (target <= 589, a third below 884)", cost="~1 s", keep=r"total"),
    Bench("gan-throughput", "bench_gan.py", ("--epochs", "10", "--repeats", "3"),
          "DCGAN training images/s, aigc against a plain PyTorch loop (target >= 0.95)", cost="~2 min"),
    Bench("gan-checkpoint-cost", "bench_gan.py", ("--checkpoint-cost", "--epochs", "3", "--repeats", "2"),
          "time inside checkpoints at the default interval, share of training (target <= 3%)",
          env=ONE_THREAD, cost="~2 min", keep=r"ratio"),
    Bench("vae-throughput", "bench_vae.py", ("throughput", "--epochs", "10", "--repeats", "3"),
          "VAE training images/s, aigc against a plain loop, on sklearn digits (AIGC_DATA_DIR is unset for it:"
          " the script switches to MNIST when it can)", env={"AIGC_DATA_DIR": None}, cost="~2 min"),
    Bench("text-generate", "bench_text_generate.py", (),
          "tokens/s of aigc's decoding against model.generate (target >= 0.95)", env=ONE_THREAD, cost="~1 min"),
    Bench("text-shakespeare", "bench_text_shakespeare.py", (),
          "tiny Shakespeare held-out loss and wall time against nanoGPT's 1.886 nats/char in 97 s (targets <= 1)",
          env=ONE_THREAD, data="text/tinyshakespeare.txt", cost="~2 min", keep=r"ratios|nats/char held-out"),
    Bench("audio-speed", "bench_audio.py", ("--repeats", "3", "--singles", "4", "--batch", "16"),
          "mel-vae seconds of audio per second, mel-vocoder against Griffin-Lim (reference: real time)",
          env=ONE_THREAD, cost="~2 min", keep=r"ratio|x real time"),
    Bench("mel-diffusion-speed", "bench_mel_diffusion_speed.py",
          ("--clips", "16", "--set", "patch=4", "--mel-match", "100"),
          "mel-diffusion seconds of audio per CPU-second on one core, Griffin-Lim (target > 1: real time)",
          env=ONE_THREAD, cost="~2 min", keep=r"s of audio per CPU-s"),
    Bench("image-speed", "bench_image_backends.py",
          ("--speed-only", "--threads", "2", "--speed-samples", "64", "--steps", "25", "--ddpm-sizes", "small/p2,fast/p1"),
          "DDPM images/s at 25 DDIM steps on two cores, DCGAN and VAE in the same run (target >= 20)",
          cost="~2 min", keep=r"^\| (ddpm|dcgan|vae)"),
    Bench("allocator", "bench_allocator.py", ("--rounds", "3", "--threads", "1"),
          "glibc allocator tuning against none: sampling and training per CPU-second", cost="~2 min",
          keep=r"^\| (U-Net|training|kernel)"),
    Bench("serve", "bench_serve.py", (),
          "16 clients for 60 s on loopback (0 5xx, RSS growth) and micro-batching against one at a time",
          cost="~3 min", keep=r"mixed load|p50|RSS|ratio"),
    Bench("serve-adapters", "bench_serve_adapters.py", (),
          "memory of 3 LoRA adapters served over one base against one plain model (target <= 1.2)",
          cost="~2 min", keep=r"ratio|^\| (one|3)"),
    Bench("distributed", "bench_distributed.py", ("--trials", "3", "--kills", "3", "--epochs", "8", "--limit", "80"),
          "sharded generation on 1 and 2 processes, SIGKILL and resume (0 restarts, 0 files lost), DDP agreement",
          cost="~3 min",
          keep=r'generation:|"(sigkills|resumed|restarts_from_scratch|max_steps_redone|files_lost_or_different|ratio)"'),
    Bench("first-content", "bench_first_content.py", (),
          "time to first content of `aigc generate` and `aigc serve` against the imports they need (issue 30)",
          cost="~4 min idle"),
    # Not in the default run: each trains for many CPU-minutes.
    Bench("gan-quality", "bench_gan_quality.py",
          ("--config", "configs/gan-mnist.yaml", "--budget", "300", "--deadline-min", "50"),
          "MNIST at 300 CPU-s: Fréchet aigc / textbook DCGAN (target <= 0.5), recall / floor (target >= 0.6)",
          env=ONE_THREAD, data="mnist", default=False, cost="~10 min", keep=r"ratio|goal|Frechet|recall"),
    Bench("image-backends", "bench_image_backends.py",
          ("--budget-cpu-min", "5", "--metric-samples", "500", "--metrics", "frechet,image-diversity", "--steps", "25"),
          "DCGAN, VAE and DDPM at 5 CPU-minutes each on MNIST, same metrics and floors",
          env=ONE_THREAD, data="mnist", default=False, cost="~25 min", keep=r"^\||Frechet|frechet"),
    Bench("vae-nll", "bench_vae.py",
          ("nll", "--unit", "epochs", "--stages", "1,2,4,7,10,15,20,30", "--budget-min", "12", "--k", "200",
           "--images", "1000", "--run-dir", "/tmp/bench-vae-mnist"),
          "binarised MNIST NLL (k=200) against pythae's 89.78 nats, first 1,000 test images",
          env=ONE_THREAD, data="mnist", default=False, cost="~20 min", keep=r"reference|^\| 30 "),
]
BY_NAME = {b.name: b for b in BENCHES}


def missing(bench: Bench) -> str | None:
    """Why this benchmark cannot run here, or None."""
    if not (ROOT / "bench" / bench.script).is_file():
        return f"bench/{bench.script} is not in this checkout"
    if bench.data:
        data_dir = os.environ.get("AIGC_DATA_DIR")
        if not data_dir:
            return f"needs AIGC_DATA_DIR (the directory holding {bench.data}); it is not set"
        if not (Path(data_dir) / bench.data).exists():
            return f"needs {Path(data_dir) / bench.data}, which does not exist (AIGC_DATA_DIR={data_dir})"
    return None


def run(bench: Bench) -> tuple[int, list[str], float]:
    """Run one benchmark, echoing its output as it comes; return its exit status and output lines."""
    env = dict(os.environ)
    for key, value in bench.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    cmd = [sys.executable, str(ROOT / "bench" / bench.script), *bench.args]
    lines: list[str] = []
    started = time.perf_counter()
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
        rc = proc.wait()
    return rc, lines, time.perf_counter() - started


def list_benches() -> None:
    for default in (True, False):
        print("Run by default (make bench):" if default else
              "\nNot run by default (many CPU-minutes each; name them with --only):")
        for b in (b for b in BENCHES if b.default == default):
            needs = f"; needs $AIGC_DATA_DIR/{b.data}" if b.data else ""
            print(f"  {b.name:20s} {b.cost}{needs}\n      {b.about}\n      {b.command()}")


def select(only: str | None) -> list[Bench]:
    if not only:
        return [b for b in BENCHES if b.default]
    chosen = []
    for name in (n.strip() for n in only.split(",") if n.strip()):
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(BY_NAME)}"
            print(f"run_all: --only: unknown benchmark '{name}'{hint}", file=sys.stderr)
            sys.exit(2)
        chosen.append(BY_NAME[name])
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="show the benchmarks, their commands and needs; run nothing")
    parser.add_argument("--only", metavar="NAME[,NAME...]", help="run only these (default or not); see --list")
    args = parser.parse_args(argv)
    if args.list:
        list_benches()
        return 0
    chosen = select(args.only)
    results: list[tuple[Bench, str, list[str]]] = []
    for bench in chosen:
        reason = missing(bench)
        if reason:
            print(f"\n== {bench.name}: skipped: {reason}", flush=True)
            results.append((bench, f"skipped: {reason}", []))
            continue
        print(f"\n== {bench.name}: {bench.command()}", flush=True)
        rc, lines, seconds = run(bench)
        status = f"ok in {seconds:.0f} s" if rc == 0 else f"FAILED (exit {rc}) after {seconds:.0f} s"
        keep = re.compile(bench.keep)
        results.append((bench, status, [line for line in lines if keep.search(line)]))
    print("\n== summary (docs/benchmarks.md has the recorded figures and their references)")
    for bench, status, kept in results:
        print(f"{bench.name}: {status}")
        for line in kept:
            print(f"    {line.strip()}")
    return 1 if any(status.startswith("FAILED") for _, status, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
