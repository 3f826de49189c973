"""Typed parameters: every component declares its parameters as a pydantic model.

One declaration gives the types, bounds and descriptions, and from them the JSON Schema that
the web form, ``aigc plugins info`` and ``docs/configuration.md`` show. This module only turns
pydantic's errors into aigc's: one line naming the full config key, with a did-you-mean for an
unknown key.

Imported when a pipeline is built or a schema is shown, never at plugin discovery: pydantic's
import costs about a third of ``aigc plugins list``.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = ["Field", "NoParams", "ParamError", "Params", "build_params", "describe_params", "json_schema",
           "model_validator", "field_validator"]


class ParamError(ValueError):
    """Raised by a model validator to blame one field: ``ParamError("max_chars", "must be ...")``."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Params(BaseModel):
    """Base of every component's ``Params`` and ``GenerateOptions``.

    Unknown keys are errors; a number given where text is expected becomes text; NaN and
    infinities are refused; ``true``/``false`` never stand in for numbers, nor numbers for them;
    defaults are checked like given values, so a default that breaks its own bounds is caught.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False,
                              protected_namespaces=(), validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_booleans(cls, value: Any, info: Any) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        wants_bool = _bare(annotation) is bool
        if (wants_bool and not isinstance(value, (bool, type(None)))) or (
                isinstance(value, bool) and _bare(annotation) in (int, float)):
            raise ValueError(f"expected {_expected(annotation)}, got {value!r}")
        return value


class NoParams(Params):
    """Parameters of a component that takes none."""


# --------------------------------------------------------------------------------------------


def is_params_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def build_params(cls: type, values: Mapping | None, prefix: str, ignore: Sequence[str] = ()) -> Any:
    """An instance of ``cls`` from ``values``; an error is one line naming ``prefix.key``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(prefix, f"expected a mapping of parameters, got {values!r}")
    if not is_params_class(cls):
        raise ConfigError(prefix, f"{getattr(cls, '__qualname__', cls)!r} declares its parameters as a "
                                  f"{'dataclass' if hasattr(cls, '__dataclass_fields__') else 'plain class'}; "
                                  "plugin API 2 wants a subclass of aigc_core.Params (see docs/writing-plugins.md)")
    data = {k: v for k, v in values.items() if k not in ignore}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        key, message = explain(cls, exc.errors()[0])
        raise ConfigError(_join(prefix, key), message) from None


def explain(cls: type, error: Mapping) -> tuple[str, str]:
    """The key (relative to ``cls``) and aigc's message for one pydantic error."""
    key, model, annotation, field, tagged = _walk(cls, error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    cause = ctx.get("error")
    if isinstance(cause, ParamError):
        return _join(key, cause.key), str(cause)
    if kind in ("extra_forbidden", "invalid_key"):
        fields = list(model.model_fields) if model is not None else []
        name = key.rpartition(".")[2]
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return key, f"unknown key{hint} (valid keys: {', '.join(fields) or 'none'})"
    if kind == "missing":
        return key, "missing required value"
    if kind in ("value_error", "assertion_error"):
        return key, str(cause) if cause is not None else error["msg"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return key, "must be " + _range(field.metadata if field is not None and not tagged else [ctx])
    if kind in ("too_short", "string_too_short"):
        return key, f"must hold at least {ctx.get('min_length')} {'character' if 'string' in kind else 'item'}(s)"
    if kind in ("too_long", "string_too_long"):
        return key, f"must hold at most {ctx.get('max_length')} {'character' if 'string' in kind else 'item'}(s)"
    if kind == "multiple_of":
        return key, f"must be a multiple of {ctx['multiple_of']}, got {value!r}"
    if kind == "finite_number":
        return key, f"must be a finite number, got {value!r}"
    if kind == "literal_error":
        allowed = [str(a) for a in typing.get_args(_bare(annotation))] if not tagged else []
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return key, f"expected {_expected(annotation)}, got {value!r}{hint}"
    return key, f"expected {_expected(annotation)}, got {value!r}"


def _walk(cls: type, loc: Sequence) -> tuple[str, Any, Any, Any, bool]:
    """Follow an error's location through nested models: the key as the user writes it, the
    innermost model, the annotation and the field at the end, and whether a union member was
    tried (its tag in the location is pydantic's, not the user's)."""
    key, model, annotation, field, tagged = "", cls, None, None, False
    for part in loc:
        field = None
        if model is not None and isinstance(part, str) and part in model.model_fields:
            key = _join(key, part)
            field = model.model_fields[part]
            annotation = field.annotation
        elif model is not None and annotation is None:  # an unknown key
            key = _join(key, str(part))
            break
        elif isinstance(part, int):
            key += f"[{part}]"
            args = typing.get_args(_bare(annotation))
            annotation = args[0] if args else Any
        elif typing.get_origin(_bare(annotation)) is dict:
            key = _join(key, str(part))
            annotation = Any
        else:
            tagged = True
            continue
        inner = _bare(annotation)
        model = inner if is_params_class(inner) else None
        if model is not None:
            annotation = None
    return key, model, annotation if annotation is not None else model, field, tagged


def _range(constraints: Sequence) -> str:
    """Bounds in words: ``at least 1``, ``0 or more``, ``in (0, 1]``."""
    low = high = None
    for c in constraints:
        get = c.get if isinstance(c, Mapping) else lambda name: getattr(c, name, None)
        for name, side in (("ge", "["), ("gt", "(")):
            if get(name) is not None:
                low = (side, get(name))
        for name, side in (("le", "]"), ("lt", ")")):
            if get(name) is not None:
                high = (side, get(name))
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        if low[0] == "(":
            return "positive" if low[1] == 0 else f"greater than {low[1]}"
        return "0 or more" if low[1] == 0 else f"at least {low[1]}"
    if high:
        return f"at most {high[1]}" if high[0] == "]" else f"less than {high[1]}"
    return "in range"


def _join(prefix: str, key: str) -> str:
    if not key:
        return prefix
    if not prefix:
        return key
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


_UNIONS = (typing.Union, types.UnionType)


def _bare(tp: Any) -> Any:
    """``tp`` without ``| None`` and ``Annotated``."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in _UNIONS:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _bare(args[0])
    return tp


def _expected(tp: Any) -> str:
    """What a value of annotation ``tp`` looks like, in words."""
    nullable = typing.get_origin(tp) in _UNIONS and type(None) in typing.get_args(tp)
    tp = _bare(tp)
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        text = " or ".join(_expected(a) for a in typing.get_args(tp) if a is not type(None))
    elif origin is typing.Literal:
        text = "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    elif origin in (list, tuple, Sequence) or tp in (list, tuple):
        text = "a list"
    elif origin is dict or tp is dict or is_params_class(tp):
        text = "a mapping"
    else:
        text = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, "a value")
    return text + (" or null" if nullable else "")


# --------------------------------------------------------------------------------------------
# The one schema


def json_schema(cls: type, defaults: Mapping | None = None) -> dict:
    """The JSON Schema of ``cls``, with ``defaults`` (a run's configured values) as defaults."""
    if not is_params_class(cls):
        return {"type": "object", "properties": {}}
    schema = cls.model_json_schema()
    for name, value in (defaults or {}).items():
        if name in schema.get("properties", {}):
            schema["properties"][name]["default"] = value
    return schema


def describe_params(cls: type) -> list[dict]:
    """One row per parameter (name, type, default, required, help), read from the JSON Schema."""
    return describe_schema(json_schema(cls))


def describe_schema(schema: Mapping) -> list[dict]:
    required = set(schema.get("required", ()))
    return [{"name": name, "type": schema_type(prop, schema), "bounds": schema_bounds(prop),
             "default": prop.get("default"),
             "required": name in required, "help": prop.get("description", "")}
            for name, prop in schema.get("properties", {}).items()]


def schema_bounds(prop: Mapping) -> str:
    """A JSON Schema property's bounds in symbols: ``>= 1``, ``> 0, <= 1``, ``multiple of 8``."""
    marks = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
             ("multipleOf", "multiple of"), ("minLength", "length >="), ("minItems", "items >="))
    for member in [prop] + list(prop.get("anyOf", ())):
        found = [f"{mark} {member[key]}" for key, mark in marks if key in member]
        if found:
            return ", ".join(found)
    return ""


def schema_type(prop: Mapping, root: Mapping | None = None) -> str:
    """A JSON Schema property's type in a few words: ``int``, ``str or null``, ``'a' | 'b'``..."""
    if "$ref" in prop and root is not None:
        prop = root.get("$defs", {}).get(prop["$ref"].rpartition("/")[2], {})
        return "mapping" if prop.get("type") == "object" else schema_type(prop, root)
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    if "anyOf" in prop:
        parts = [schema_type(p, root) for p in prop["anyOf"]]
        nullable = "null" in parts
        return " or ".join([p for p in parts if p != "null"] + (["null"] if nullable else []))
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "array": "list",
             "object": "mapping", "null": "null"}
    kind = prop.get("type")
    if kind == "array" and prop.get("items", {}).get("type") in names:
        return f"list of {names[prop['items']['type']]}"
    return names.get(kind, "any") if isinstance(kind, str) else "any"
