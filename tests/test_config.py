"""Configuration: every error names the full key path; overrides and interpolation work."""

from __future__ import annotations

from typing import Literal, Optional

import pytest

from aigc_core import ConfigError, Field, ParamError, Params, Pipeline, UsageError, model_validator, preset
from aigc_core.store.config import build_params, load_config
from aigc_core.contract.params import describe_schema, json_schema
from aigc_testutil import tiny_gan_config


class Inner(Params):
    depth: int = 2


class Sample(Params):
    width: int = Field(4, ge=1, description="how wide")
    rate: float = 0.5
    name: Optional[str] = None
    mode: Literal["a", "b"] = "a"
    sizes: list[int] = [1, 2]
    inner: Inner = Inner()
    flag: bool = False
    count: Optional[int] = None

    @model_validator(mode="after")
    def _rate_below_width(self) -> "Sample":
        if self.rate > self.width:
            raise ParamError("rate", "must be at most width")
        return self


def test_build_params_converts_and_keeps_defaults():
    p = build_params(Sample, {"width": "7", "rate": 1, "sizes": [3], "inner": {"depth": 5}}, "gen")
    assert (p.width, p.rate, p.sizes, p.inner.depth, p.mode) == (7, 1.0, [3], 5, "a")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"widht": 3}, "gen.widht: unknown key; did you mean 'width'?"),
        ({"width": "wide"}, "gen.width: expected an integer, got 'wide'"),
        ({"flag": "yes"}, "gen.flag: expected true or false"),
        ({"mode": "c"}, "gen.mode: expected one of 'a', 'b', got 'c'"),
        ({"sizes": 3}, "gen.sizes: expected a list"),
        ({"sizes": [1, "x"]}, "gen.sizes[1]: expected an integer"),
        ({"inner": {"dpth": 1}}, "gen.inner.dpth: unknown key; did you mean 'depth'?"),
        ({"width": 0}, "gen.width: must be at least 1"),
        ({"rate": 2.5j if False else [1]}, "gen.rate: expected a number"),
        ({"rate": 9.0}, "gen.rate: must be at most width"),  # a model validator blames one key
        ({"rate": float("nan")}, "gen.rate: must be a finite number"),
        ({"width": True}, "gen.width: expected an integer, got True"),
        ({"count": "x"}, "gen.count: expected an integer or null, got 'x'"),
        ({"mode": "bb"}, "gen.mode: expected one of 'a', 'b', got 'bb'; did you mean 'b'?"),
    ],
)
def test_build_params_errors_name_the_full_key(values, message):
    with pytest.raises(ConfigError) as err:
        build_params(Sample, values, "gen")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_missing_required_value_is_named():
    class Needs(Params):
        path: str

    with pytest.raises(ConfigError, match=r"^data\.path: missing required value"):
        build_params(Needs, {}, "data")


def test_describe_schema_lists_types_and_defaults():
    rows = {r["name"]: r for r in describe_schema(json_schema(Sample))}
    assert rows["width"]["type"] == "int" and rows["width"]["default"] == 4
    assert rows["name"]["type"] == "str or null"
    assert rows["sizes"]["default"] == [1, 2]
    assert rows["width"]["help"] == "how wide" and rows["mode"]["type"] == "'a' | 'b'"


def test_a_preset_setting_is_the_given_value_else_the_size_presets_column():
    class Sized(Params):
        size: Literal["debug", "base"] = "debug"
        latent_dim: Optional[int] = None
        latent = preset("latent_dim", {"debug": (2, 4), "base": (8, 16)}, 1)

    assert build_params(Sized, {}, "g").latent == 4
    assert build_params(Sized, {"size": "base"}, "g").latent == 16
    assert build_params(Sized, {"size": "base", "latent_dim": 3}, "g").latent == 3
    assert "latent" not in json_schema(Sized)["properties"]  # derived, not a config key


def test_a_dataclass_is_refused_with_the_way_to_plugin_api_2():
    from dataclasses import dataclass

    @dataclass
    class Old:
        size: int = 1

    with pytest.raises(ConfigError, match=r"^generator: .*dataclass; plugin API 2 wants a subclass of aigc_core.Params"):
        build_params(Old, {}, "generator")


def test_overrides_interpolation_and_list_indices(tmp_path):
    raw, _ = load_config(tiny_gan_config(tmp_path / "r") | {"output": {"dir": "runs/${name}"}},
                         ["generator.size=small", "postprocess.0.nrow=4", "seed=9"])
    assert raw["generator"]["size"] == "small"
    assert raw["postprocess"][0]["nrow"] == 4
    assert raw["seed"] == 9
    assert raw["output"]["dir"] == "runs/tiny-gan"


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(UsageError, match="expected key=value"):
        load_config({"name": "x"}, ["novalue"])
    with pytest.raises(UsageError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"data": {"source": "sklearn-digitz"}}, "data.source: unknown data source 'sklearn-digitz'; did you mean 'sklearn-digits'?"),
        ({"generator": {"name": "dcgan", "latent_dim": 0}}, "generator.latent_dim: must be at least 1"),
        ({"generator": {"name": "dcgan", "size": 3}}, "generator.size: expected one of"),
        ({"trian": {}}, "trian: unknown top-level key; did you mean 'train'?"),
        ({"train": {"max_epoch": 2}}, "train.max_epoch: unknown key; did you mean 'max_epochs'?"),
        ({"postprocess": [{"name": "dedupe"}]}, "postprocess[0].name: post-processor 'dedupe' accepts text, not image"),
        ({"postprocess": [{"name": "image-grid", "nrow": "many"}]}, "postprocess[0].nrow: expected an integer"),
        ({"metrics": [{"name": "nope"}]}, "metrics[0].name: unknown metric 'nope'"),
        ({"generate": {"num_samples": 4, "label": "x"}}, "generate.label: expected an integer or null"),
        ({"seed": "abc"}, "seed: expected an integer"),
        ({"name": "a/b"}, "name: expected a plain run name"),
    ],
)
def test_pipeline_check_errors(tmp_path, change, message):
    config = tiny_gan_config(tmp_path / "r")
    config.update(change)
    with pytest.raises(ConfigError) as err:
        Pipeline.from_config(config)
    assert str(err.value).startswith(message), str(err.value)
