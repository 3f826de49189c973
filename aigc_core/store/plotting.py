"""The loss curve of a run, from Lightning's CSV log."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..contract.atomic import atomic_path
from .rundir import LOGS_DIR, LOSS_PLOT

CSV_LOG = Path(LOGS_DIR) / "csv" / "metrics.csv"


def read_losses(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    path = Path(run_dir) / CSV_LOG
    series: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if not step:
                continue
            for key, value in row.items():
                if "loss" in key and value not in (None, ""):
                    try:
                        v = float(value)
                    except ValueError:
                        continue
                    if math.isfinite(v):
                        series.setdefault(key, []).append((int(float(step)), v))
    return series


def plot_losses(run_dir: Path) -> list[Path]:
    """Write loss.png beside the logs; returns the written files (none without a log)."""
    series = read_losses(run_dir)
    if not series:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in sorted(series):
        steps, values = zip(*series[key])
        ax.plot(steps, values, label=key, linewidth=1.2)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss")
    ax.set_title(f"training losses: {Path(run_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(run_dir) / LOSS_PLOT
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return [out]
