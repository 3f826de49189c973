"""Pipeline configuration: one OmegaConf YAML file plus ``key=value`` overrides.

Each component declares its parameters as a dataclass; ``build_params`` turns the user's
mapping into an instance, and every error names the full key path (``generator.latent_dim``)
and, for a typo, the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .errors import ConfigError, UsageError
from .seeding import MAX_SEED

#: Items one ``aigc run`` or unsharded ``aigc generate`` holds in memory at once.
MAX_NUM_SAMPLES = 100_000
#: Lightning's precision names (``lightning_fabric``'s ``_PRECISION_INPUT``), checked without importing it.
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16")


@dataclass
class TrainConfig:
    """Passed to Lightning's Trainer (``accelerator``, ``devices``, ``strategy``... as Lightning names them)."""

    max_epochs: int = 10  # passes over the training split
    max_steps: int = -1  # stop after this many optimiser steps (-1: no limit)
    accelerator: str = "auto"  # cpu, gpu, mps or auto (Lightning's names)
    devices: Any = "auto"  # auto, a count, or a list of device ids
    strategy: str = "auto"  # auto, ddp, ddp_spawn, fsdp... (Lightning's names)
    num_nodes: int = 1  # machines in a multi-node run (see docs/distributed.md)
    precision: str = "32-true"  # 32-true, bf16-mixed (GPUs), 16-mixed...
    gradient_clip_val: Optional[float] = None  # clip gradient norm (automatic optimisation only)
    accumulate_grad_batches: int = 1  # batches per optimiser step
    log_every_n_steps: int = 10  # how often losses reach the CSV/TensorBoard logs
    limit_train_batches: Optional[float] = None  # a fraction (<= 1.0) or a count of batches per epoch
    limit_val_batches: Optional[float] = None  # the same for validation; 0 turns validation off
    check_val_every_n_epoch: int = 1  # validate every n epochs
    checkpoint_every_n_epochs: int = 0  # write checkpoints/last.ckpt at the end of every n-th epoch (0: off)
    checkpoint_every_n_steps: int = 0  # and every n optimiser steps, mid-epoch included (0: off)
    checkpoint_every_minutes: float = 5.0  # and after this much training time since the last one (0: off)
    checkpoint_keep: int = 1  # checkpoints kept: 1 keeps only last.ckpt, n also keeps the n-1 before it
    sample_every_n_epochs: int = 5  # write a preview to samples/ every n epochs (0: never)
    deterministic: bool = False  # ask torch for deterministic kernels (slower)
    progress_bar: bool = True  # show Lightning's progress bar

    def validate(self) -> None:
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ValueError("max_epochs: must be at least 1 (or set max_steps)")
        if self.num_nodes < 1:
            raise ValueError("num_nodes: must be at least 1")
        if self.accumulate_grad_batches < 1:
            raise ValueError("accumulate_grad_batches: must be at least 1")
        if self.sample_every_n_epochs < 0:
            raise ValueError("sample_every_n_epochs: must be 0 (off) or more")
        for key in ("checkpoint_every_n_epochs", "checkpoint_every_n_steps", "checkpoint_every_minutes"):
            if not getattr(self, key) >= 0:  # NaN too
                raise ValueError(f"{key}: must be 0 (off) or more")
        if self.checkpoint_keep < 1:
            raise ValueError("checkpoint_keep: must be at least 1")
        devices = self.devices
        if isinstance(devices, bool) or not (devices == "auto" or isinstance(devices, (int, list))):
            raise ValueError(f"devices: expected 'auto', a count or a list of ids, got {devices!r}")
        if isinstance(devices, int) and not (devices >= 1 or devices == -1):
            raise ValueError(f"devices: must be at least 1 (or -1 for all), got {devices}")
        if isinstance(devices, list) and (not devices or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)):
            raise ValueError(f"devices: a list of ids must be non-empty and hold integers >= 0, got {devices!r}")
        if self.precision not in PRECISIONS:
            close = difflib.get_close_matches(self.precision, PRECISIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}{hint}")
        if self.max_steps < -1:
            raise ValueError("max_steps: must be -1 (no limit) or more")
        if self.check_val_every_n_epoch < 1:
            raise ValueError("check_val_every_n_epoch: must be at least 1")
        if self.log_every_n_steps < 1:
            raise ValueError("log_every_n_steps: must be at least 1")
        if self.gradient_clip_val is not None and not (math.isfinite(self.gradient_clip_val)
                                                       and self.gradient_clip_val >= 0):
            raise ValueError(f"gradient_clip_val: must be a finite number >= 0, got {self.gradient_clip_val}")
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, key)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0 or (value > 1 and not float(value).is_integer()):
                raise ValueError(f"{key}: expected a fraction in [0, 1] or a whole count of batches, got {value}")


@dataclass
class GenerateSection:
    """How many samples ``aigc run`` makes, with which seed; the generator's options sit beside these."""

    num_samples: int = 16  # items generated at the end of `aigc run`
    seed: Optional[int] = None  # generation seed (default: the top-level seed)
    batch_size: int = 64  # items generated per forward pass

    def validate(self) -> None:
        if not 0 <= self.num_samples <= MAX_NUM_SAMPLES:
            raise ValueError(f"num_samples: must be in [0, {MAX_NUM_SAMPLES}] (for more, use 'aigc generate "
                             f"--shard-size'), got {self.num_samples}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be in [0, {MAX_SEED}], got {self.seed}")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1")


@dataclass
class OutputConfig:
    dir: str = "runs/${name}"  # the run directory
    exporter: Optional[str] = None  # exporter name (default: the one named after the modality)


TOP_LEVEL = ("name", "seed", "data", "generator", "train", "generate", "postprocess", "metrics", "output")


# --------------------------------------------------------------------------------------------
# Loading


def load_raw(source: str | Path | Mapping, overrides: Sequence[str] = ()) -> dict:
    """Read YAML (or take a mapping), apply dotlist overrides, resolve interpolations."""
    return load_config(source, overrides)[0]


def load_config(source: str | Path | Mapping, overrides: Sequence[str] = ()) -> tuple[dict, dict]:
    """The resolved config, and the same with secrets kept as written (for config.yaml and manifest.json).

    Overrides are merged before anything is resolved, so ``name=${generator.name}-x`` may refer to
    other keys. A value that came from ``${oc.env:...}`` is a secret as far as aigc knows: the
    second mapping keeps its unresolved expression instead of the value.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(source, Mapping):
        where = "config"
        try:
            cfg = OmegaConf.create(dict(source))
        except OmegaConfBaseException as exc:
            raise ConfigError("", f"invalid config: {_first_line(exc)}") from None
    else:
        path = Path(source)
        where = str(path)
        if path.is_dir():
            raise UsageError(f"{path}: is a directory; expected a pipeline YAML file")
        if not path.is_file():
            raise UsageError(f"{path}: no such config file")
        try:
            cfg = OmegaConf.load(path)
        except Exception as exc:  # yaml.YAMLError and OmegaConf errors alike
            raise ConfigError("", f"{path}: not valid YAML: {_first_line(exc)}") from None
        if not isinstance(cfg, Mapping) and not OmegaConf.is_dict(cfg):
            raise ConfigError("", f"{path}: the top level must be a mapping of keys")
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"override {item!r}: expected key=value")
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]), resolve=False)["v"]
            OmegaConf.update(cfg, key, parsed, merge=True, force_add=True)
        except Exception as exc:  # OmegaConf, the YAML parser of the value, type errors alike
            raise ConfigError(key, f"bad override: {_first_line(exc)}") from None
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
        unresolved = OmegaConf.to_container(cfg, resolve=False)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ConfigError(str(key), f"cannot resolve ({where}): {_first_line(exc)}") from None
    except RecursionError:
        raise ConfigError("", f"cannot resolve ({where}): interpolations refer to each other in a loop") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{where}: the top level must be a mapping of keys")
    return data, redact_secrets(unresolved, data)


def redact_secrets(unresolved: Any, resolved: Any) -> Any:
    """``resolved``, with each interpolated value that holds an ``${oc.env:...}`` value kept unresolved."""
    secrets: set[str] = set()

    def collect(u: Any, r: Any) -> None:
        if isinstance(u, dict) and isinstance(r, dict):
            for k in u:
                collect(u[k], r.get(k))
        elif isinstance(u, list) and isinstance(r, list):
            for a, b in zip(u, r):
                collect(a, b)
        elif isinstance(u, str) and "oc.env" in u and r is not None and str(r):
            secrets.add(str(r))

    def rewrite(u: Any, r: Any) -> Any:
        if isinstance(u, dict) and isinstance(r, dict):
            return {k: rewrite(u.get(k), v) for k, v in r.items()}
        if isinstance(u, list) and isinstance(r, list) and len(u) == len(r):
            return [rewrite(a, b) for a, b in zip(u, r)]
        if isinstance(u, str) and "${" in u and r is not None and any(s in str(r) for s in secrets):
            return u
        return r

    collect(unresolved, resolved)
    return rewrite(unresolved, resolved) if secrets else resolved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Validation of one parameter dataclass


#: ``Optional[int]`` and ``int | None`` are both unions; annotations may use either spelling.
_UNIONS = (typing.Union, types.UnionType)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (list, Sequence):
        return "list"
    if origin is dict:
        return "mapping"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only where it is lossless."""
    if tp is Any or tp is typing.Any:
        return value
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(key, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}{hint}")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return build_params(tp, value, key)
    if value is None:
        raise ConfigError(key, f"expected {_type_name(tp)}, got null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(key, f"expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")


def param_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def build_params(cls: type, values: Mapping | None, prefix: str, ignore: Sequence[str] = ()) -> Any:
    """An instance of dataclass ``cls`` from ``values``; errors carry ``prefix.key``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(prefix, f"expected a mapping of parameters, got {values!r}")
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(prefix, f"{cls!r} does not declare its parameters as a dataclass")
    fields = param_fields(cls)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in ignore:
            continue
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(fields) if fields else "none"
            raise ConfigError(full, f"unknown key{hint} (valid keys: {valid})")
        kwargs[key] = _coerce(hints.get(key, Any), value, full)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}.{name}" if prefix else name, "missing required value")
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            message = str(exc)
            sub, sep, rest = message.partition(": ")
            if sep and sub.replace("_", "").replace(".", "").isalnum() and " " not in sub:
                raise ConfigError(f"{prefix}.{sub}" if prefix else sub, rest) from None
            raise ConfigError(prefix, message) from None
    return instance


def params_to_dict(params: Any) -> dict:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}


def field_comments(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` of a dataclass's fields, inherited ones too: the natural place to
    document a parameter, used when a field has no ``metadata={"help": ...}``."""
    import inspect
    import re

    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+?)\s*$", source, re.M):
            comments[match.group(1)] = match.group(2)
    return comments


def describe_params(cls: type) -> list[dict]:
    """Name, type, default and help of each parameter: for docs, ``plugins info`` and the server."""
    out = []
    comments = field_comments(cls) if dataclasses.is_dataclass(cls) else {}
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    for f in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append(
            {
                "name": f.name,
                "type": _type_name(hints.get(f.name, Any)),
                "default": None if default is dataclasses.MISSING else default,
                "required": default is dataclasses.MISSING,
                "help": f.metadata.get("help") or comments.get(f.name, ""),
            }
        )
    return out


def top_level_check(data: Mapping) -> None:
    for key in data:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(str(key), f"unknown top-level key{hint} (valid keys: {', '.join(TOP_LEVEL)})")
    if "name" not in data:
        raise ConfigError("name", "missing required value")
    name = data["name"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError("name", f"expected a plain run name without '/', got {name!r}")
    for key in ("data", "generator"):
        if not isinstance(data.get(key), Mapping):
            raise ConfigError(key, "missing required section" if key not in data else "expected a mapping")
