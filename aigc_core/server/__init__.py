"""HTTP serving of trained runs: a JSON API, server-sent events for text, and a web page.

``create_app(run_dirs, settings)`` loads each run once (checkpoints verified by
``Run.load``) and returns a FastAPI app; ``aigc serve`` runs it under uvicorn.
Everything here drives the public ``Pipeline`` API only, so a new modality plugin is served
without changes to this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI and torch are imported only when a server is actually built.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServerSettings":
        from .settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'aigc_core.server' has no attribute {name!r}")
