"""Image data sources: everything becomes float CHW in [0, 1] at ``image_size``, with labels."""

from __future__ import annotations

import gzip
import os
import struct
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from aigc_core.builtin.files import FileSelection, check_selection, select_files
from aigc_core.contract.components import DataParams, InMemorySource, LabelledTensors, split_indices
from aigc_core.contract.errors import DataError
from aigc_core.contract.params import Field
from aigc_core.contract.preflight import PathField
from aigc_core.contract.splits import require_training_items


class ImageTensorDataset(LabelledTensors):
    """Float images and integer labels held in memory."""

    @property
    def images(self) -> torch.Tensor:
        return self.data


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float NCHW batch to size x size with antialiasing, in chunks to bound memory."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images.contiguous()
    out = []
    for chunk in torch.split(images, 4096):
        mode = "bilinear" if size < chunk.shape[-1] else "bicubic"
        out.append(F.interpolate(chunk, size=(size, size), mode=mode, antialias=mode == "bilinear",
                                 align_corners=False).clamp_(0.0, 1.0))
    return torch.cat(out)


ImageSize = Annotated[int, Field(ge=4, le=1024, description="images are resized to image_size x image_size")]


class ImageParams(DataParams):
    image_size: ImageSize = 32


class ImageSource(InMemorySource):
    """Shared ground of the image sources: load once, resize, split deterministically."""

    modality = "image"
    Params = ImageParams
    dataset_class = ImageTensorDataset

    def load(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Float NCHW images in [0, 1], int64 labels, class names."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        require_training_items(self, {name: len(part) for name, part in self._splits.items()})

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return resize_images(images.float(), self.params.image_size)

    @property
    def info(self) -> dict:
        self.setup()
        first = self._splits["train"].images
        return {
            "modality": "image",
            "shape": list(first.shape[1:]),
            "num_classes": len(self.classes),
            "classes": list(self.classes),
            "sizes": {k: len(v) for k, v in self._splits.items()},
        }


class SklearnDigits(ImageSource):
    """Real handwriting that ships inside scikit-learn: the offline default for images."""

    def load(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.int64)
        return images, labels, [str(i) for i in range(10)]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageFolderParams(ImageParams, FileSelection):
    path: str = PathField(min_length=1, exists="dir", description="the folder of images; subfolders become classes")
    channels: Literal[1, 3] = Field(3, description="1 (grey) or 3 (RGB)")
    on_corrupt: Literal["skip", "fail"] = Field("skip", description="an unreadable file: skip it with a warning, or stop")


class ImageFolder(ImageSource):
    """PNG/JPEG files; images in subfolders take the subfolder's name as their class."""

    Params = ImageFolderParams

    @classmethod
    def check(cls, params: ImageFolderParams, context) -> None:
        check_selection([params.path], IMAGE_SUFFIXES, params, context.key)

    def load(self):
        from PIL import Image, UnidentifiedImageError

        root = Path(self.params.path).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: image folder does not exist (data.path)")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files = select_files(files, root, self.params)
        if not files:
            raise DataError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
        class_names = sorted({p.parent.relative_to(root).as_posix() for p in files if p.parent != root})
        if class_names and any(p.parent == root for p in files):
            class_names = ["."] + class_names
        index = {name: i for i, name in enumerate(class_names)}
        mode = "L" if self.params.channels == 1 else "RGB"
        size = self.params.image_size
        arrays, labels = [], []
        for path in files:
            try:
                with Image.open(path) as img:
                    img = img.convert(mode).resize((size, size), Image.Resampling.BICUBIC)
                    arr = np.asarray(img, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                if self.params.on_corrupt == "fail":
                    raise DataError(f"{path}: unreadable image ({exc}); set data.on_corrupt=skip to skip it") from None
                print(f"aigc: warning: skipping unreadable image {path}", file=sys.stderr)
                continue
            arrays.append(arr if arr.ndim == 3 else arr[:, :, None])
            rel = path.parent.relative_to(root).as_posix() if path.parent != root else "."
            labels.append(index.get(rel, 0))
        if not arrays:
            raise DataError(f"{root}: every image was unreadable")
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return images, torch.tensor(labels, dtype=torch.int64), class_names or ["all"]


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MNISTParams(ImageParams):
    root: Optional[str] = PathField(None, exists="none", description="default: $AIGC_MNIST_DIR, else $AIGC_DATA_DIR/mnist, else data/mnist")
    image_size: ImageSize = Field(28, description="MNIST's own size; dcgan needs 8/16/32/64")
    download: bool = Field(False, description="fetch with torchvision when absent (needs network and torchvision)")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as distributed (optionally gzipped), checked against its own header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
            if zero != 0 or dtype != 0x08:
                raise DataError(f"{path}: not an IDX file of unsigned bytes")
            shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except (OSError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from None
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(shape))} values)")
    return data.reshape(shape)


class MNIST(ImageSource):
    """MNIST from a local directory; its official test split is the ``test`` split here."""

    Params = MNISTParams

    @classmethod
    def check(cls, params: MNISTParams, context) -> None:
        """The four files must be there, unless they may be downloaded."""
        from aigc_core.contract.errors import ConfigError

        if params.download:
            return
        try:
            cls(params)._paths()
        except DataError as exc:
            raise ConfigError(f"{context.key}.root", str(exc)) from None

    @property
    def root(self) -> Path:
        if self.params.root:
            return Path(self.params.root).expanduser()
        if os.environ.get("AIGC_MNIST_DIR"):
            return Path(os.environ["AIGC_MNIST_DIR"])
        return Path(os.environ.get("AIGC_DATA_DIR", "data")) / "mnist"

    def _find(self, stem: str) -> Path | None:
        root = self.root
        for base in (root, root / "MNIST" / "raw"):
            for name in (stem + ".gz", stem):
                if (base / name).is_file():
                    return base / name
        return None

    def _paths(self) -> dict[str, tuple[Path, Path]]:
        root = self.root
        found = {k: (self._find(a), self._find(b)) for k, (a, b) in MNIST_FILES.items()}
        if all(a and b for a, b in found.values()):
            return found
        if self.params.download:
            return self._download(root)
        missing = [s for pair in MNIST_FILES.values() for s in pair if not self._find(s)]
        raise DataError(
            f"{root}: MNIST files not found ({', '.join(m + '[.gz]' for m in missing)}); "
            "set data.root (or AIGC_DATA_DIR) to the directory holding them, or data.download=true when online"
        )

    def _download(self, root: Path):
        if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("AIGC_OFFLINE") == "1":
            raise DataError(f"{root}: MNIST is not here and downloads are off (offline)")
        try:
            from torchvision.datasets import MNIST as TVMNIST
        except ImportError:
            raise DataError(f"{root}: MNIST is not here, and downloading it needs torchvision (pip install torchvision)") from None
        try:
            TVMNIST(str(root), train=True, download=True)
            TVMNIST(str(root), train=False, download=True)
        except Exception as exc:
            raise DataError(f"{root}: MNIST download failed ({type(exc).__name__}: {exc})") from None
        return {k: (self._find(a), self._find(b)) for k, (a, b) in MNIST_FILES.items()}

    def load(self):
        paths = self._paths()
        tr_x, tr_y = (read_idx(p) for p in paths["train"])
        te_x, te_y = (read_idx(p) for p in paths["test"])
        if len(tr_x) != len(tr_y) or len(te_x) != len(te_y):
            raise DataError(f"{self.root}: MNIST image and label counts differ")
        self._n_train = len(tr_y)
        images = torch.from_numpy(np.concatenate([tr_x, te_x])).unsqueeze(1).float() / 255.0
        labels = torch.from_numpy(np.concatenate([tr_y, te_y]).astype(np.int64))
        return images, labels, [str(i) for i in range(10)]

    def make_splits(self, images, labels):
        """MNIST's own test file is the test split; validation is held out of its train file."""
        from_test = self.kept >= self._n_train
        test_idx = torch.nonzero(from_test).flatten()
        pool = torch.nonzero(~from_test).flatten()
        if not len(test_idx) or not len(pool):
            return super().make_splits(images, labels)
        parts = split_indices(len(pool), self.params.val_fraction, 0.0, self.seed)
        parts["train"] = parts["train"] + parts.pop("test")
        out = {name: ImageTensorDataset(images[pool[idx]], labels[pool[idx]]) for name, idx in parts.items()}
        out["test"] = ImageTensorDataset(images[test_idx], labels[test_idx])
        return out
