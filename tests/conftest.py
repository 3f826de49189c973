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


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory) -> Path:
    """The tiny GAN the server tests serve as ``digits-gan``, trained once a session at the one
    path every server test module shares (``server_kit.tiny_gan_run`` reuses it)."""
    from server_kit import tiny_gan_run

    return tiny_gan_run(tmp_path_factory.getbasetemp() / "server-gan")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory) -> Path:
    """The fake streaming text model the server tests serve as ``fake-text``."""
    from server_kit import fake_text_run

    return fake_text_run(tmp_path_factory.getbasetemp() / "server-fake-text")


@pytest.fixture()
def client(server):
    """An HTTP client of the test module's ``server`` fixture (a ``server_kit.LiveServer``)."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
