"""Generated reference docs match the code exactly; every hook is documented."""

from __future__ import annotations

import importlib.util
import types

from aigc_testutil import ROOT

# a repository tool, not part of the package: loaded from its file
_spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs)


def test_every_hook_is_documented():
    assert docs.missing_hook_docs() == []


def test_an_undocumented_hook_is_caught():
    import pluggy

    spec = pluggy.HookspecMarker("aigc")
    module = types.ModuleType("fake_specs")

    @spec
    def aigc_register_things(register):
        pass

    @spec
    def aigc_register_others(register):
        """Register others.

        No example here.
        """

    module.aigc_register_things = aigc_register_things
    module.aigc_register_others = aigc_register_others
    problems = docs.missing_hook_docs(module)
    assert "aigc_register_things: no docstring" in problems
    assert "aigc_register_others: the docstring has no 'Example::' block" in problems


def test_hooks_reference_is_current():
    path = docs.ROOT / "docs" / "hooks.md"
    assert path.read_text() == docs.hooks_markdown(), "docs/hooks.md is stale: run python tools/gen_docs.py"


def test_configuration_reference_is_current():
    """Every key of every bundled component, exactly as the Params models declare it today."""
    path = docs.ROOT / "docs" / "configuration.md"
    expected = docs.configuration_markdown()
    assert path.read_text() == expected, "docs/configuration.md is stale: run python tools/gen_docs.py"
    for name in docs.bundled_distributions():
        if name != "aigc-core":
            assert f"({name})" in expected, f"{name} has no section in docs/configuration.md"
    assert "`generator.latent_dim`" in expected and "`train.max_epochs`" in expected
