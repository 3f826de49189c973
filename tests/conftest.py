"""Fixtures shared by the core's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_testutil import tiny_gan_config


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One finished tiny GAN run (config.yaml, manifest.json, model/, outputs/), reused read-only."""
    from aigc_core import Pipeline

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return Pipeline.from_config(tiny_gan_config(out)).run()
