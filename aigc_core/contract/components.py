"""The bases of data sources and generators: plain torch, no Lightning.

Imported only when a pipeline builds a component, never at discovery: it pulls in torch. Lightning
is the training stack only (``aigc_core.contract.training_module``): a finished run loads and generates with
these classes alone, so ``aigc generate`` and ``aigc serve`` never pay Lightning's import.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Sequence

import importlib

import torch
from torch.utils.data import DataLoader, Dataset

from .preflight import Checked
from .params import Field, NoParams, Params
from .content import Content
from .errors import CheckpointError


#: A held-out share; a subclass that changes the default keeps the bounds by keeping the type.
HeldOut = Annotated[float, Field(ge=0, lt=0.5)]


class DataParams(Params):
    """Parameters every data source shares; a source's own ``Params`` subclasses this."""

    batch_size: int = Field(64, ge=1, description="items per training batch")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    val_fraction: HeldOut = Field(0.1, description="share held out for validation (deterministic for a seed)")
    test_fraction: HeldOut = Field(0.1, description="share held out for testing and metrics")
    limit: int | None = Field(None, ge=1, description="keep at most this many items (fast tests, quick looks)")


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int):
    """Deterministic train/val/test index split: the same seed gives the same split."""
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=g).tolist()
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    return {
        "val": sorted(order[:n_val]),
        "test": sorted(order[n_val:n_val + n_test]),
        "train": sorted(order[n_val + n_test:]),
    }


class DataSource(Checked):
    """Raw content of one modality, split into train/val/test; knows nothing of models.

    It has the loaders of a ``LightningDataModule`` without being one: training wraps it
    (``training_module.as_datamodule``), and a generator that reads data at generation time
    (``reads_data``) gets it without importing Lightning.

    Subclasses set ``modality`` and ``Params`` and implement ``setup`` (read the data) and
    ``split(name)`` (a Dataset). Item formats per modality: image ``(float CHW in [0, 1], label)``,
    text ``str``, audio ``(float waveform of shape (samples,), label)``. ``info`` describes the
    data to generators (``shape``, ``num_classes``, ``classes``, ``sample_rate``...).
    """

    modality: ClassVar[str] = ""
    Params: ClassVar[type] = DataParams
    component_name: ClassVar[str] = ""

    def __init__(self, params: Any = None, seed: int = 0):
        self.params = params if params is not None else self.Params()
        self.seed = int(seed)

    def setup(self, stage: str | None = None) -> None:
        """Read the data (once; later calls return at once)."""

    @property
    def info(self) -> dict:
        raise NotImplementedError

    def split(self, name: str) -> Dataset:
        raise NotImplementedError

    #: The splits whose content ``fingerprint`` covers.
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def fingerprint(self) -> str:
        """sha256 of the data as read (every split's items, in order), computed once.

        What a cache of things learnt from the data (the metrics' scoring classifiers) is keyed
        on: two configs that read the same files through differently spelled paths, or through
        an environment variable, share the entry, and changed files never hit a stale one.
        """
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            self.setup()
            digest = hashlib.sha256()
            for name in self.SPLITS:
                dataset = self.split(name)
                digest.update(f"{name}:{len(dataset)};".encode())
                self._digest_split(digest, dataset)
            cached = self._fingerprint = digest.hexdigest()
        return cached

    def _digest_split(self, digest: Any, dataset: Any) -> None:
        for index in range(len(dataset)):
            _digest(digest, dataset[index])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.split(name),
            batch_size=self.params.batch_size,
            shuffle=shuffle,
            generator=g if shuffle else None,
            num_workers=self.params.num_workers,
            persistent_workers=self.params.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class LabelledTensors(Dataset):
    """Items and integer labels held in memory as two tensors; ``(item, label)`` per index."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor):
        self.data = data
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.data[index], self.labels[index]


class InMemorySource(DataSource):
    """A data source whose whole data set fits in memory as one tensor with labels.

    Subclasses implement ``load() -> (tensor, labels, class names)`` and may override ``prepare``
    (resize, cut to length...) and ``make_splits``; this class reads once, keeps an evenly spaced
    subset for ``limit`` (files sorted by name are often sorted by class, so the first N would
    hold one class), and splits deterministically.
    """

    dataset_class: ClassVar[type] = LabelledTensors

    def __init__(self, params: Any = None, seed: int = 0):
        super().__init__(params, seed)
        self._splits: dict[str, LabelledTensors] | None = None
        self.classes: list[str] = []

    def load(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        raise NotImplementedError

    def prepare(self, data: torch.Tensor) -> torch.Tensor:
        return data

    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        data, labels, self.classes = self.load()
        limit = getattr(self.params, "limit", None)
        #: positions of the kept items in what ``load`` returned (all of them without a limit)
        self.kept = torch.arange(len(labels))
        if limit is not None and limit < len(labels):
            self.kept = torch.linspace(0, len(labels) - 1, limit).round().long().unique()
            data, labels = data[self.kept], labels[self.kept]
        self._splits = self.make_splits(self.prepare(data), labels)

    def make_splits(self, data: torch.Tensor, labels: torch.Tensor) -> dict[str, LabelledTensors]:
        parts = split_indices(len(labels), self.params.val_fraction, self.params.test_fraction, self.seed)
        return {name: self.dataset_class(data[idx], labels[idx]) for name, idx in parts.items()}

    def split(self, name: str) -> LabelledTensors:
        self.setup()
        return self._splits[name]

    def _digest_split(self, digest: Any, dataset: Any) -> None:
        if isinstance(dataset, LabelledTensors):  # the whole split in two reads, not item by item
            _digest(digest, (dataset.data, dataset.labels))
            digest.update(json.dumps([str(c) for c in self.classes]).encode())
        else:
            super()._digest_split(digest, dataset)


class Generator(Checked, torch.nn.Module):
    """A model that makes new content: the networks sampling needs, and ``generate``.

    A plain ``torch.nn.Module``, so a finished run loads and generates without the training stack.
    What only training needs (losses, optimisers, a GAN's discriminator) lives in the
    LightningModule named by ``training``, which wraps this module (``aigc_core.GeneratorTraining``),
    the layout Lightning recommends and nanoGPT's ``model.py`` follows.

    Subclasses set ``modality``, ``Params`` (architecture), ``GenerateOptions`` (options of
    ``generate``: their fields and defaults are declared there and nowhere else), ``training`` and
    implement ``__init__(params, info)`` and ``generate(n, seed, options)``. The
    default artifact is ``model.safetensors`` + ``model.json``; override
    ``save_artifact``/``load_artifact`` for another layout (the text plugin writes the Hugging Face
    layout).
    """

    modality: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    GenerateOptions: ClassVar[type] = NoParams
    component_name: ClassVar[str] = ""
    #: ``"package.module:Class"``: the ``GeneratorTraining`` subclass that trains this generator.
    #: A string, so loading a finished run never imports it (nor Lightning); a class also works,
    #: for a generator defined where Lightning is loaded anyway (a test, a notebook).
    training: ClassVar[str | type] = ""

    # -- what this generator can do: declared, so callers never probe its signature ---------------
    #: ``stream(seed, options) -> Iterator[str]`` yields pieces of text as they are made
    #: (``aigc generate --stream``, the server's ``/stream`` endpoint).
    streams: ClassVar[bool] = False
    #: ``generate(n, seed, options, start=K)`` makes samples ``K .. K+n-1`` of the seed's sequence,
    #: the same bytes as one big call (``aigc generate --devices``, sharded).
    shards: ClassVar[bool] = False
    #: ``generate`` receives ``data_source=`` (a callable returning the set-up data source), for
    #: generators that work from held-out data (reconstructions, vocoding real spectrograms).
    reads_data: ClassVar[bool] = False
    #: Layers a LoRA adapter corrects by default (``generator.adapter``; ``targets:`` overrides):
    #: module names or name endings, as peft matches them. Empty: the user must name them. Read
    #: from the instance, so one that knows its size (layers per resolution) may name more.
    adapter_targets: ClassVar[tuple[str, ...]] = ()
    #: Small layers an adapter trains whole and saves with itself by default (``generator.adapter.whole``):
    #: per-channel gains and shifts, or a layer into a few channels, where a low-rank correction
    #: would cost as much as the layer. Empty: LoRA layers only.
    adapter_whole: ClassVar[tuple[str, ...]] = ()
    #: The classes a ``label`` option may name, ``0 .. num_classes - 1`` (0: the model takes no
    #: label); an instance sets it from its data and parameters. ``Inference`` checks the label
    #: against it before ``generate`` runs, with ``classes`` (their names) for a label option typed
    #: as text, which then names a class or gives its index.
    num_classes: int = 0
    classes: Sequence[str] = ()

    def __init__(self, params: Any, info: dict):
        super().__init__()
        self.params = params
        self.info = dict(info)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, params: Any, source: DataSource, workdir: Path) -> "Generator":
        """Make an untrained generator for this data. ``workdir`` may hold fitted preprocessing."""
        return cls(params, source.info)

    @classmethod
    def training_class(cls) -> type:
        """The LightningModule class that trains this generator (imports it, and Lightning)."""
        from .errors import PluginError

        target = cls.training
        if isinstance(target, type):
            return target
        if not isinstance(target, str) or ":" not in target:
            raise PluginError(
                f"generator {cls.component_name or cls.__name__!r} names no training module: set its class "
                "attribute training = 'package.module:Class' to a subclass of aigc_core.GeneratorTraining "
                "(plugin API 3; docs/writing-plugins.md)"
            )
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"generator {cls.component_name or cls.__name__!r}: cannot import its training "
                              f"module {target!r} ({exc})") from None

    # -- a base in the backend's own format (``generator.base`` that is not an aigc run) ---------
    @classmethod
    def load_base(cls, base: str, params: Any, info: dict | None) -> "Generator":
        """A generator from a pretrained checkpoint in this backend's native format (a diffusers or
        transformers folder, or a hub id); ``info`` describes the data (None when loading a finished
        personalised run: the checkpoint says). Never runs code from the folder; offline, a hub id
        fails at once. The default: this backend reads aigc runs only."""
        from .errors import ConfigError

        raise ConfigError("generator.base", f"{base}: not an aigc run directory, and generator "
                                            f"{cls.component_name or cls.__name__!r} reads no other format")

    @classmethod
    def base_record(cls, base: str) -> dict:
        """What a personalised run's manifest records about a native base: its id and, where it can
        be known, the sha256 of its weights or the revision, which loading checks again."""
        return {"id": base}

    # -- where the weights are ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the first parameter or buffer lives (the CPU for a module without tensors)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    # -- generation -----------------------------------------------------------------------
    def generate(self, n: int, seed: int, options: Any) -> Content:  # pragma: no cover
        """``n`` items; same seed, same items. ``options`` is this class's ``GenerateOptions``, validated
        and merged with the run's defaults, its ``label`` (if any) already checked and a class index.
        Called only through ``aigc_core.Inference`` (or ``aigc_core.testing.generate`` for a bare
        model), which holds the network in eval mode without autograd and restores its mode after:
        ``generate`` does none of that itself. Steps may report ``aigc_core.report_progress(done,
        total)`` and check ``aigc_core.check_cancelled()``; ``start=``/``data_source=`` come only as
        declared above."""
        raise NotImplementedError

    # -- artifacts ------------------------------------------------------------------------
    def artifact_state(self) -> dict[str, torch.Tensor]:
        """Tensors needed for generation (the EMA copy, not the discriminator, say)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}

    def save_artifact(self, directory: Path) -> list[Path]:
        """Write what ``load_artifact`` needs into ``directory`` (which is fresh and private)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / "model.safetensors"
        save_file(self.artifact_state(), str(weights))
        meta = directory / "model.json"
        meta.write_text(json.dumps({"info": jsonable(self.info)}, indent=2))
        return [weights, meta]

    @classmethod
    def load_artifact(cls, directory: Path, params: Any, info: dict | None = None) -> "Generator":
        """Rebuild from ``save_artifact``'s files; loads tensors only, never pickles."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        weights = directory / "model.safetensors"
        meta = directory / "model.json"
        if not weights.is_file() or not meta.is_file():
            raise CheckpointError(f"{directory}: no model.safetensors/model.json here")
        try:
            saved_info = json.loads(meta.read_text())["info"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{meta}: unreadable model metadata ({exc})") from None
        model = cls(params, info or saved_info)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{weights}: corrupt or truncated checkpoint ({exc})") from None
        model.load_artifact_state(state)
        model.eval()
        return model

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit {type(self).__name__}: {first}") from None


def _digest(digest: Any, value: Any) -> None:
    """Feed ``value`` (tensors, arrays, text, numbers, tuples of them) into ``digest``, unambiguously."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()
    if isinstance(value, np.ndarray):
        digest.update(f"a{value.dtype.str}{value.shape};".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list)):
        digest.update(f"l{len(value)};".encode())
        for item in value:
            _digest(digest, item)
    elif isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"s{len(data)};".encode())
        digest.update(data)
    else:
        digest.update(f"v{value!r};".encode())


def jsonable(value: Any) -> Any:
    if isinstance(value, Params):
        return value.model_dump()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
