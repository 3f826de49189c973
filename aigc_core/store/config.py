"""Pipeline configuration: one OmegaConf YAML file plus ``key=value`` overrides, and the core's
own sections (``train``, ``generate``, ``output``); components' parameters are ``aigc_core.contract.params``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Sequence

from pydantic import AfterValidator, BeforeValidator

from ..contract.errors import ConfigError, UsageError, did_you_mean, first_line
from ..contract.params import Field, ParamError, Params, build_params, model_validator
from ..contract.seeding import MAX_SEED

__all__ = ["GenerateSection", "OutputConfig", "TrainConfig", "build_params", "load_config", "top_level_check"]

#: Items one ``aigc run`` or unsharded ``aigc generate`` holds in memory at once.
MAX_NUM_SAMPLES = 100_000
#: Lightning's precision names (``lightning_fabric``'s ``_PRECISION_INPUT``), checked without importing it.
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16")


def _device_ids(value: Any) -> Any:  # before pydantic, which would take True or "2" for a count
    ids = value if isinstance(value, list) else [value]
    whole = bool(ids) and all(type(d) is int for d in ids)
    if value != "auto" and not (whole and (min(ids) >= 0 if isinstance(value, list) else value >= 1 or value == -1)):
        raise ValueError(f"expected 'auto', a count >= 1 (-1: all) or a non-empty list of ids >= 0, got {value!r}")
    return value


def _fraction_or_count(value: float | None) -> float | None:
    if value is not None and value > 1 and not value.is_integer():
        raise ValueError(f"expected a fraction in [0, 1] or a whole count of batches, got {value}")
    return value


Devices = Annotated[Literal["auto"] | int | list[int], BeforeValidator(_device_ids)]
Batches = Annotated[float | None, Field(ge=0), AfterValidator(_fraction_or_count)]


class TrainConfig(Params):
    """Passed to Lightning's Trainer (``accelerator``, ``devices``, ``strategy``... as Lightning names them)."""

    max_epochs: int = Field(10, description="passes over the training split")
    max_steps: int = Field(-1, ge=-1, description="stop after this many optimiser steps (-1: no limit)")
    max_time: str | dict[str, float] | None = Field(None, description=(
        "stop after this much training time: 'DD:HH:MM:SS' or a mapping such as {hours: 1, minutes: 30} "
        "(Lightning's max_time); a resumed run gets what is left"))
    max_minutes: float | None = Field(None, gt=0, description="the same budget in minutes (instead of max_time)")
    accelerator: str = Field("auto", description="cpu, gpu, mps or auto (Lightning's names)")
    devices: Devices = Field("auto", description="auto, a count (-1: all), or a list of device ids")
    strategy: str = Field("auto", description="auto, ddp, ddp_spawn, fsdp... (Lightning's names)")
    num_nodes: int = Field(1, ge=1, description="machines in a multi-node run (see docs/distributed.md)")
    precision: Literal[PRECISIONS] = Field("32-true", description="32-true, bf16-mixed (GPUs), 16-mixed...")
    gradient_clip_val: float | None = Field(None, ge=0, description="clip gradient norm (automatic optimisation only)")
    accumulate_grad_batches: int = Field(1, ge=1, description="batches per optimiser step")
    log_every_n_steps: int = Field(10, ge=1, description="how often losses reach the CSV/TensorBoard logs")
    limit_train_batches: Batches = Field(None, description="a fraction (<= 1.0) or a count of batches per epoch")
    limit_val_batches: Batches = Field(None, description="the same for validation; 0 turns validation off")
    check_val_every_n_epoch: int = Field(1, ge=1, description="validate every n epochs")
    checkpoint_every_n_epochs: int = Field(
        0, ge=0, description="write checkpoints/last.ckpt at the end of every n-th epoch (0: off)")
    checkpoint_every_n_steps: int = Field(0, ge=0, description="and every n optimiser steps, mid-epoch included (0: off)")
    checkpoint_every_minutes: float = Field(
        5.0, ge=0, description="and after this much training time since the last one (0: off)")
    checkpoint_keep: int = Field(
        1, ge=1, description="checkpoints kept: 1 keeps only last.ckpt, n also keeps the n-1 before it")
    sample_every_n_epochs: int = Field(5, ge=0, description="write a preview to samples/ every n epochs (0: never)")
    deterministic: bool = Field(False, description="ask torch for deterministic kernels (slower)")
    progress_bar: bool = Field(True, description=(
        "show Lightning's bar on a terminal (aigc's progress lines stay; --quiet hides both)"))

    @model_validator(mode="after")
    def _some_training(self) -> "TrainConfig":
        if self.max_time is not None and self.max_minutes is not None:
            raise ParamError("max_minutes", "set either max_time or max_minutes, not both")
        if self.max_time is not None:
            _duration_s(self.max_time)
        if self.max_epochs < 1 and self.max_steps < 1 and self.time_budget_s() is None:
            raise ParamError("max_epochs", "must be at least 1 (or set max_steps, max_time or max_minutes)")
        return self

    def time_budget_s(self) -> float | None:
        """The training time budget in seconds (``max_time`` or ``max_minutes``), None without one."""
        if self.max_minutes is not None:
            return float(self.max_minutes) * 60.0
        return None if self.max_time is None else _duration_s(self.max_time)


#: What a ``max_time`` mapping may hold: ``datetime.timedelta``'s keywords, as Lightning takes them.
DURATION_KEYS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")


def _duration_s(value: str | Mapping) -> float:
    """Seconds of a Lightning ``max_time``: ``DD:HH:MM:SS`` or a mapping of timedelta keywords."""
    import re
    from datetime import timedelta

    if isinstance(value, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", value.strip())
        if not match:
            raise ParamError("max_time", f"expected 'DD:HH:MM:SS' (e.g. '00:01:30:00') or a mapping such as "
                                         f"{{hours: 1, minutes: 30}}, got {value!r}")
        days, hours, minutes, seconds = map(int, match.groups())
        total = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    else:
        for key, amount in value.items():
            if key not in DURATION_KEYS:
                raise ParamError(f"max_time.{key}", f"unknown unit{did_you_mean(key, DURATION_KEYS)} "
                                                    f"(units: {', '.join(DURATION_KEYS)})")
            if amount < 0:
                raise ParamError(f"max_time.{key}", f"must be 0 or more, got {amount}")
        total = timedelta(**value).total_seconds()
    if total <= 0:
        raise ParamError("max_time", "must be a positive duration")
    return total


class GenerateSection(Params):
    """How many samples ``aigc run`` makes, with which seed; the generator's options sit beside these."""

    num_samples: int = Field(16, ge=0, le=MAX_NUM_SAMPLES, description=(
        "items generated at the end of `aigc run` (for more, use `aigc generate --shard-size`)"))
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="generation seed (default: the top-level seed)")
    batch_size: int = Field(64, ge=1, description="items generated per forward pass")


class OutputConfig(Params):
    """Where the run directory is and which exporter writes the generated content."""

    dir: str = Field("runs/${name}", description="the run directory")
    exporter: str | None = Field(None, description="exporter name (default: the one named after the modality)")


TOP_LEVEL = ("name", "seed", "data", "generator", "train", "generate", "postprocess", "metrics", "output")


# --------------------------------------------------------------------------------------------
# Loading


def load_config(source: str | Path | Mapping, overrides: Sequence[str] = ()) -> tuple[dict, dict]:
    """The resolved config, and the same with secrets kept as written (for config.yaml and manifest.json).

    Overrides are merged before anything is resolved, so ``name=${generator.name}-x`` may refer to
    other keys. A value that came from ``${oc.env:...}`` is a secret as far as aigc knows: the
    second mapping keeps its unresolved expression instead of the value.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(source, Mapping):
        where, problem, load = "config", "invalid config", lambda: OmegaConf.create(dict(source))
    else:
        path = Path(source)
        where, problem, load = str(path), f"{path}: not valid YAML", lambda: OmegaConf.load(path)
        if path.is_dir():
            raise UsageError(f"{path}: is a directory; expected a pipeline YAML file")
        if not path.is_file():
            raise UsageError(f"{path}: no such config file")
    try:
        cfg = load()
    except Exception as exc:  # yaml.YAMLError and OmegaConf errors alike
        raise ConfigError("", f"{problem}: {first_line(exc)}") from None
    if not OmegaConf.is_dict(cfg):
        raise ConfigError("", f"{where}: the top level must be a mapping of keys")
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"override {item!r}: expected key=value")
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]), resolve=False)["v"]
            OmegaConf.update(cfg, key, parsed, merge=True, force_add=True)
        except Exception as exc:  # OmegaConf, the YAML parser of the value, type errors alike
            raise ConfigError(key, f"bad override: {first_line(exc)}") from None
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
        unresolved = OmegaConf.to_container(cfg, resolve=False)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        unset = re.search(r"Environment variable '([^']+)' not found", str(exc))
        if unset:
            name = unset.group(1)
            raise ConfigError(str(key), f"environment variable {name} is not set (${{oc.env:{name}}} in {where}); "
                                        f"set it, or give a default: ${{oc.env:{name},DEFAULT}}") from None
        raise ConfigError(str(key), f"cannot resolve ({where}): {first_line(exc)}") from None
    except RecursionError:
        raise ConfigError("", f"cannot resolve ({where}): interpolations refer to each other in a loop") from None
    return data, redact_secrets(unresolved, data)


def redact_secrets(unresolved: Any, resolved: Any) -> Any:
    """``resolved``, with each interpolated value that holds an ``${oc.env:...}`` value kept unresolved."""
    secrets: set[str] = set()

    def walk(u: Any, r: Any, leaf: Callable[[Any, Any], Any]) -> Any:
        if isinstance(u, dict) and isinstance(r, dict):
            return {k: walk(u.get(k), v, leaf) for k, v in r.items()}
        if isinstance(u, list) and isinstance(r, list) and len(u) == len(r):
            return [walk(a, b, leaf) for a, b in zip(u, r)]
        return leaf(u, r)

    def find(u: Any, r: Any) -> None:
        if isinstance(u, str) and "oc.env" in u and r is not None and str(r):
            secrets.add(str(r))

    def keep(u: Any, r: Any) -> Any:
        return u if isinstance(u, str) and "${" in u and r is not None and any(s in str(r) for s in secrets) else r

    walk(unresolved, resolved, find)
    return walk(unresolved, resolved, keep) if secrets else resolved


def top_level_check(data: Mapping) -> None:
    for key in data:
        if key not in TOP_LEVEL:
            hint = did_you_mean(key, TOP_LEVEL)
            raise ConfigError(str(key), f"unknown top-level key{hint} (valid keys: {', '.join(TOP_LEVEL)})")
    if "name" not in data:
        raise ConfigError("name", "missing required value")
    name = data["name"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError("name", f"expected a plain run name without '/', got {name!r}")
    for key in ("data", "generator"):
        if not isinstance(data.get(key), Mapping):
            raise ConfigError(key, "missing required section" if key not in data else "expected a mapping")
