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

from ..contract.content import Content
from ..generation.inference import Inference
from ..store.rundir import RunDir


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

    def training_state(self) -> dict | None:
        """The tensors of the run's last training checkpoint (``checkpoints/last.ckpt``: the training
        module's whole state, a GAN's discriminator included), verified against the manifest and
        loaded tensors-only; None when the run kept no checkpoint. What ``GeneratorTraining.adopt_base``
        reads to continue from a base run."""
        from ..store.rundir import CHECKPOINT_FILE

        path = self.rundir.checkpoint_dir / CHECKPOINT_FILE
        if not path.is_file():
            return None
        from ..store.checkpoints import load_checkpoint_file

        self.rundir.verify_checkpoint(path)
        return load_checkpoint_file(path)["state_dict"]

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

    # -- personalised runs ---------------------------------------------------------------------
    @property
    def is_personalised(self) -> bool:
        """True for a run whose ``model/`` is an adapter on a base (``generator.adapter``)."""
        return bool(self.manifest.get("adapter"))

    def export_merged(self, out: str | Path) -> Path:
        """A standalone run at ``out``: this run's adapter folded into its base's weights, a plain
        ``model/`` and a config without ``generator.base`` (every generator parameter written out), so
        it loads, serves and becomes a base itself without the original base. ``out`` must be new or
        empty: nothing a user keeps there is overwritten."""
        from ..generation.adapters import merge
        from ..contract.errors import UsageError
        from .pipeline import config_yaml
        from ..store.rundir import EMPTY, NEW

        if not self.is_personalised:
            raise UsageError(f"{self.path}: not a personalised run (its model/ is already standalone)")
        target = RunDir(out)
        state = target.refuse_unless_writable()
        if state not in (NEW, EMPTY):
            raise UsageError(f"{target.path}: already a run; merge into a new or empty directory")
        pipe = self.pipeline
        generator = merge(pipe.generator)
        pipe._generator, pipe._inference = None, None  # the merged module is no longer this run's model
        config = dict(pipe.written)
        config["generator"] = {"name": pipe.gen.name, **pipe.gen.params.model_dump()}
        config["output"] = {**dict(config.get("output") or {}), "dir": str(Path(out))}
        manifest = self.manifest
        target.create(config_yaml(config), {"name": pipe.name, "config_dir": str(pipe.config_dir)})
        try:
            target.save_model(generator.save_artifact)
            target.update_manifest({"name": pipe.name, "seed": pipe.seed, "modality": pipe.modality,
                                    "generator": pipe.gen.name, "versions": manifest.get("versions", {}),
                                    "config_dir": str(pipe.config_dir),
                                    "merged_from": {"run": str(self.path.absolute()), "base": manifest.get("base"),
                                                    "adapter": manifest.get("adapter"),
                                                    "fingerprint": self.fingerprint}})
        except BaseException:
            target.discard_new(created=state == NEW)
            raise
        return target.path

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, generator={self.generator_name!r}, modality={self.modality!r})"
