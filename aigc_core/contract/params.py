"""Typed parameters: every component declares its parameters as a pydantic model.

One declaration gives the types, bounds and descriptions, and from them the JSON Schema that
the web form, ``aigc plugins info`` and ``docs/configuration.md`` show. This module only turns
pydantic's errors into aigc's: one line naming the full config key, with a did-you-mean for an
unknown key.

Imported when a pipeline is built or a schema is shown, never at plugin discovery: pydantic's
import costs about a third of ``aigc plugins list``.
"""

from __future__ import annotations

import typing
from typing import Any, Mapping, Sequence

from pydantic_core import PydanticCustomError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, did_you_mean

__all__ = ["Field", "NoParams", "ParamError", "Params", "build_params", "describe_schema", "json_schema",
           "model_validator", "field_validator", "preset"]


class ParamError(ValueError):
    """Raised by a model validator to blame one field: ``ParamError("max_chars", "must be ...")``."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Params(BaseModel):
    """Base of every component's ``Params`` and ``GenerateOptions``.

    Unknown keys are errors; a number given where text is expected becomes text (YAML reads
    ``precision: 32`` as a number); NaN and infinities are refused; ``true``/``false`` never stand
    in for numbers, nor numbers for them; defaults are checked like given values, so a default that
    breaks its own bounds is caught.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False,
                              protected_namespaces=(), validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _yaml_scalars(cls, value: Any, info: Any) -> Any:
        wants = _plain(cls.model_fields[info.field_name].annotation)
        if wants in (bool, int, float) and value is not None and (wants is bool) != isinstance(value, bool):
            raise PydanticCustomError(f"{wants.__name__}_type", "pydantic would convert it; aigc refuses")
        if type(value) is int and typing.get_origin(wants) is typing.Literal and str(value) in typing.get_args(wants):
            return str(value)  # coerce_numbers_to_str does not reach a Literal
        return value


class NoParams(Params):
    """Parameters of a component that takes none."""


def preset(field: str, sizes: Mapping[str, Sequence], column: int) -> property:
    """A setting that defaults from the size preset: ``field`` where the config gives it, else
    ``sizes[size][column]``. Every generator with a ``size`` parameter has several of these; one
    rule keeps them from drifting apart (and the schema shows ``field`` as the optional override)."""
    return property(lambda self: getattr(self, field) or sizes[self.size][column],
                    doc=f"{field}, else column {column} of the size preset")


def is_params_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def build_params(cls: type, values: Mapping | None, prefix: str, ignore: Sequence[str] = ()) -> Any:
    """An instance of ``cls`` from ``values``; an error is one line naming ``prefix.key``."""
    if not is_params_class(cls):
        raise ConfigError(prefix, f"{cls!r} declares its parameters as a dataclass; plugin API 2 wants a "
                                  "subclass of aigc_core.Params (see docs/writing-plugins.md)")
    if isinstance(values, Mapping):
        values = {k: v for k, v in values.items() if k not in ignore}
    try:
        return cls.model_validate({} if values is None else values)
    except ValidationError as exc:
        raise ConfigError(*explain(cls, exc.errors()[0], prefix)) from None


#: What a value looks like, by the first word of pydantic's error type (``int_parsing``...).
EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
            "list": "a list", "tuple": "a list", "dict": "a mapping", "model": "a mapping"}
#: Messages for the other constraints, filled from the error's context.
MESSAGES = {"multiple_of": "must be a multiple of {multiple_of}", "finite_number": "must be a finite number",
            "too_short": "must hold at least {min_length} item(s)", "too_long": "must hold at most {max_length} item(s)",
            "string_too_short": "must hold at least {min_length} character(s)",
            "string_too_long": "must hold at most {max_length} character(s)"}
#: A one-sided bound in words; a zero lower bound has its own.
BOUNDS = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}


def explain(cls: type, error: Mapping, prefix: str = "") -> tuple[str, str]:
    """The full key (``prefix`` is where ``cls`` sits in the config) and aigc's message for one pydantic error."""
    key, model, annotation, bounds = _locate(cls, error["loc"], prefix)
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if "error" in ctx:  # a validator's ValueError: its message is the message (a ParamError's names its key)
        return _join(key, getattr(ctx["error"], "key", "")), str(ctx["error"])
    if kind in ("extra_forbidden", "invalid_key"):
        fields = list(model.model_fields)
        hint = did_you_mean(key.rpartition(".")[2], fields)
        return key, f"unknown key{hint} (valid keys: {', '.join(fields) or 'none'})"
    if kind == "missing":
        return key, "missing required value"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return key, "must be " + _range({**ctx, **bounds})
    if kind in MESSAGES:
        return key, MESSAGES[kind].format(**ctx) + f", got {value!r}"
    plain = _plain(annotation)
    choices = typing.get_args(plain) if typing.get_origin(plain) is typing.Literal else ()
    expected = ("one of " + ", ".join(map(repr, choices)) if choices
                else EXPECTED.get(kind.split("_")[0], "a valid value"))
    nullable = " or null" if type(None) in typing.get_args(annotation) else ""
    return key, f"expected {expected}{nullable}, got {value!r}{did_you_mean(value, choices)}"


def _locate(cls: type, loc: Sequence, key: str) -> tuple[str, Any, Any, dict]:
    """Follow an error's location through nested models: the key as the user writes it, the model
    an unknown key was given to, and the annotation and bounds at the end (a list item's for an
    index; a location part that names no field is a union member's tag, which the user never wrote)."""
    annotation, bounds = cls, {}
    for part in loc:
        model = _plain(annotation) if is_params_class(_plain(annotation)) else None
        if model is not None and part not in model.model_fields:  # an unknown key
            return _join(key, str(part)), model, None, {}
        if model is not None:
            field = model.model_fields[part]
            key, annotation = _join(key, part), field.annotation
            bounds = {b: getattr(m, b) for m in field.metadata for b in BOUNDS if getattr(m, b, None) is not None}
        elif isinstance(part, int):
            key, annotation, bounds = f"{key}[{part}]", (typing.get_args(_plain(annotation)) or (None,))[0], {}
    return key, None, annotation, bounds


def _join(prefix: str, key: str) -> str:
    return prefix + key if not prefix or not key or key.startswith("[") else f"{prefix}.{key}"


def _plain(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``| None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Annotated or len(args) == 1 < len(typing.get_args(tp)):
        return _plain(args[0])
    return tp


def _range(bounds: Mapping) -> str:
    """Bounds in words: ``at least 1``, ``0 or more``, ``in (0, 1]``."""
    low = next((b for b in ("ge", "gt") if b in bounds), None)
    high = next((b for b in ("le", "lt") if b in bounds), None)
    if low and high:
        return f"in {'[' if low == 'ge' else '('}{bounds[low]}, {bounds[high]}{']' if high == 'le' else ')'}"
    if low and bounds[low] == 0:
        return "0 or more" if low == "ge" else "positive"
    return f"{BOUNDS[low or high]} {bounds[low or high]}"


# --------------------------------------------------------------------------------------------
# The one schema


def json_schema(cls: type, defaults: Mapping | None = None) -> dict:
    """The JSON Schema of ``cls``, with ``defaults`` (a run's configured values) as defaults; a
    file option keeps its own: where the run's file lies on the server is no client's business."""
    from .fileoptions import is_file_option

    schema = cls.model_json_schema()
    for name, value in (defaults or {}).items():
        if not is_file_option(schema["properties"][name]):
            schema["properties"][name]["default"] = value
    return schema


def describe_schema(schema: Mapping) -> list[dict]:
    """One row per parameter (name, type, bounds, default, required, help) of a JSON Schema."""
    return [{"name": name, "type": schema_type(prop), "bounds": schema_bounds(prop),
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


def schema_type(prop: Mapping) -> str:
    """A property's type in a few words: ``int``, ``str or null``, ``'a' | 'b'``, ``list of int``."""
    if "$ref" in prop:
        return "mapping"
    if prop.get("x-aigc-file"):
        return "file"
    if "enum" in prop or "const" in prop:
        return " | ".join(map(repr, prop.get("enum", [prop.get("const")])))
    if "anyOf" in prop:
        return " or ".join(schema_type(p) for p in prop["anyOf"])  # in the declared order: int or null
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "array": "list",
             "object": "mapping", "null": "null"}
    items = prop.get("items", {}).get("type")
    return f"list of {names[items]}" if items in names else names.get(prop.get("type"), "any")
