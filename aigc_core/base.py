"""Component bases that need no torch: post-processors, metrics, exporters.

Generators and data sources are Lightning classes and live in ``aigc_core.components``, which
is imported only when a pipeline builds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from .content import Content


@dataclass
class NoParams:
    """Parameters of a component that takes none."""


class Component:
    """Common ground of every component: a ``Params`` dataclass validated from the config."""

    Params: ClassVar[type] = NoParams
    #: Set by the registry when the component is built from a config.
    component_name: ClassVar[str] = ""

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()


class PostProcessor(Component):
    """Takes Content, returns Content; drops go through ``content.drop`` with a reason."""

    def __call__(self, content: Content) -> Content:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class MetricContext:
    """What a metric may look at. ``data`` is set up for fit; ``cache_dir`` survives runs.
    ``sample(n, seed)`` makes content as the run's ``generate:`` section would (its options:
    steps, guidance, temperature...), so a score describes what the user actually generates;
    without it, metrics fall back to the generator's defaults."""

    generator: Any
    data: Any
    content: Content
    cache_dir: Path
    seed: int
    run_dir: Path | None = None
    extra: dict = field(default_factory=dict)
    sample: Callable[[int, int], Content] | None = None


class Metric(Component):
    """Scores a generator against held-out real data, offline."""

    def compute(self, context: MetricContext) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError


class Exporter(Component):
    """Writes content to files, each under a temporary name first (``atomic_write``)."""

    def export(self, content: Content, directory: Path) -> list[Path]:  # pragma: no cover
        raise NotImplementedError
