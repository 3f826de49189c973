"""Plugin discovery under bad plugins: each problem names the plugin and the hook, the rest load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aigc_core.plugins import load_plugins


def fake_dist(root: Path, dist: str, module: str, source: str, api: str | None = None) -> None:
    """An installed-looking distribution: a module plus a .dist-info with entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    eps = f"[aigc]\n{module} = {module}\n"
    if api is not None:
        eps += f"\n[aigc.api]\n{module} = {api}\n"
    (info / "entry_points.txt").write_text(eps)


def load_with(root: Path, dist: str, module: str, source: str, api: str | None = None):
    """Discovery after ``fake_dist`` installed one more plugin: the registry it gives."""
    fake_dist(root, dist, module, source, api)
    return load_plugins()


GOOD = """
    from aigc_core import hookimpl

    @hookimpl
    def aigc_register_postprocessors(register):
        register("fine-step", "nowhere:Fine", modality="text", description="works")
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AIGC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("AIGC_STRICT_PLUGINS", raising=False)
    fake_dist(tmp_path, "aigc-fine", "zz_fine", GOOD)
    return tmp_path


def test_misspelt_hook_argument_names_plugin_and_hook(plugin_dir):
    registry = load_with(plugin_dir, "aigc-typo", "zz_typo", """
        from aigc_core import hookimpl

        @hookimpl
        def aigc_register_generators(regster):
            regster("typo-gen", "nowhere:Gen", modality="image")
    """)
    problems = [p for p in registry.problems if "zz_typo" in p]
    assert len(problems) == 1
    assert "aigc-typo" in problems[0] and "aigc_register_generators" in problems[0]
    assert "'regster'" in problems[0] and "register" in problems[0]
    assert "\n" not in problems[0]
    assert "zz_typo" not in registry.plugins
    assert "fine-step" in registry.names("postprocessor")  # the others keep working


def test_misspelt_hook_name_is_reported_with_a_suggestion(plugin_dir):
    registry = load_with(plugin_dir, "aigc-badhook", "zz_badhook", """
        from aigc_core import hookimpl

        @hookimpl
        def aigc_register_generator(register):
            register("x", "nowhere:X", modality="image")
    """)
    problem = next(p for p in registry.problems if "zz_badhook" in p)
    assert "unknown hook 'aigc_register_generator'" in problem
    assert "did you mean 'aigc_register_generators'" in problem
    assert "fine-step" in registry.names("postprocessor")


def test_plugin_for_another_api_major_is_skipped_unimported(plugin_dir):
    registry = load_with(plugin_dir, "aigc-future", "zz_future", """
        raise RuntimeError("imported although it targets another plugin API")
    """, api="aigc_core.plugin_api:v5")
    problem = next(p for p in registry.problems if "zz_future" in p)
    assert "targets aigc plugin API 5.x" in problem and "provides 4.0" in problem and "skipped" in problem
    assert "zz_future" not in sys.modules
    assert "fine-step" in registry.names("postprocessor")


def test_current_api_declaration_loads(plugin_dir):
    registry = load_with(plugin_dir, "aigc-now", "zz_now", GOOD.replace("fine-step", "now-step"),
                         api="aigc_core.plugin_api:v4")
    assert not [p for p in registry.problems if "zz_now" in p]
    assert "now-step" in registry.names("postprocessor")
    import aigc_core.plugin_api

    assert aigc_core.plugin_api.v4.split(".")[0] == "4"  # the declared reference really exists


def test_a_version_1_plugin_is_skipped_with_what_to_change(plugin_dir):
    registry = load_with(plugin_dir, "aigc-old", "zz_old", """
        raise RuntimeError("imported although it targets plugin API 1")
    """, api="aigc_core.plugin_api:v1")
    problems = [p for p in registry.problems if "zz_old" in p]
    assert len(problems) == 1 and "\n" not in problems[0]
    problem = problems[0]
    assert "(distribution aigc-old) targets aigc plugin API 1" in problem and "skipped" in problem
    for change in ("subclass of aigc_core.Params instead of a @dataclass", "Field(default, description=",
                   "replace validate() by Field bounds", "aigc_core.ParamError", "model_dump()",
                   '"aigc_core.plugin_api:v2"', "aigc_core.GeneratorTraining", '"aigc_core.plugin_api:v3"',
                   "generate(self, n, seed, options)", '"aigc_core.plugin_api:v4"'):
        assert change in problem, change
    assert "zz_old" not in sys.modules
    assert "fine-step" in registry.names("postprocessor")


def test_a_version_2_plugin_is_skipped_with_what_to_change(plugin_dir):
    """Plugin API 3: a generator is a plain module and its training a GeneratorTraining; a plugin
    whose generators are still LightningModules is told so, and never imported."""
    registry = load_with(plugin_dir, "aigc-v2", "zz_v2", """
        raise RuntimeError("imported although it targets plugin API 2")
    """, api="aigc_core.plugin_api:v2")
    problems = [p for p in registry.problems if "zz_v2" in p]
    assert len(problems) == 1 and "\n" not in problems[0]
    assert "(distribution aigc-v2) targets aigc plugin API 2" in problems[0] and "skipped" in problems[0]
    for change in ("subclass of aigc_core.GeneratorTraining", "self.generator", 'training = "package.module:Class"',
                   '"aigc_core.plugin_api:v3"', "generate(self, n, seed, options)", '"aigc_core.plugin_api:v4"'):
        assert change in problems[0], change
    assert "zz_v2" not in sys.modules


def test_a_version_3_plugin_is_skipped_with_its_one_line_of_what_to_change(plugin_dir):
    """Plugin API 4: generate(n, seed, options) takes the validated options object, and Inference
    does eval mode, no-grad, label and seed checks; a plugin whose generate still spreads each option
    into a keyword argument is told what to change in one line, and never imported."""
    registry = load_with(plugin_dir, "aigc-v3", "zz_v3", """
        raise RuntimeError("imported although it targets plugin API 3")
    """, api="aigc_core.plugin_api:v3")
    problems = [p for p in registry.problems if "zz_v3" in p]
    assert len(problems) == 1 and "\n" not in problems[0]
    problem = problems[0]
    assert "(distribution aigc-v3) targets aigc plugin API 3; this aigc-core provides 4.0, skipped" in problem
    for change in ("generate(self, n, seed, options)", "read options.NAME", "stream(self, seed, options)",
                   "@torch.no_grad()", "eval()/train()", "self.num_classes", "aigc_core.testing.generate",
                   '"aigc_core.plugin_api:v4"'):
        assert change in problem, change
    assert "GeneratorTraining" not in problem  # only the step from 3 to 4
    assert "zz_v3" not in sys.modules
    assert "fine-step" in registry.names("postprocessor")


def test_an_undeclared_plugin_with_dataclass_params_is_told_what_to_change(plugin_dir):
    """A plugin that declares no API version loads, but its version-1 component is refused when
    used, naming the component and the same changes."""
    fake_dist(plugin_dir, "aigc-oldish", "zz_oldish", """
        from dataclasses import dataclass

        from aigc_core import hookimpl

        @dataclass
        class OldParams:
            strength: float = 1.0

        class Old:
            Params = OldParams

        @hookimpl
        def aigc_register_postprocessors(register):
            register("old-step", Old, modality="text", description="version 1")
    """)
    from aigc_core.contract.errors import PluginError

    registry = load_plugins()
    with pytest.raises(PluginError, match=r"post-processor 'old-step' of plugin 'zz_oldish' declares Params as a "
                                          r"dataclass \(plugin API 1\); to update it: make each Params"):
        registry.get("postprocessor", "old-step", "postprocess[0].name").load()


def test_unreadable_api_declaration_is_reported(plugin_dir):
    registry = load_with(plugin_dir, "aigc-odd", "zz_odd", GOOD.replace("fine-step", "odd-step"), api="zz_odd:version")
    problem = next(p for p in registry.problems if "zz_odd" in p)
    assert "aigc_core.plugin_api:v<major>" in problem
    assert "odd-step" not in registry.names("postprocessor")


def test_trace_hooks_prints_each_call_with_plugins_and_timing(tmp_path):
    code = "from aigc_core.plugins import load_plugins; load_plugins()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**_env(), "AIGC_TRACE_HOOKS": "1"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("aigc trace: aigc_register_data_sources -> [") and "builtin" in line for line in lines)
    assert any(line.startswith("aigc trace: aigc_register_data_sources done in ") and line.endswith(" ms")
               for line in lines)
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert "aigc trace" not in quiet.stderr


def _env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return env


CHECK_LIGHT = """
import sys
from aigc_core.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "pytorch_lightning", "lightning", "transformers", "torchaudio", "diffusers")
               if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["plugins", "list"], ["plugins", "list", "--all", "--json"]])
def test_help_and_list_import_no_heavy_library(argv):
    proc = subprocess.run([sys.executable, "-c", CHECK_LIGHT.format(argv=argv)], capture_output=True,
                          text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout[-300:]
    if "--json" in argv:
        listing = json.loads(proc.stdout[: proc.stdout.rindex("HEAVY=")])
        builtin = [p for p in listing if p["builtin"]]
        assert builtin and builtin[0]["name"] == "builtin"
        assert any(c["name"] == "sklearn-digits" for c in builtin[0]["components"])


def test_a_plugin_adds_a_modality_that_any_plugin_may_use(plugin_dir):
    """Modalities are registrable: ``zz_a_uses`` loads before ``zz_midi`` yet may use its modality,
    because every plugin's modalities are registered before any component."""
    from aigc_core import Content, known_modalities

    fake_dist(plugin_dir, "aigc-a-uses", "zz_a_uses", """
        from aigc_core import hookimpl

        @hookimpl
        def aigc_register_postprocessors(register):
            register("quantise", "nowhere:Quantise", modality="midi", description="snaps notes to a grid")
    """)
    fake_dist(plugin_dir, "aigc-midi", "zz_midi", """
        from aigc_core import hookimpl

        @hookimpl
        def aigc_register_modalities(register):
            register("midi", description="list of (pitch, start_s, duration_s) tuples")
    """)
    registry = load_plugins()
    assert [p for p in registry.problems if "zz_" in p] == []
    assert "midi" in known_modalities() and registry.plugins["zz_midi"].modalities == ["midi"]
    assert registry.get("postprocessor", "quantise", "postprocess[0].name", modality="midi").plugin == "zz_a_uses"
    assert Content("midi", []).modality == "midi"
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        Content("video", [])


def test_a_bad_modality_name_is_reported_and_the_rest_load(plugin_dir):
    registry = load_with(plugin_dir, "aigc-badmod", "zz_badmod", """
        from aigc_core import hookimpl

        @hookimpl
        def aigc_register_modalities(register):
            register("Video Clips")
    """)
    problem = next(p for p in registry.problems if "zz_badmod" in p)
    assert "aigc_register_modalities" in problem and "'Video Clips'" in problem and "lowercase" in problem
    assert "fine-step" in registry.names("postprocessor")
