"""``generator.base``: start from a trained model instead of from nothing.

A handful of a creator's examples cannot train a model, but they can adapt one. The base is either
a finished aigc run (its verified weights, and its generator parameters, which the new run inherits
unless the config overrides them) or a checkpoint in the backend's own format (a diffusers or
transformers folder, or a hub id), which the generator class loads itself (``Generator.load_base``).

This module resolves what ``base`` names and what a run records about it. A personalised run is
honest about what it stands on: its manifest names the base and the sha256 of the base's model, and
loading it on any other base is refused (``check_base``). Loading goes through ``Run.load``, so a
base run is verified against its own manifest like any other run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..contract.errors import AigcError, ConfigError, first_line
from ..store.rundir import MANIFEST_FILE, RunDir

KEY = "generator.base"
#: The keys of the generator section that the core reads; a generator's own ``Params`` never see them.
CORE_KEYS = ("name", "base", "adapter")
#: What the data must agree on with a base (the rest of a data source's ``info`` is free to differ).
MATCHING_INFO = ("shape", "num_classes", "sample_rate")


@dataclass(frozen=True)
class BaseRef:
    """What ``generator.base`` names: a folder on disk (an aigc run, or a native checkpoint) or a hub id."""

    written: str
    path: Path | None

    @property
    def is_run(self) -> bool:
        return self.path is not None and (self.path / MANIFEST_FILE).is_file()

    @property
    def target(self) -> str:
        """What a backend's ``load_base`` receives: the folder's absolute path, or the hub id."""
        return str(self.path) if self.path is not None else self.written

    def __str__(self) -> str:
        return self.target


def resolve(value: Any, config_dir: Path, from_cwd: bool = False) -> BaseRef:
    """``generator.base`` resolved: a relative path means the config file's folder (the working
    directory when typed on the command line); something that exists is a folder, anything else
    that looks like a path is an error, the rest is a hub id for the backend to load."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(KEY, f"expected a run directory, a model folder or a hub id, got {value!r}")
    value = value.strip()
    expanded = os.path.expanduser(os.path.expandvars(value))
    candidate = Path(expanded) if os.path.isabs(expanded) else (Path.cwd() if from_cwd else config_dir) / expanded
    if candidate.exists():
        if not candidate.is_dir():
            raise ConfigError(KEY, f"{candidate}: not a folder (a base is a run directory or a model folder)")
        return BaseRef(value, candidate.resolve())
    if expanded.startswith((".", "/", "~")) or "$" in value or os.sep + os.sep in expanded or value.count("/") > 1:
        raise ConfigError(KEY, f"{candidate}: no such run directory or model folder")
    return BaseRef(value, None)


def base_pipeline(ref: BaseRef, generator_name: str, registry: Any) -> Any:
    """The base run's pipeline (its config resolved, nothing loaded), after checking it can be a base."""
    from .pipeline import Pipeline

    rundir = RunDir(ref.path)
    try:
        pipe = Pipeline.for_run_dir(ref.path, registry=registry)
    except AigcError as exc:
        raise ConfigError(KEY, f"{ref.path}: cannot be read as a base ({first_line(exc)})") from None
    if pipe.gen.name != generator_name:
        raise ConfigError(KEY, f"{ref.path} is a {pipe.gen.name!r} run, but generator.name is {generator_name!r}; "
                               "a base must be of the same backend")
    manifest = rundir.manifest()
    if manifest.get("adapter"):
        raise ConfigError(KEY, f"{ref.path} is itself an adapter on another base; merge it into a standalone run "
                               f"first (aigc export --merge {ref.path} OUT) and use that")
    if not rundir.model_dir.is_dir() or not manifest.get("checkpoint"):
        raise ConfigError(KEY, f"{ref.path}: an unfinished run (no model/ yet); finish it first (aigc run on its config)")
    return pipe


def inherited(base_params: Any, section: Mapping) -> dict:
    """The base's generator parameters, with the keys this config sets taking their place."""
    values = base_params.model_dump() if hasattr(base_params, "model_dump") else dict(base_params)
    values.update({k: v for k, v in section.items() if k not in CORE_KEYS})
    return values


def check_info(base_info: Mapping, data_info: Mapping, data_name: str) -> None:
    """Refuse data the base cannot make: another image size, other classes, another sample rate."""
    for key in MATCHING_INFO:
        ours, theirs = base_info.get(key), data_info.get(key)
        if ours is None or theirs is None:
            continue
        if _plain(ours) != _plain(theirs):
            raise ConfigError(KEY, f"the base was trained on data with {key} {_plain(ours)}, but data "
                                   f"({data_name}) gives {_plain(theirs)}; choose data of the base's {key}")


def run_record(ref: BaseRef, pipe: Any, fingerprint: str | None) -> dict:
    return {"kind": "run", "path": str(ref.path), "name": pipe.name, "generator": pipe.gen.name,
            "fingerprint": fingerprint}


def check_base(recorded: Mapping, actual: Mapping, run_dir: Path) -> None:
    """Refuse to put an adapter on a base other than the one it was trained on."""
    for key in ("fingerprint", "sha256", "revision"):
        want, have = recorded.get(key), actual.get(key)
        if want and have and want != have:
            where = actual.get("path") or actual.get("id") or "the base"
            raise ConfigError(KEY, f"{where} has {key} {str(have)[:16]}..., but the adapter in {run_dir} was "
                                   f"trained on a base with {str(want)[:16]}...; give it the base it was made for "
                                   "(its manifest's 'base')")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
