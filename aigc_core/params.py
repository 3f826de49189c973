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
        wants = _plain(annotation)
        if wants in (bool, int, float) and value is not None and (wants is bool) != isinstance(value, bool):
            raise ValueError(f"expected {_expected(wants.__name__, annotation)}, got {value!r}")
        return value


class NoParams(Params):
    """Parameters of a component that takes none."""


def is_params_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def build_params(cls: type, values: Mapping | None, prefix: str, ignore: Sequence[str] = ()) -> Any:
    """An instance of ``cls`` from ``values``; an error is one line naming ``prefix.key``."""
    if not isinstance(values, (Mapping, type(None))):
        raise ConfigError(prefix, f"expected a mapping of parameters, got {values!r}")
    if not is_params_class(cls):
        raise ConfigError(prefix, f"{cls!r} declares its parameters as a dataclass; plugin API 2 wants a "
                                  "subclass of aigc_core.Params (see docs/writing-plugins.md)")
    try:
        return cls.model_validate({k: v for k, v in (values or {}).items() if k not in ignore})
    except ValidationError as exc:
        key, message = explain(cls, exc.errors()[0])
        raise ConfigError(_join(prefix, key), message) from None


#: What a value looks like, by the first word of pydantic's error type (``int_parsing``...).
EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
            "list": "a list", "tuple": "a list", "dict": "a mapping", "model": "a mapping"}
#: Messages for the other constraints, filled from the error's context.
MESSAGES = {"multiple_of": "must be a multiple of {multiple_of}", "finite_number": "must be a finite number",
            "too_short": "must hold at least {min_length} item(s)", "too_long": "must hold at most {max_length} item(s)",
            "string_too_short": "must hold at least {min_length} character(s)",
            "string_too_long": "must hold at most {max_length} character(s)"}


def explain(cls: type, error: Mapping) -> tuple[str, str]:
    """The key (relative to ``cls``) and aigc's message for one pydantic error."""
    key, model, field, annotation = _locate(cls, error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if isinstance(ctx.get("error"), ParamError):
        return _join(key, ctx["error"].key), str(ctx["error"])
    if "error" in ctx:  # a validator's ValueError: its message is the message
        return key, str(ctx["error"])
    if kind in ("extra_forbidden", "invalid_key"):
        fields = list(model.model_fields)
        close = difflib.get_close_matches(key.rpartition(".")[2], fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return key, f"unknown key{hint} (valid keys: {', '.join(fields) or 'none'})"
    if kind == "missing":
        return key, "missing required value"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return key, "must be " + _range([ctx, *(field.metadata if field is not None else ())])
    if kind in MESSAGES:
        return key, MESSAGES[kind].format(**ctx) + f", got {value!r}"
    allowed = [str(a) for a in typing.get_args(_plain(annotation))] if kind == "literal_error" else []
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return key, f"expected {_expected(kind.split('_')[0], annotation)}, got {value!r}{hint}"


def _locate(cls: type, loc: Sequence) -> tuple[str, Any, Any, Any]:
    """Follow an error's location through nested models: the key as the user writes it, the
    innermost model, and the field and the annotation at the end (a list's item annotation for an
    index; a location part that names no field is a union member's tag, which the user never wrote)."""
    key, model, field, annotation = "", cls, None, None
    for part in loc:
        if model is not None and isinstance(part, str) and part in model.model_fields:
            field = model.model_fields[part]
            key, annotation = _join(key, part), field.annotation
        elif model is not None:  # an unknown key
            return _join(key, str(part)), model, None, None
        elif isinstance(part, int):
            key, field = f"{key}[{part}]", None
            annotation = (typing.get_args(_plain(annotation)) or (None,))[0]
        else:
            continue
        model = _plain(annotation) if is_params_class(_plain(annotation)) else None
    return key, model, field, annotation


def _join(prefix: str, key: str) -> str:
    return prefix + key if not prefix or not key or key.startswith("[") else f"{prefix}.{key}"


def _plain(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``| None``."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return _plain(args[0]) if len(args) == 1 and type(None) in typing.get_args(tp) else tp


def _expected(kind: str, annotation: Any) -> str:
    plain = _plain(annotation)
    text = ("one of " + ", ".join(map(repr, typing.get_args(plain))) if typing.get_origin(plain) is typing.Literal
            else EXPECTED.get(kind, "a valid value"))
    return text + (" or null" if type(None) in typing.get_args(annotation) else "")


def _range(constraints: Sequence) -> str:
    """Bounds in words: ``at least 1``, ``0 or more``, ``in (0, 1]``."""
    b = {}
    for c in constraints:
        for name in ("ge", "gt", "le", "lt"):
            if (c.get(name) if isinstance(c, Mapping) else getattr(c, name, None)) is not None:
                b[name] = c.get(name) if isinstance(c, Mapping) else getattr(c, name)
    low = ("[", b["ge"]) if "ge" in b else ("(", b["gt"]) if "gt" in b else None
    high = (b["le"], "]") if "le" in b else (b["lt"], ")") if "lt" in b else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
    if low and low[0] == "[":
        return "0 or more" if low[1] == 0 else f"at least {low[1]}"
    if low:
        return "positive" if low[1] == 0 else f"greater than {low[1]}"
    return f"at most {high[0]}" if high[1] == "]" else f"less than {high[0]}"


# --------------------------------------------------------------------------------------------
# The one schema


def json_schema(cls: type, defaults: Mapping | None = None) -> dict:
    """The JSON Schema of ``cls``, with ``defaults`` (a run's configured values) as defaults."""
    schema = cls.model_json_schema()
    for name, value in (defaults or {}).items():
        schema["properties"][name]["default"] = value
    return schema


def describe_params(cls: type) -> list[dict]:
    return describe_schema(json_schema(cls))


def describe_schema(schema: Mapping) -> list[dict]:
    """One row per parameter (name, type, bounds, default, required, help) of a JSON Schema."""
    return [{"name": name, "type": schema_type(prop, schema), "bounds": schema_bounds(prop),
             "default": prop.get("default"), "required": name in schema.get("required", ()),
             "help": prop.get("description", "")} for name, prop in schema.get("properties", {}).items()]


def schema_bounds(prop: Mapping) -> str:
    """A property's bounds in symbols: ``>= 1``, ``> 0, <= 1``, ``multiple of 8``."""
    marks = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
             "multipleOf": "multiple of", "minLength": "length >=", "minItems": "items >="}
    for member in [prop, *prop.get("anyOf", ())]:
        if found := [f"{mark} {member[key]}" for key, mark in marks.items() if key in member]:
            return ", ".join(found)
    return ""


def schema_type(prop: Mapping, root: Mapping) -> str:
    """A property's type in a few words: ``int``, ``str or null``, ``'a' | 'b'``, ``list of int``."""
    if "$ref" in prop:
        return "mapping"
    if "enum" in prop or "const" in prop:
        return " | ".join(map(repr, prop.get("enum", [prop.get("const")])))
    if "anyOf" in prop:
        parts = [schema_type(p, root) for p in prop["anyOf"]]
        return " or ".join([p for p in parts if p != "null"] + ["null"] * ("null" in parts))
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "array": "list",
             "object": "mapping", "null": "null"}
    items = prop.get("items", {}).get("type")
    return f"list of {names[items]}" if items in names else names.get(prop.get("type"), "any")
