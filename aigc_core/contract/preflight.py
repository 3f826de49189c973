"""What a config names outside itself (files, folders, other runs), found before anything runs.

``aigc run`` should fail on a missing folder or an unset variable in its first second, not after
reading data for minutes; ``aigc check`` should say so without running anything. Two declarations
let the core do that without knowing any plugin:

* a parameter that names a file or folder is declared with :func:`PathField`. Its value is
  expanded (``~``, ``$VARS``) and, when relative, taken from the **config file's folder**, so a
  config means the same files whatever the working directory (a config given as a mapping, in
  Python, resolves from the working directory). ``aigc check`` refuses a path that does not exist,
  and an unset variable, naming the key (exit 2);
* a component may define ``check(params, context)`` (a classmethod; :class:`CheckContext`) for
  what only it can tell: that a named run is a finished vocoder trained with the same mel
  settings, say. ``Pipeline.check`` calls it for every component of the config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import ConfigError

#: The key in a field's JSON Schema extras that marks it as a path, with what must exist there.
PATH_MARK = "aigc_path"
Exists = Literal["dir", "file", "any", "none"]
_UNSET_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


class Checked:
    """The ``check`` every component class has (data sources, generators, post-processors...)."""

    @classmethod
    def check(cls, params: Any, context: Any) -> None:
        """What would make ``aigc run`` fail later and can be seen now, without reading data or
        building anything: ``aigc check`` and ``run`` call it first, with the validated ``params``
        and an ``aigc_core.CheckContext`` (``context.key`` is where this component sits in the
        config, for a ``ConfigError``). Paths declared with ``aigc_core.PathField`` are checked
        already; the default checks nothing more."""


def PathField(default: Any = ..., *, exists: Exists = "any", missing: str = "", **kwargs: Any) -> Any:
    """``Field(...)`` for a parameter naming a file or folder (or a list of them).

    ``exists``: what ``aigc check`` requires there: ``dir``, ``file``, ``any`` (either), or
    ``none`` (nothing: the component creates it, or downloads into it). ``missing``: advice added
    to the error when nothing is there (``train one first: aigc run configs/x.yaml``).
    """
    from .params import Field

    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[PATH_MARK] = exists
    if missing:
        extra[PATH_MARK + "_missing"] = missing
    return Field(default, json_schema_extra=extra, **kwargs)


def path_fields(params_cls: Any) -> dict[str, str]:
    """``{field name: what must exist}`` for the fields of ``params_cls`` declared with ``PathField``."""
    out = {}
    for name, info in getattr(params_cls, "model_fields", {}).items():
        extra = info.json_schema_extra
        if isinstance(extra, Mapping) and PATH_MARK in extra:
            out[name] = str(extra[PATH_MARK])
    return out


@dataclass
class PathProblem:
    key: str
    message: str

    def error(self) -> ConfigError:
        return ConfigError(self.key, self.message)


_LEADING_VAR = re.compile(r"^\$(?:\{(?:oc\.env:)?([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


def starts_with_variable(text: str | None) -> bool:
    """True when ``text`` begins with a set environment variable (``$X``, ``${X}``, ``${oc.env:X...}``):
    its value was typed in a shell, so a relative one means the working directory."""
    match = _LEADING_VAR.match(text or "")
    return bool(match) and bool(os.environ.get(match.group(1) or match.group(2)))


def resolve_path(value: str, key: str, base_dir: Path, written: str | None = None) -> tuple[str, PathProblem | None]:
    """``value`` expanded and made absolute from ``base_dir`` (from the working directory when it
    starts with an environment variable: ``written`` is the text before OmegaConf resolved it);
    with an unset variable, the value as given and the problem (reported by ``aigc check`` and
    ``run``, not by loading a finished run, which may never read that path)."""
    if starts_with_variable(value) or starts_with_variable(written):
        base_dir = Path.cwd()
    expanded = os.path.expandvars(os.path.expanduser(value))
    missing = _UNSET_VAR.findall(expanded)
    if missing:
        return value, PathProblem(key, f"environment variable {missing[0]} is not set (in {value!r}); "
                                       f"set it or give the path directly")
    path = Path(expanded)
    if not path.is_absolute():
        path = base_dir / path
    return os.path.normpath(path), None


def dotted(key: str) -> str:
    """``postprocess[0].path`` and ``postprocess.0.path`` alike, for comparing keys."""
    return re.sub(r"\[(\d+)\]", r".\1", key).strip(".")


def resolve_paths(params_cls: Any, values: Any, prefix: str, base_dir: Path,
                  from_cwd: frozenset[str] | set[str] = frozenset(),
                  written: Mapping | None = None) -> tuple[Any, list[PathProblem]]:
    """``values`` (a config section, before validation) with its path fields resolved.

    Keys in ``from_cwd`` (dotted) were typed on the command line: their relative paths mean the
    working directory, as everything typed in a shell does. ``written`` is the same section before
    interpolation (to see a value that starts with ``${oc.env:...}``)."""
    written = written if isinstance(written, Mapping) else {}
    fields = path_fields(params_cls)
    if not fields or not isinstance(values, Mapping):
        return values, []
    out, problems = dict(values), []
    for name in fields:
        value = out.get(name)
        key = f"{prefix}.{name}"
        base = Path.cwd() if dotted(key) in from_cwd or dotted(prefix) in from_cwd else base_dir
        if isinstance(value, str) and value:
            text = written.get(name)
            out[name], problem = resolve_path(value, key, base, text if isinstance(text, str) else None)
            problems += [problem] if problem else []
        elif isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                if isinstance(item, str) and item:
                    texts = written.get(name)
                    text = texts[i] if isinstance(texts, list) and i < len(texts) else None
                    item, problem = resolve_path(item, f"{key}[{i}]", base, text if isinstance(text, str) else None)
                    problems += [problem] if problem else []
                items.append(item)
            out[name] = items
    return out, problems


def check_paths(params: Any, prefix: str) -> None:
    """Refuse a declared path where nothing (or the wrong kind of thing) exists."""
    for name, exists in path_fields(type(params)).items():
        extra = type(params).model_fields[name].json_schema_extra or {}
        advice = f"; {extra[PATH_MARK + '_missing']}" if PATH_MARK + "_missing" in extra else ""
        value = getattr(params, name, None)
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(values):
            if not isinstance(item, str) or not item or exists == "none":
                continue
            key = f"{prefix}.{name}" + (f"[{i}]" if isinstance(value, list) else "")
            path = Path(item)
            if exists == "dir" and not path.is_dir():
                raise ConfigError(key, f"{item}: " + ("not a directory" if path.exists() else "no such directory" + advice))
            if exists == "file" and not path.is_file():
                raise ConfigError(key, f"{item}: " + ("not a file" if path.exists() else "no such file" + advice))
            if exists == "any" and not path.exists():
                raise ConfigError(key, f"{item}: no such file or directory{advice}")


@dataclass
class CheckContext:
    """What a component's ``check(params, context)`` may look at: nothing has been read or built.

    ``key``: where the component sits in the config (``generator``, ``postprocess[1]``), for errors;
    ``data``: the data source's validated parameters (a generator may compare its sample rate);
    ``config_dir``: the folder relative paths were resolved from; ``config``: the whole resolved config.
    """

    key: str
    data: Any = None
    config_dir: Path = field(default_factory=Path.cwd)
    config: Mapping[str, Any] = field(default_factory=dict)
