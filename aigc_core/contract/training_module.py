"""The Lightning side of a generator: the module that trains it, and the data it trains on.

A ``Generator`` is a plain ``torch.nn.Module`` that makes content; the ``GeneratorTraining``
subclass its class names (``Generator.training``) wraps it as ``self.generator`` and holds what
only training needs: losses, optimisers, training-only networks (a GAN's discriminator), the
Lightning hooks. Only ``aigc run`` (``training.fit``) and the contract kit import this module, so
generating from a finished run never loads Lightning.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from .components import DataSource, Generator


class GeneratorTraining(pl.LightningModule):
    """Trains ``generator``: Lightning organises the generator's networks, as its docs recommend.

    Subclasses implement ``configure_optimizers``, ``training_step`` and, if they like,
    ``validation_step``; they reach the networks through ``self.generator`` and may build
    training-only networks in ``__init__`` (after ``super().__init__(generator)``). The Lightning
    checkpoint holds this whole module (so a resume continues exactly); the run's ``model/`` holds
    only ``generator.artifact_state()``.
    """

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    @property
    def params(self) -> Any:
        return self.generator.params

    @property
    def info(self) -> dict:
        return self.generator.info

    @property
    def modality(self) -> str:
        return self.generator.modality

    def adopt_base(self, base: Any) -> None:
        """Before fitting from ``generator.base``: take what training needs from the base besides the
        generator's weights (a GAN's discriminator from the base run's checkpoint, say). ``base`` is
        the base ``aigc_core.Run``, or None for a checkpoint in the backend's own format. The
        generator already holds the base's weights (and the adapter, if any) when this is called."""

    def datamodule(self, source: DataSource) -> Any:
        """The data the Trainer sees; override to add model-specific preprocessing (tokenising, say)."""
        return source

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints written before the generator moved into ``self.generator`` name its tensors
        without the ``generator.`` prefix; they are renamed so an unfinished older run still resumes."""
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            return
        own = set(self.state_dict())
        renamed = {}
        for key, value in state.items():
            if key not in own and f"generator.{key}" in own:
                key = f"generator.{key}"
            renamed[key] = value
        checkpoint["state_dict"] = renamed


class SourceData(pl.LightningDataModule):
    """A ``DataSource`` (or anything with its loaders) shown to Lightning as a ``LightningDataModule``."""

    def __init__(self, source: Any):
        super().__init__()
        self.source = source

    def setup(self, stage: str | None = None) -> None:
        setup = getattr(self.source, "setup", None)
        if callable(setup):
            setup(stage)

    def train_dataloader(self):
        return self.source.train_dataloader()

    def val_dataloader(self):
        loader = getattr(self.source, "val_dataloader", None)
        return loader() if callable(loader) else []

    def test_dataloader(self):
        return self.source.test_dataloader()


def as_datamodule(data: Any) -> pl.LightningDataModule:
    """``data`` itself when it is a ``LightningDataModule``, else wrapped."""
    return data if isinstance(data, pl.LightningDataModule) else SourceData(data)


def training_module(generator: Generator) -> GeneratorTraining:
    """The LightningModule that trains ``generator``, built around it."""
    from .errors import PluginError

    cls = type(generator).training_class()
    if not (isinstance(cls, type) and issubclass(cls, GeneratorTraining)):
        raise PluginError(f"{type(generator).training}: is not a subclass of aigc_core.GeneratorTraining")
    return cls(generator)
