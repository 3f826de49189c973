"""Text data sources: documents as ``str``, split into train/val/test deterministically.

Two ways to split, because two kinds of corpus exist:

* ``contiguous`` (default) joins the documents in order and cuts the character stream: the first
  part trains, the next validates, the last tests. One long file (tiny Shakespeare) needs this;
  it is also the split nanoGPT uses (first 90% train, last 10% validation), so figures compare.
* ``shuffle`` assigns whole documents to splits with the run's seed (many short documents).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from torch.utils.data import Dataset

from aigc_core.builtin.files import FileSelection, check_selection, select_files
from aigc_core.contract.components import DataParams, DataSource, HeldOut, split_indices
from aigc_core.contract.errors import DataError
from aigc_core.contract.params import Field, ParamError, model_validator
from aigc_core.contract.preflight import PathField
from aigc_core.contract.splits import require_training_items

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")


class TextDataset(Dataset):
    """A split's documents; ``text`` joins them for models that read one stream."""

    def __init__(self, docs: list[str]):
        self.docs = docs

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, index: int) -> str:
        return self.docs[index]

    @property
    def chars(self) -> int:
        return sum(len(d) for d in self.docs)

    @property
    def text(self) -> str:
        return "\n".join(self.docs)


class TextParams(DataParams):
    test_fraction: HeldOut = Field(0.0, description="share held out for testing and metrics")
    split_mode: Literal["contiguous", "shuffle"] = Field("contiguous", description="contiguous: cut the joined text in order; shuffle: split whole documents by seed")
    max_chars: Optional[int] = Field(None, ge=1, description="cut the corpus to this many characters (fast tests)")


class TextSource(DataSource):
    """Shared ground: read documents once, cut to limits, split."""

    modality = "text"
    Params = TextParams

    def __init__(self, params=None, seed: int = 0):
        super().__init__(params, seed)
        self._splits: dict[str, TextDataset] | None = None

    def documents(self) -> list[str]:
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if self._splits is not None:
            return
        docs = [d for d in self.documents() if d]
        if self.params.limit is not None:
            docs = docs[: self.params.limit]
        if self.params.max_chars is not None:
            docs = _cut(docs, self.params.max_chars)
        if not docs:
            raise DataError(f"{self.describe()}: no text to train on")
        splits = self.make_splits(docs)
        require_training_items(self, {name: len(part) for name, part in splits.items()})
        self._splits = splits

    def make_splits(self, docs: list[str]) -> dict[str, TextDataset]:
        p = self.params
        if p.split_mode == "shuffle":
            parts = split_indices(len(docs), p.val_fraction, p.test_fraction, self.seed)
            return {k: TextDataset([docs[i] for i in idx]) for k, idx in parts.items()}
        total = sum(len(d) for d in docs)
        n_train = int(total * (1.0 - p.val_fraction - p.test_fraction))
        n_test = int(total * p.test_fraction)  # rounding leftovers go to validation, never to an unused test split
        bounds = {"train": (0, n_train), "val": (n_train, total - n_test), "test": (total - n_test, total)}
        return {k: TextDataset(_slice(docs, lo, hi)) for k, (lo, hi) in bounds.items()}

    def split(self, name: str) -> TextDataset:
        self.setup()
        return self._splits[name]

    def describe(self) -> str:
        return self.component_name or type(self).__name__

    @property
    def info(self) -> dict:
        self.setup()
        return {
            "modality": "text",
            "documents": {k: len(v) for k, v in self._splits.items()},
            "chars": {k: v.chars for k, v in self._splits.items()},
        }


def _cut(docs: list[str], max_chars: int) -> list[str]:
    out, left = [], max_chars
    for d in docs:
        if left <= 0:
            break
        out.append(d[:left])
        left -= len(out[-1])
    return out


def _slice(docs: list[str], lo: int, hi: int) -> list[str]:
    """Characters [lo, hi) of the documents' concatenation, keeping document boundaries."""
    out, pos = [], 0
    for d in docs:
        a, b = max(lo, pos), min(hi, pos + len(d))
        if a < b:
            out.append(d[a - pos:b - pos])
        pos += len(d)
    return out


class TextFilesParams(TextParams, FileSelection):
    path: str = PathField("", description="a .txt file, a folder of them, or a .jsonl file (~ and $VARS expanded)")
    paths: list[str] = PathField([], description="several files or folders, read in order")
    field: Optional[str] = Field(None, description="JSONL files: the field holding the text")
    encoding: str = Field("utf-8", description="text encoding of the files")

    @model_validator(mode="after")
    def _some_path(self) -> "TextFilesParams":
        if not self.path and not self.paths:
            raise ParamError("path", "missing required value (a .txt file, a folder of them, or a .jsonl file)")
        return self


class TextFiles(TextSource):
    """.txt files (one document each), folders of them (sorted by name), or JSONL with a field."""

    Params = TextFilesParams

    @classmethod
    def check(cls, params: TextFilesParams, context) -> None:
        folders = ([params.path] if params.path else []) + list(params.paths)
        check_selection(folders, (*TEXT_SUFFIXES, ".jsonl"), params, context.key)

    def describe(self) -> str:
        return self.params.path or ", ".join(self.params.paths)

    def files(self) -> list[Path]:
        names = ([self.params.path] if self.params.path else []) + list(self.params.paths)
        out: list[Path] = []
        for name in names:
            p = Path(name).expanduser()
            if p.is_dir():
                found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in (*TEXT_SUFFIXES, ".jsonl"))
                found = select_files(found, p, self.params)
                if not found:
                    raise DataError(f"{p}: no text files here ({', '.join(TEXT_SUFFIXES)} or .jsonl)")
                out += found
            elif p.is_file():
                out.append(p)
            else:
                raise DataError(f"{p}: no such file or directory")
        return out

    def documents(self) -> list[str]:
        docs: list[str] = []
        for path in self.files():
            if path.suffix.lower() == ".jsonl":
                docs += self.read_jsonl(path)
            else:
                docs.append(self.read_text(path))
        return docs

    def read_text(self, path: Path) -> str:
        raw = path.read_bytes()
        if not raw.strip():
            raise DataError(f"{path}: empty text file")
        if b"\x00" in raw[:65536]:
            raise DataError(f"{path}: binary file (NUL bytes), not text")
        try:
            return raw.decode(self.params.encoding)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not {self.params.encoding} text (bad byte at offset {exc.start}); "
                            "set data.encoding if it is another encoding") from None
        except LookupError:
            raise DataError(f"data.encoding: unknown encoding {self.params.encoding!r}") from None

    def read_jsonl(self, path: Path) -> list[str]:
        key = self.params.field
        if not key:
            raise DataError(f"{path}: a JSONL file needs data.field, the name of the field holding the text")
        docs = []
        text = self.read_text(path)
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or key not in record:
                raise DataError(f"{path}:{number}: no field {key!r} on this line")
            value = record[key]
            if not isinstance(value, str):
                raise DataError(f"{path}:{number}: field {key!r} is {type(value).__name__}, not text")
            docs.append(value)
        if not docs:
            raise DataError(f"{path}: no records")
        return docs


class PythonDocs(TextSource):
    """CPython's own documentation topics: real English that every Python ships, so offline works."""

    def describe(self) -> str:
        return "python-docs"

    def documents(self) -> list[str]:
        try:
            from pydoc_data.topics import topics
        except ImportError:  # pragma: no cover - stripped-down Pythons
            raise DataError("python-docs: this Python has no pydoc_data.topics") from None
        return [topics[k].strip() for k in sorted(topics)]
