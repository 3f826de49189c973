"""Plugin discovery and the registry: conflicts, broken plugins, selection, strict mode."""

from __future__ import annotations

import types
from importlib import metadata

import pytest

from aigc_core import ConfigError, PluginError, hookimpl
from aigc_core import plugins as plugin_mod
from aigc_core.plugins.registry import PluginInfo, Registry


def _register(registry, plugin_name, kind, name, modality="image"):
    plugin = PluginInfo(plugin_name, "1.0", f"dist-{plugin_name}")
    registry.register_function(kind, plugin)(name, "x:y", modality=modality)


def test_two_plugins_claiming_one_name_are_both_named():
    reg = Registry()
    _register(reg, "alpha", "generator", "painter")
    _register(reg, "beta", "generator", "painter")
    assert any("'alpha' and 'beta'" in p for p in reg.problems)
    with pytest.raises(ConfigError, match="claimed by plugins 'alpha' and 'beta'"):
        reg.get("generator", "painter", "generator.name")


def test_one_name_may_serve_two_modalities():
    reg = Registry()
    _register(reg, "alpha", "postprocessor", "denoise", "image")
    _register(reg, "beta", "postprocessor", "denoise", "audio")
    assert not reg.problems
    assert reg.get("postprocessor", "denoise", "k", modality="audio").plugin == "beta"
    assert reg.get("postprocessor", "denoise", "k", modality="image").plugin == "alpha"
    with pytest.raises(ConfigError, match="accepts audio, image, not text"):
        reg.get("postprocessor", "denoise", "k", modality="text")


def test_bad_modality_is_refused():
    reg = Registry()
    with pytest.raises(PluginError, match="modality 'video'"):
        _register(reg, "alpha", "generator", "g", "video")


class FakeEntryPoint:
    def __init__(self, name, module, dist="fake-dist"):
        self.name = name
        self.group = "aigc"
        self.value = module
        self._module = module
        self.dist = types.SimpleNamespace(name=dist, version="9.9", entry_points=[])

    def load(self):
        if isinstance(self._module, Exception):
            raise self._module
        return self._module


def _good_plugin():
    module = types.ModuleType("good_plugin")

    @hookimpl
    def aigc_register_generators(register):
        register("good-gen", "good_plugin:Gen", modality="text", description="works")

    module.aigc_register_generators = aigc_register_generators
    return module


def _patch_entry_points(monkeypatch, eps):
    real = metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == "aigc":
            return eps
        return real(**kwargs)

    monkeypatch.setattr(plugin_mod.metadata, "entry_points", fake)


def test_broken_plugin_is_reported_and_the_rest_work(monkeypatch):
    _patch_entry_points(monkeypatch, [FakeEntryPoint("broken", ImportError("no module named zzz"), "broken-dist"),
                                      FakeEntryPoint("good", _good_plugin())])
    monkeypatch.delenv("AIGC_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("AIGC_LOAD_PLUGINS", raising=False)
    reg = plugin_mod.load_plugins()
    assert any("'broken' (distribution broken-dist) failed to load: ImportError" in p for p in reg.problems)
    assert "good-gen" in reg.names("generator")
    assert "sklearn-digits" in reg.names("data_source")


def test_strict_mode_turns_problems_into_errors(monkeypatch):
    _patch_entry_points(monkeypatch, [FakeEntryPoint("broken", ImportError("nope"))])
    monkeypatch.setenv("AIGC_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        plugin_mod.load_plugins()


def test_load_plugins_selects_by_name_and_empty_means_none(monkeypatch):
    _patch_entry_points(monkeypatch, [FakeEntryPoint("good", _good_plugin())])
    monkeypatch.delenv("AIGC_STRICT_PLUGINS", raising=False)
    monkeypatch.setenv("AIGC_LOAD_PLUGINS", "")
    reg = plugin_mod.load_plugins()
    assert "good" not in reg.plugins and "good-gen" not in reg.names("generator")
    assert "builtin" in reg.plugins
    monkeypatch.setenv("AIGC_LOAD_PLUGINS", "good")
    assert "good-gen" in plugin_mod.load_plugins().names("generator")


def test_unknown_hook_is_rejected_naming_the_plugin(monkeypatch):
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def aigc_register_generatorz(register):
        register("never", "x:y", modality="image")

    module.aigc_register_generatorz = aigc_register_generatorz
    _patch_entry_points(monkeypatch, [FakeEntryPoint("typo", module), FakeEntryPoint("good", _good_plugin())])
    monkeypatch.delenv("AIGC_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("AIGC_LOAD_PLUGINS", raising=False)
    reg = plugin_mod.load_plugins()
    assert any("'typo'" in p and "aigc_register_generatorz" in p for p in reg.problems)
    assert "good-gen" in reg.names("generator")
