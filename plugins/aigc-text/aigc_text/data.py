"""Token blocks: what the Trainer sees of a text source once the generator has tokenised it.

Documents are encoded, joined by the end-of-text token, and cut into windows of ``context + 1``
tokens that overlap by one, so every token but the first is predicted exactly once per epoch.

Plain torch: the metrics score held-out text with the same windows, without Lightning. Training
hands ``TokenDataModule`` to the Trainer through ``aigc_core.contract.training_module.as_datamodule``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from aigc_core import ConfigError


def encode_stream(tokenizer, docs: Sequence[str]) -> torch.Tensor:
    eos = tokenizer.eos_token_id
    out: list[int] = []
    for i, enc in enumerate(tokenizer(list(docs), add_special_tokens=False)["input_ids"]):
        if i:
            out.append(eos)
        out.extend(enc)
    return torch.tensor(out, dtype=torch.long)


class TokenBlocks(Dataset):
    def __init__(self, tokens: torch.Tensor, context: int):
        self.tokens = tokens
        self.context = context
        self.count = max(0, (len(tokens) - 1) // context)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        start = index * self.context
        return self.tokens[start:start + self.context + 1]


class TokenDataModule:
    """The loaders of a ``LightningDataModule`` (``setup``, ``train_dataloader``, ``val_dataloader``)
    over a text source tokenised once."""

    def __init__(self, source, tokenizer, context: int, seed: int):
        self.source = source
        self.tokenizer = tokenizer
        self.context = context
        self.seed = seed
        self.blocks: dict[str, TokenBlocks] = {}

    def setup(self, stage=None) -> None:
        if self.blocks:
            return
        for name in ("train", "val"):
            docs = list(self.source.split(name))
            self.blocks[name] = TokenBlocks(encode_stream(self.tokenizer, docs) if docs else torch.zeros(0, dtype=torch.long),
                                            self.context)
        if not len(self.blocks["train"]):
            name = getattr(self.source, "describe", lambda: type(self.source).__name__)()
            # a usage error (exit 2): few-shot text a user can add to, not a broken file
            raise ConfigError("data", f"{name}: the training split is shorter than one context "
                              f"of {self.context} tokens; give more text or a smaller generator.context")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        p = self.source.params
        return DataLoader(self.blocks[name], batch_size=p.batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
                          num_workers=p.num_workers, persistent_workers=p.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False) if len(self.blocks.get("val", ())) else []
