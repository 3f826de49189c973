"""Component bases that need no torch: post-processors, metrics, exporters.

Generators and data sources are Lightning classes and live in ``aigc_core.contract.components``, which
is imported only when a pipeline builds one. This module imports pydantic (``aigc_core.contract.params``),
so plugin discovery does not import it either: ``aigc_core`` exports these names lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .content import Content
from .preflight import Checked
from .params import NoParams


class Component(Checked):
    """Common ground of every component: a ``Params`` model (``aigc_core.Params``) validated from the config."""

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
    """What a metric may look at. ``data`` is set up for fit; ``cache_dir`` survives runs."""

    generator: Any
    data: Any
    content: Content
    cache_dir: Path
    seed: int
    run_dir: Path | None = None
    extra: dict = field(default_factory=dict)
    #: The run's ``aigc_core.Inference``: what ``generate`` goes through (None for a bare generator).
    inference: Any = None

    def generate(self, n: int, seed: int, **options: Any) -> Content:
        """``n`` fresh samples as the run makes them (its configured options, stamped).

        Not post-processed: a metric scores the generator, and post-processors may add derived
        items (grids) or drop some. Without an ``inference`` the bare generator is asked, through
        the same call (``aigc_core.generation.inference.generate_with``: eval mode, no autograd, label checked).
        """
        if self.inference is not None:
            return self.inference.generate(n, seed, **options)
        from ..generation.inference import generate_with

        return generate_with(self.generator, n, seed, **options)


class Metric(Component):
    """Scores a generator against held-out real data, offline."""

    def compute(self, context: MetricContext) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    def needs(self) -> dict[str, int]:
        """The fewest items each split must hold for ``compute`` (``{"val": 2, "test": 2}``).

        Declared rather than discovered, so a few-shot data set too small for this metric can be
        refused as soon as the data is read (``aigc_core.contract.splits.check_needs``), before training,
        and in one line naming the fraction to change; ``compute`` calls ``require`` first.
        """
        return {}

    def require(self, data: Any) -> None:
        """Refuse (``ConfigError`` naming ``data.<split>_fraction``) splits smaller than ``needs``."""
        from .splits import check_needs

        check_needs(data, {self.component_name or type(self).__name__: self.needs()})


class Exporter(Component):
    """Writes content to files, each under a temporary name first (``atomic_write``)."""

    def export(self, content: Content, directory: Path) -> list[Path]:  # pragma: no cover
        raise NotImplementedError
