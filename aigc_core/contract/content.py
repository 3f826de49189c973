"""Content: the one value that travels from generator to post-processors, exporters and server.

Items hold plain Python/numpy data, never tensors, so everything downstream of ``generate``
(post-processors, exporters, the HTTP server) works without importing torch.

What ``Item.data`` holds is the modality's to say (``aigc_core.contract.modalities``; the core's image,
text and audio are described in ``aigc_core/builtin/modalities.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .modalities import known_modalities

#: The core's modalities (the built-in plugin's); plugins may add more (``aigc_core.known_modalities()`` lists all).
MODALITIES = known_modalities()


@dataclass
class Item:
    data: Any
    meta: dict = field(default_factory=dict)


@dataclass
class Content:
    """A batch of generated items of one modality, plus those that quality gates dropped."""

    modality: str
    items: list[Item] = field(default_factory=list)
    dropped: list[Item] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.modality not in known_modalities():
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {known_modalities()}")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def replace(self, items: Iterable[Item], dropped: Iterable[Item] = ()) -> "Content":
        """A new Content with other items; earlier drops are kept so no reason is lost."""
        return Content(self.modality, list(items), list(self.dropped) + list(dropped))

    def drop(self, item: Item, by: str, reason: str) -> Item:
        """Mark an item as dropped by a quality gate, recording who and why."""
        item = Item(item.data, dict(item.meta))
        item.meta["dropped"] = {"by": by, "reason": reason}
        return item

    def copy(self) -> "Content":
        return copy.deepcopy(self)

    @classmethod
    def from_data(cls, modality: str, data: Iterable[Any], **common_meta: Any) -> "Content":
        return cls(modality, [Item(d, dict(common_meta)) for d in data])
