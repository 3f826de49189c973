"""Start-up cost of `aigc plugins list` against importing only its two light dependencies.

Both are fresh interpreters, alternated, median of several runs; the ratio shows what plugin
discovery and the CLI add on top of `import pluggy, omegaconf`.

    .venv/bin/python bench/bench_startup.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    aigc = [sys.executable, "-m", "aigc_core", "plugins", "list"]
    base = [sys.executable, "-c", "import pluggy, omegaconf"]
    timed(aigc), timed(base)  # warm the file cache
    a, b = [], []
    for _ in range(args.repeats):
        a.append(timed(aigc))
        b.append(timed(base))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"aigc plugins list {ma * 1000:.0f} ms, import pluggy+omegaconf {mb * 1000:.0f} ms, ratio {ma / mb:.2f}")


if __name__ == "__main__":
    main()
