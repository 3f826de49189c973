"""Property: ``aigc check`` on any config, valid or mangled, gives success or one line, never a traceback.

Configs are real ones (every file in configs/ plus a tiny GAN) mutated by hypothesis: values
replaced by values of other types (NaN, huge integers, nested lists, empty strings...), keys
dropped or invented, sections replaced, interpolations broken, overrides added, and raw text
that is not YAML at all. Set AIGC_FUZZ_EXAMPLES for a longer search.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigc_testutil import ROOT, tiny_gan_config

EXAMPLES = int(os.environ.get("AIGC_FUZZ_EXAMPLES", "1000"))
STATS = {"tried": 0, "ok": 0, "errors": 0}


def _bases() -> list[dict]:
    bases = [tiny_gan_config(Path("runs/fuzz"))]
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            bases.append(data)
    return bases


BASES = _bases()
KEYS = ["name", "seed", "data", "generator", "train", "generate", "postprocess", "metrics", "output", "source",
        "size", "batch_size", "max_epochs", "devices", "strategy", "precision", "image_size", "limit", "dir",
        "exporter", "num_samples", "latent_dim", "lr_g", "label", "nrow", "val_fraction", "block_size"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["auto", "ddp", "debug", "${name}", "${nope}", "${data.batch_size}", "", "???", "1e3",
                     "sklearn-digits", "dcgan", "image-grid", "-1", "bf16-mixed", "cpu", "a/b", ".hidden"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw):
    config = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 4))):
        paths = [p for p in _paths(config) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = config
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(values)
        else:
            parent.append(draw(values))
    return config


overrides = st.lists(
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["train.max_epochs", "data.batch_size", "generator.size", "seed", "name", "x.y",
                               "train", "postprocess.0.name", "", "data..limit", "generate.label"]),
              st.sampled_from(["1", "-3", "nan", "[1, 2", "{a: 1}", "${name}", "", "null", "abc", "1e999"])),
    max_size=2)

raw_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "- a\n- b\n", "name: [\n", "a: b: c", "\t name: x", "name: x\nname: y\n", "!!python/object:os.system {}",
                     "name: ${oops}\ndata: {source: x}\ngenerator: {name: y}\n", "*anchor", "name: x\n" * 2, "42"]),
)


def _check(capsys, text: str, extra: list[str]) -> None:
    from aigc_core.cli import main

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        code = main(["check", f.name, *extra])
    finally:
        os.unlink(f.name)
    captured = capsys.readouterr()
    STATS["tried"] += 1
    assert "Traceback" not in captured.err + captured.out
    if code == 0:
        STATS["ok"] += 1
        assert captured.out.startswith("ok: ")
        return
    STATS["errors"] += 1
    assert code in (1, 2)
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aigc: error: "), captured.err
    assert "rerun with --debug" not in lines[0], f"unexpected exception: {lines[0]}"


def _dump(config) -> str:
    try:
        return yaml.safe_dump(config, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # e.g. a float YAML cannot write
        return yaml.dump(config)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("AIGC_FUZZ_RANDOM") != "1", database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(mutated().map(_dump), mutated().map(_dump), raw_text), overrides)
def test_check_never_shows_a_traceback(capsys, text, extra):
    _check(capsys, text, extra)


def test_the_fuzzer_reaches_both_outcomes():
    """Guard against a fuzzer that only ever produces garbage (or only valid configs)."""
    if STATS["tried"] < EXAMPLES:
        pytest.skip("runs after test_check_never_shows_a_traceback in the same session")
    print(f"fuzz: {STATS}")
    assert STATS["ok"] > 20 and STATS["errors"] > 200, STATS
