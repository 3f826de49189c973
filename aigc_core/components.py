"""Lightning bases for data sources and generators.

Imported only when a pipeline builds a component, never at discovery: it pulls in torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from .base import NoParams
from .content import Content
from .errors import CheckpointError


@dataclass
class DataParams:
    """Parameters every data source shares; a source's own ``Params`` subclasses this."""

    batch_size: int = 64  # items per training batch
    num_workers: int = 0  # DataLoader worker processes
    val_fraction: float = 0.1  # share held out for validation (deterministic for a seed)
    test_fraction: float = 0.1  # share held out for testing and metrics
    limit: int | None = None  # keep at most this many items (fast tests, quick looks)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if self.num_workers < 0:
            raise ValueError("num_workers: must be 0 or more")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, key) < 0.5:
                raise ValueError(f"{key}: must be in [0, 0.5)")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit: must be at least 1")


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


class DataSource(pl.LightningDataModule):
    """Raw content of one modality, split into train/val/test; knows nothing of models.

    Subclasses set ``modality`` and ``Params`` and implement ``setup`` (read the data) and
    ``split(name)`` (a Dataset). Item formats per modality: image ``(float CHW in [0, 1], label)``,
    text ``str``, audio ``(float waveform of shape (samples,), label)``. ``info`` describes the
    data to generators (``shape``, ``num_classes``, ``classes``, ``sample_rate``...).
    """

    modality: ClassVar[str] = ""
    Params: ClassVar[type] = DataParams
    component_name: ClassVar[str] = ""

    def __init__(self, params: Any = None, seed: int = 0):
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.seed = int(seed)

    @property
    def info(self) -> dict:
        raise NotImplementedError

    def split(self, name: str) -> Dataset:
        raise NotImplementedError

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


class Generator(pl.LightningModule):
    """A model that learns from a data source and makes new content.

    Subclasses set ``modality``, ``Params`` (architecture), ``GenerateOptions`` (options of
    ``generate``) and implement ``__init__(params, info)``, the Lightning training hooks and
    ``generate``. The default artifact is ``model.safetensors`` + ``model.json``; override
    ``save_artifact``/``load_artifact`` for another layout (the text plugin writes the Hugging Face
    layout).
    """

    modality: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    GenerateOptions: ClassVar[type] = NoParams
    component_name: ClassVar[str] = ""

    # -- what this generator can do: declared, so callers never probe its signature ---------------
    #: ``stream(seed=..., **options) -> Iterator[str]`` yields pieces of text as they are made
    #: (``aigc generate --stream``, the server's ``/stream`` endpoint).
    streams: ClassVar[bool] = False
    #: ``generate(n, seed=..., start=K)`` makes samples ``K .. K+n-1`` of the seed's sequence, the
    #: same bytes as one big call (``aigc generate --devices``, sharded).
    shards: ClassVar[bool] = False
    #: ``generate`` receives ``data_source=`` (a callable returning the set-up data source), for
    #: generators that work from held-out data (reconstructions, vocoding real spectrograms).
    reads_data: ClassVar[bool] = False

    def __init__(self, params: Any, info: dict):
        super().__init__()
        self.params = params
        self.info = dict(info)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, params: Any, source: DataSource, workdir: Path) -> "Generator":
        """Make an untrained generator for this data. ``workdir`` may hold fitted preprocessing."""
        return cls(params, source.info)

    def datamodule(self, source: DataSource) -> pl.LightningDataModule:
        """The data the Trainer sees; override to add model-specific preprocessing."""
        return source

    # -- generation -----------------------------------------------------------------------
    def generate(self, n: int, seed: int = 0, **options: Any) -> Content:  # pragma: no cover
        """``n`` items; same seed, same items. Steps may report ``aigc_core.report_progress(done, total)``
        and check ``aigc_core.check_cancelled()``; ``start=``/``data_source=`` come only as declared above."""
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
        meta.write_text(json.dumps({"info": _jsonable(self.info)}, indent=2))
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


def _jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
