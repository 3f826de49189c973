"""How many items a split holds against how many a stage needs: one line naming the data key.

Few-shot data (ten drawings, a dozen clips, three pages) meets fractions made for thousands of
items: 10% of ten is one image, too few for a Fréchet distance, and fractions that add up on a
tiny set can leave training nothing. Without a check these fail deep inside numpy or a
DataLoader, after training, with a traceback; here they fail as the key a user changes.

``require_items`` is what a stage calls with the split it reads; ``Metric.needs`` declares a
metric's minimums so they can be checked as soon as the data is read (``check_needs``), before
anything trains or is written.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError

SPLITS = ("train", "val", "test")


def split_key(split: str) -> str:
    """The config key that sizes ``split``: its fraction, or the data section for training."""
    return f"data.{split}_fraction" if split in ("val", "test") else "data"


def _sizes(source: Any) -> dict[str, int]:
    return {name: len(source.split(name)) for name in SPLITS}


def require_items(source: Any, split: str, minimum: int, who: str) -> Any:
    """``source.split(split)``, refused with a ``ConfigError`` when it holds fewer than ``minimum`` items.

    The message says what the fraction gives on this data set, so the user sees whether to raise
    it, add data or leave ``who`` out.
    """
    dataset = source.split(split)
    have = len(dataset)
    if have >= minimum:
        return dataset
    total = sum(_sizes(source).values())
    fraction = getattr(getattr(source, "params", None), f"{split}_fraction", None)
    given = f"{fraction:g} of {total} items gives {have}" if fraction is not None else f"it holds {have} of {total}"
    items = "item" if minimum == 1 else "items"
    raise ConfigError(split_key(split), f"{who} needs at least {minimum} {items} in the {split} split; {given} "
                      f"(raise {split_key(split)}, add data, or leave {who} out)")


def check_needs(source: Any, needs: Mapping[str, Mapping[str, int]]) -> None:
    """Every ``{who: {split: minimum}}`` against ``source``'s splits; the first short one raises."""
    for who, minimums in needs.items():
        for split, minimum in minimums.items():
            require_items(source, split, minimum, who)


def require_training_items(source: Any, sizes: Mapping[str, int], minimum: int = 1) -> None:
    """A training split the held-out fractions emptied: blame the fraction that took the most."""
    if sizes.get("train", 0) >= minimum:
        return
    params = getattr(source, "params", None)
    total = sum(sizes.values())
    taken = {s: sizes.get(s, 0) for s in ("val", "test")}
    split = max(taken, key=lambda s: taken[s])
    fractions = ", ".join(f"{split_key(s)}={getattr(params, f'{s}_fraction', 0):g} takes {taken[s]}" for s in taken)
    raise ConfigError(split_key(split), f"the training split is empty: {total} items, {fractions}; "
                      "lower the fractions or add data")
