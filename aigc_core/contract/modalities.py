"""Modalities: kinds of content, each a ``Modality`` object some plugin registers.

A modality is a name shared by the components that make, change and write one kind of content,
plus what the rest of aigc needs to handle that content without knowing it: what a valid item
is, how one item becomes the bytes of one file (the server's responses and the default exporter
use the same encoder), its file suffix and media type, how many items a training preview makes
and how it is written, how the web page shows an item, and sample data for the contract test
kit. The core names no modality: its ``image``, ``text`` and ``audio`` are registrations of the
built-in plugin (``aigc_core/builtin/modalities.py``), and everything else asks
:func:`get_modality` rather than testing a modality's name.

Registrations are process-wide and made once (plugins are loaded once); the built-in plugin's are
made on first use, so ``Content("image", ...)`` works before any plugin is loaded. The
``Modality`` class is imported only when something asks for it (``"module:Class"`` targets), so
discovery stays light.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class InvalidItem(Exception):
    """An item, raw item or data-source ``info`` breaks its modality's contract; the message is one
    line naming where (``generate() item 0.data has dtype float64, expected float32``). The
    contract test kit reports it as the failing check's reason."""


class Modality:
    """How aigc handles one kind of content. Subclass it, set what differs, register the class.

    Every hook of the core that depends on the kind of content is a method or attribute here; the
    defaults suit a modality whose items are downloaded as files and need no further checks.
    ``name`` and ``description`` are set from the registration.
    """

    name: str = ""
    description: str = ""
    #: Suffix of one item's file (server downloads, :class:`FileExporter`).
    suffix: str = ".bin"
    #: Media type of those bytes (HTTP ``Content-Type`` and the JSON's ``media_type``).
    media_type: str = "application/octet-stream"
    #: How many items a training preview makes (``train.sample_every_n_epochs``).
    preview_count: int = 4
    #: What the web page does with an item: ``render`` is ``image``, ``audio``, ``text`` or
    #: ``download``; other keys are for the page too (``note``: a line shown beside each item,
    #: ``spectrogram``: draw one under an audio player). Sent with the model's listing.
    display: Mapping[str, Any] = {"render": "download"}

    # -- bytes ---------------------------------------------------------------------------------
    def encode(self, item: Any, meta: Mapping[str, Any]) -> bytes:
        """One item as the bytes of one file, carrying ``meta`` (its provenance, JSON-able) where
        the format allows, so a downloaded file still says which run and seed made it."""
        raise NotImplementedError(f"modality {self.name!r} has no encoder: its Modality class "
                                  "must define encode(item, meta) -> bytes")

    def payload(self, item: Any, meta: Mapping[str, Any]) -> dict:
        """The item's data in the server's JSON: ``data_base64`` of :meth:`encode` by default."""
        return {"data_base64": base64.b64encode(self.encode(item, meta)).decode("ascii")}

    # -- training previews --------------------------------------------------------------------
    def write_preview(self, content: Any, directory: Path, stem: str, exporter: Any) -> None:
        """Write a training preview: by default through the run's exporter into ``directory/stem``."""
        exporter.export(content, Path(directory) / stem)

    # -- the contract (raise InvalidItem naming ``where``) -------------------------------------
    def check_item(self, item: Any, where: str, info: Mapping | None = None) -> None:
        """``item.data`` (an ``aigc_core.Item`` with a dict ``meta``) is valid for this modality;
        ``info`` is the data source's, when known (shapes, sample rates to match)."""

    def check_raw(self, raw: Any, where: str, info: Mapping) -> None:
        """One item a data source's split yields is valid (before any model touches it)."""

    def check_info(self, info: Mapping) -> None:
        """A data source's ``info`` says what this modality needs (a shape, a sample rate...)."""

    # -- sample data for the contract kit ----------------------------------------------------
    def sample_content(self, n: int, seed: int) -> Any:
        """A few valid items (``aigc_core.Content``) with some structure, for post-processor tests."""
        raise ValueError(f"modality {self.name!r} has no sample content: its Modality class "
                         "must define sample_content(n, seed) for the contract kit")

    def tiny_items(self, n: int, seed: int, info: Mapping) -> list:
        """``n`` raw items as a data source's split yields them, for ``testing.tiny_source``;
        ``info`` holds the keyword arguments given there (a shape, say)."""
        raise ValueError(f"modality {self.name!r} has no tiny data: its Modality class "
                         "must define tiny_items(n, seed, info) for the contract kit")

    def tiny_info(self, info: Mapping) -> dict:
        """What ``testing.tiny_source``'s ``info`` adds for this modality (from its keyword arguments)."""
        return {}


@dataclass
class ModalityInfo:
    """One registration: the name, what its items hold, the ``Modality`` target and its plugin."""

    name: str
    description: str = ""
    target: Any = None  # "module:Class", a Modality subclass or instance, or None (the base)
    plugin: str = ""
    _loaded: Modality | None = field(default=None, repr=False)

    def load(self) -> Modality:
        if self._loaded is None:
            target = self.target
            if isinstance(target, str):
                from ..plugins.registry import import_target

                try:
                    target = import_target(target)
                except Exception as exc:
                    from .errors import PluginError

                    raise PluginError(f"modality {self.name!r} of plugin {self.plugin!r} cannot be loaded "
                                      f"from {target!r}: {type(exc).__name__}: {exc}") from exc
            if target is None:
                target = Modality
            instance = target() if isinstance(target, type) else target
            if not isinstance(instance, Modality):
                from .errors import PluginError

                raise PluginError(f"modality {self.name!r} of plugin {self.plugin!r}: {self.target!r} "
                                  "is not an aigc_core.Modality")
            instance.name = self.name
            instance.description = self.description
            self._loaded = instance
        return self._loaded


_known: dict[str, ModalityInfo] = {}
_core_loaded = False


def _load_core() -> None:
    """The built-in plugin's modalities, registered through its own hook on first use."""
    global _core_loaded
    if _core_loaded:
        return
    _core_loaded = True
    from .. import builtin
    from ..plugins import BUILTIN_NAME

    def register(name: str, target: Any = None, description: str = "") -> None:
        add_modality(name, description, target, plugin=BUILTIN_NAME)

    builtin.aigc_register_modalities(register=register)


def known_modalities() -> tuple[str, ...]:
    """Every modality known in this process: the core's first, then those plugins added."""
    _load_core()
    return tuple(_known)


def get_modality(name: str) -> Modality:
    """The registered ``Modality`` of ``name``; a ValueError names the known ones."""
    _load_core()
    info = _known.get(name)
    if info is None:
        raise ValueError(f"unknown modality {name!r}; expected one of {tuple(_known)}")
    return info.load()


def add_modality(name: str, description: str = "", target: Any = None, plugin: str = "") -> None:
    """Make ``name`` a modality (what the hook's ``register`` does); a ValueError says why not.

    Registering the same name again with the same description and target changes nothing (the
    built-in plugin's are registered on first use and again when plugins are loaded).
    """
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"modality name {name!r}: expected lowercase letters, digits and dashes, starting with a letter")
    if not (target is None or isinstance(target, str) or isinstance(target, Modality)
            or (isinstance(target, type) and issubclass(target, Modality))):
        raise ValueError(f"modality {name!r}: target {target!r} is not an aigc_core.Modality "
                         "(give the class, an instance or a 'module:Class' string)")
    old = _known.get(name)
    if old is not None:
        if old.description != (description or old.description) or (target is not None and target != old.target):
            raise ValueError(f"modality {name!r} is already registered")
        return
    _known[name] = ModalityInfo(name, description, target, plugin)
