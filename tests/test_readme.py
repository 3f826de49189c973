"""The README's promises: its two commands exist, and its ten-line plugin really works."""

from __future__ import annotations

import re
import types

import numpy as np

from aigc_core import Content, Item
from aigc_core.plugins.registry import PluginInfo, Registry
from aigc_testutil import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first = [line.strip() for line in README.splitlines() if line.strip()][1:3]
    assert first[0].startswith("make demo") and first[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_ten_line_plugin_registers_and_runs(monkeypatch):
    section = README.split("## A plugin in ten lines", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    assert len([line for line in code.strip().splitlines() if line.strip() and not line.startswith("#")]) <= 14
    module = types.ModuleType("readme_plugin")
    monkeypatch.setitem(__import__("sys").modules, "readme_plugin", module)
    exec(compile(code, "README.md", "exec"), module.__dict__)
    registry = Registry()
    module.aigc_register_postprocessors(registry.register_function("postprocessor", PluginInfo("readme", "0", "x")))
    info = registry.get("postprocessor", "invert", "postprocess[0].name", modality="image")
    processor = info.load()(info.load().Params(strength=0.5))
    out = processor(Content("image", [Item(np.zeros((1, 2, 2), np.float32), {"index": 0})]))
    assert np.allclose(out.items[0].data, 0.5) and out.items[0].meta == {"index": 0}


def _subset_mismatches(shown, actual, path=""):
    """Keys the README shows whose value differs from (or is missing in) the real config."""
    if isinstance(shown, dict) and isinstance(actual, dict):
        return [m for k, v in shown.items() for m in _subset_mismatches(v, actual.get(k), f"{path}.{k}".lstrip("."))]
    return [] if shown == actual else [f"{path}: README {shown!r}, config {actual!r}"]


def test_readme_pipeline_config_is_the_shipped_quickstart():
    import yaml

    block = README.split("## A pipeline config", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(block)
    actual = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    assert shown["generator"] and shown["metrics"]  # the block really parsed
    assert _subset_mismatches(shown, actual) == []
