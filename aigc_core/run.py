"""A finished run, loaded: the one object that opens a run directory for use.

    run = Run.load("runs/quickstart")              # config.yaml, verified model/, manifest
    content = run.inference.generate(8, seed=1)    # or run.generate(8, seed=1)

Like diffusers' ``from_pretrained``: ``aigc generate``, ``aigc serve``, metrics, the Python API and a
plugin that builds on another run (the audio plugin's vocoder) all load runs here, so there is one
place that verifies the model against the manifest, resolves the stored config and builds the
inference path. ``Pipeline`` is the config resolver it uses; ``Inference`` is what it hands out.
Writing a run is training's business (``Pipeline.fit`` through ``RunDir``), not this object's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .content import Content
from .inference import Inference
from .rundir import RunDir


class Run:
    """A trained run: its resolved config, its manifest, its verified generator and inference."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> "Run":
        """The run at ``path``; ``overrides`` (``key=value``) change the stored config in memory only.

        The model is loaded from ``model/`` after every file's sha256 is checked against the
        manifest; tensors only, never pickles. A missing or foreign folder is a one-line error."""
        from .pipeline import Pipeline

        return cls(Pipeline.from_run_dir(path, overrides, **kwargs))

    # -- what it is ----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.pipeline.run_dir

    @property
    def rundir(self) -> RunDir:
        return self.pipeline.rundir

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def modality(self) -> str:
        return self.pipeline.modality

    @property
    def generator_name(self) -> str:
        return self.pipeline.gen.name

    @property
    def config(self) -> dict:
        """The run's config (``config.yaml``, resolved, with the overrides it was loaded with)."""
        return dict(self.pipeline.raw)

    @property
    def manifest(self) -> dict:
        return self.pipeline.manifest()

    @property
    def fingerprint(self) -> str | None:
        """sha256 over the model's files, stamped on every item it makes."""
        return self.pipeline.fingerprint

    # -- what it does --------------------------------------------------------------------------
    @property
    def generator(self) -> Any:
        """The trained generator, a plain ``torch.nn.Module`` in eval mode."""
        return self.pipeline.generator

    @property
    def inference(self) -> Inference:
        """Defaults + request options + seed -> generate -> stamp -> post-process -> export."""
        return self.pipeline.inference

    def generate(self, n: int | None = None, seed: int | None = None, **options: Any) -> Content:
        return self.inference.generate(n, seed, **options)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, generator={self.generator_name!r}, modality={self.modality!r})"
