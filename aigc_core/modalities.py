"""The modalities content can have: the core's three, and any a plugin registers.

A modality is a name shared by the components that make, change and write one kind of content
(``Item.data`` of one form). The core's modalities are always known, so ``Content`` works before
any plugin is loaded; a plugin adds one through the ``aigc_register_modalities`` hook, and it is
known from then on in the process (plugins are loaded once).
"""

from __future__ import annotations

import re

#: The core's modalities and what ``Item.data`` holds for each.
BUILTIN = {
    "image": "numpy.float32 array, CHW, values in [0, 1]",
    "text": "str",
    "audio": "numpy.float32 array, 1-D mono waveform in [-1, 1], with meta['sample_rate']",
}
NAME = re.compile(r"^[a-z][a-z0-9-]*$")

_known: dict[str, str] = dict(BUILTIN)


def known_modalities() -> tuple[str, ...]:
    """Every modality known in this process: the core's first, then those plugins added."""
    return tuple(_known)


def describe_modality(name: str) -> str:
    return _known.get(name, "")


def add_modality(name: str, description: str = "") -> None:
    """Make ``name`` a modality (what the hook's ``register`` does); a ValueError says why not."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"modality name {name!r}: expected lowercase letters, digits and dashes, starting with a letter")
    if name in _known and _known[name] != (description or _known[name]):
        raise ValueError(f"modality {name!r} is already registered")
    _known.setdefault(name, description)
