"""Helpers for aigc tests: tiny configs built in code, CLI runners, the shared-data switch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tiny_gan_config(out_dir: Path, **changes) -> dict:
    """A DCGAN on 8x8 digits that trains in a few seconds."""
    config = {
        "name": "tiny-gan",
        "seed": 3,
        "data": {"source": "sklearn-digits", "image_size": 8, "batch_size": 32, "limit": 256},
        "generator": {"name": "dcgan", "size": "debug"},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1,
                  "log_every_n_steps": 1},
        "generate": {"num_samples": 6},
        "postprocess": [{"name": "image-grid", "nrow": 3}],
        "metrics": [],
        "output": {"dir": str(out_dir)},
    }
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            config[section][sub] = value
        else:
            config[section] = value
    return config


def write_yaml(path: Path, config: dict) -> Path:
    from omegaconf import OmegaConf

    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    return path


def run_aigc(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=str(ROOT))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (fast): exit code, stdout, stderr."""
    from aigc_core.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def data_dir() -> Path | None:
    value = os.environ.get("AIGC_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


requires_data = pytest.mark.skipif(data_dir() is None, reason="AIGC_DATA_DIR is not set to ../shared/data")


def tiny_backend_configs(out_dir: Path) -> dict[str, dict]:
    """One tiny config per bundled backend (a few training steps each), keyed by generator name.

    For tests and benchmarks that need a finished run of every backend, not a good one."""
    def config(name: str, data: dict, generator: dict, generate: dict | None = None) -> dict:
        return {
            "name": f"tiny-{name}", "seed": 0, "data": data, "generator": generator,
            "train": {"max_epochs": 1, "max_steps": 2, "accelerator": "cpu", "progress_bar": False,
                      "sample_every_n_epochs": 0, "limit_val_batches": 0},
            "generate": {"num_samples": 4, **(generate or {})},
            "metrics": [], "output": {"dir": str(Path(out_dir) / name)},
        }

    digits = {"source": "sklearn-digits", "image_size": 16, "batch_size": 16, "limit": 64}
    notes = {"source": "synth-notes", "sample_rate": 8000, "duration": 0.25, "num_items": 32, "batch_size": 8}
    return {
        "dcgan": config("dcgan", digits, {"name": "dcgan", "size": "debug"}),
        "vae": config("vae", digits, {"name": "vae", "size": "debug"}),
        "ddpm": config("ddpm", digits, {"name": "ddpm", "size": "debug"}, {"num_inference_steps": 2}),
        "causal-lm": config("causal-lm", {"source": "python-docs", "limit": 20, "max_chars": 20_000, "batch_size": 8},
                            {"name": "causal-lm", "size": "debug", "vocab_size": 300}, {"max_new_tokens": 8}),
        "mel-diffusion": config("mel-diffusion", notes, {"name": "mel-diffusion", "size": "debug"},
                                {"num_inference_steps": 2}),
    }
