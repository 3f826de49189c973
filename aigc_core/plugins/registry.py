"""What the plugins registered: components by kind and name, and the plugins themselves.

Targets stay ``"module:attr"`` strings until a pipeline asks for the class, so listing plugins
imports none of their code beyond the hook module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..contract.modalities import add_modality, known_modalities
from ..contract.errors import ConfigError, PluginError, did_you_mean
from ..plugin_api import FROM_V1, dataclass_params

KINDS = ("data_source", "generator", "postprocessor", "metric", "exporter")
#: Stable identifiers of the kinds in machine-readable output (``aigc plugins list --json``).
KIND_IDS = {
    "data_source": "data-source",
    "generator": "generator",
    "postprocessor": "post-processor",
    "metric": "metric",
    "exporter": "exporter",
}
#: The kinds in prose (messages).
KIND_LABELS = {
    "data_source": "data source",
    "generator": "generator",
    "postprocessor": "post-processor",
    "metric": "metric",
    "exporter": "exporter",
}


def import_target(target: str) -> Any:
    """The object a ``"package.module:attr"`` registration target names (``attr`` may be dotted)."""
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class ComponentInfo:
    kind: str
    name: str
    target: Any  # "module:attr" or the class itself
    modalities: tuple[str, ...]
    plugin: str
    description: str = ""

    @property
    def modality(self) -> str:
        return ",".join(self.modalities)

    def load(self) -> type:
        """Import and return the component class, naming the plugin if that fails."""
        target = self.target
        if isinstance(target, str):
            try:
                target = import_target(target)
            except Exception as exc:  # any import-time failure of plugin code
                raise PluginError(
                    f"{KIND_LABELS[self.kind]} {self.name!r} of plugin {self.plugin!r} "
                    f"cannot be loaded from {target!r}: {type(exc).__name__}: {exc}"
                ) from exc
        stale = dataclass_params(target)
        if stale:
            raise PluginError(f"{KIND_LABELS[self.kind]} {self.name!r} of plugin {self.plugin!r} declares "
                              f"{stale} as a dataclass (plugin API 1); to update it: {FROM_V1}")
        target.component_name = self.name
        return target

    def as_dict(self) -> dict:
        return {
            "kind": KIND_IDS[self.kind],
            "name": self.name,
            "modality": self.modality,
            "description": self.description,
        }


@dataclass
class PluginInfo:
    name: str
    version: str
    distribution: str
    builtin: bool = False
    components: list[ComponentInfo] = field(default_factory=list)
    #: Modalities this plugin added (``aigc_register_modalities``).
    modalities: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "components": [c.as_dict() for c in self.components],
        }


class Registry:
    def __init__(self) -> None:
        self._components: dict[str, dict[str, list[ComponentInfo]]] = {k: {} for k in KINDS}
        self._conflict_mods: dict[tuple[str, str], set[str]] = {}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.problems: list[str] = []

    def register_function(self, kind: str, plugin: PluginInfo):
        """The ``register`` callable a hook implementation receives."""

        def register(name: str, target: Any, modality: str | Sequence[str] = (), description: str = ""):
            modalities = (modality,) if isinstance(modality, str) else tuple(modality)
            bad = [m for m in modalities if m not in known_modalities()]
            if not modalities or bad:
                raise PluginError(
                    f"plugin {plugin.name!r} registered {KIND_LABELS[kind]} {name!r} with modality "
                    f"{modality!r}; expected one or more of {', '.join(known_modalities())} "
                    "(a plugin adds a modality with the aigc_register_modalities hook)"
                )
            info = ComponentInfo(kind, name, target, modalities, plugin.name, description)
            self._add(info)
            plugin.components.append(info)

        return register

    def modality_register_function(self, plugin: PluginInfo):
        """The ``register`` callable an ``aigc_register_modalities`` implementation receives."""

        def register(name: str, target: Any = None, description: str = ""):
            try:
                add_modality(name, description, target, plugin=plugin.name)
            except ValueError as exc:
                raise PluginError(f"plugin {plugin.name!r}: {exc}") from None
            if name not in plugin.modalities:
                plugin.modalities.append(name)

        return register

    def _add(self, info: ComponentInfo) -> None:
        """One name may serve several modalities (``denoise`` for images and for audio), but
        two components may not claim one name for the same modality: then neither gets it."""
        key = (info.kind, info.name)
        mods = set(info.modalities)
        claimants = self._conflicts.get(key)
        if claimants and mods & self._conflict_mods[key]:
            claimants.append(info.plugin)
            self._report(info.kind, info.name, claimants)
            return
        entries = self._components[info.kind].setdefault(info.name, [])
        for other in list(entries):
            overlap = mods & set(other.modalities)
            if overlap:
                entries.remove(other)
                self._conflicts[key] = [other.plugin, info.plugin]
                self._conflict_mods[key] = overlap
                self._report(info.kind, info.name, self._conflicts[key])
                return
        entries.append(info)

    def _report(self, kind: str, name: str, claimants: list[str]) -> None:
        self.problems.append(
            f"{KIND_LABELS[kind]} name {name!r} is claimed by plugins "
            + " and ".join(repr(p) for p in claimants)
            + "; uninstall one of them to use it"
        )

    def all_components(self) -> list[ComponentInfo]:
        return [c for kind in KINDS for c in self.components(kind)]

    def names(self, kind: str) -> list[str]:
        return sorted(n for n, entries in self._components[kind].items() if entries)

    def components(self, kind: str) -> list[ComponentInfo]:
        return [c for n in self.names(kind) for c in self._components[kind][n]]

    def get(self, kind: str, name: Any, key: str, modality: str | None = None) -> ComponentInfo:
        """The component ``name`` of ``kind`` (for ``modality`` when several share the name);
        ``key`` is the config key that named it, for errors."""
        label = KIND_LABELS[kind]
        if not isinstance(name, str) or not name:
            raise ConfigError(key, f"expected the name of a {label}, got {name!r}")
        entries = self._components[kind].get(name) or []
        conflict = self._conflicts.get((kind, name))
        if conflict and not entries:
            raise ConfigError(
                key, f"{label} {name!r} is claimed by plugins " + " and ".join(map(repr, conflict))
            )
        if not entries:
            known = self.names(kind)
            hint = did_you_mean(name, known)
            listing = ", ".join(known) if known else "none installed"
            raise ConfigError(key, f"unknown {label} {name!r}{hint} (known: {listing})")
        if modality is None:
            return entries[0]
        for info in entries:
            if modality in info.modalities:
                return info
        if conflict:
            raise ConfigError(
                key, f"{label} {name!r} is claimed by plugins " + " and ".join(map(repr, conflict))
            )
        accepted = ", ".join(sorted({m for e in entries for m in e.modalities}))
        raise ConfigError(key, f"{label} {name!r} accepts {accepted}, not {modality}")
