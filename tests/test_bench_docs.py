"""docs/benchmarks.md and `make bench` point at benchmarks that exist, with flags they take.

A figure is only as good as the command that reproduces it: a renamed script, a dropped flag or a
moved section would leave the page, or a config comment that cites it, pointing at nothing. These
are text checks and one dry run of the runner; no benchmark runs here.
"""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from aigc_testutil import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
NOT_YET: set[str] = set()  # scripts the page may name before they land


def _runner():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _flags(text: str) -> list[str]:
    return re.findall(r"(?<![\w-])--[a-z][\w-]*", text)


def _takes(script: str, flag: str) -> bool:
    return f'"{flag}"' in (ROOT / "bench" / script).read_text()


def _named_commands() -> list[tuple[str, list[str]]]:
    """Each bench/NAME.py the page names, with the --flags that follow it in the same command."""
    text = re.sub(r"\\\n\s*", " ", DOC.read_text())  # join shell line continuations
    return [(m.group(1), _flags(m.group(2)))
            for m in re.finditer(r"bench/(\w+\.py)([^`|\n]*)", text)]


def _slug(heading: str) -> str:
    """The anchor a markdown renderer (GitHub's rule) gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.M)}


def test_every_command_on_the_page_names_a_script_that_exists_with_flags_it_takes():
    commands = _named_commands()
    assert len(commands) > 20
    for script, flags in commands:
        if script in NOT_YET:
            continue
        assert (ROOT / "bench" / script).is_file(), f"docs/benchmarks.md names bench/{script}, which does not exist"
        for flag in flags:
            assert _takes(script, flag), f"docs/benchmarks.md gives bench/{script} {flag}, which it does not take"


def test_links_to_the_page_and_inside_it_resolve():
    anchors = _anchors(DOC)
    sources = [DOC, ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "plugins").glob("*/README.md")]
    links = [(src.name, m.group(1)) for src in sources
             for m in re.finditer(r"benchmarks\.md#([\w-]+)", src.read_text())]
    links += [(DOC.name, m.group(1)) for m in re.finditer(r"\]\(#([\w-]+)\)", DOC.read_text())]
    assert len(links) > 20
    broken = [link for link in links if link[1] not in anchors]
    assert not broken, f"links to sections docs/benchmarks.md no longer has: {broken}"


def test_the_runner_lists_scripts_that_exist_with_arguments_they_take():
    runner = _runner()
    assert [b for b in runner.BENCHES if b.default], "make bench would run nothing"
    for bench in runner.BENCHES:
        if bench.script in NOT_YET:
            continue
        assert (ROOT / "bench" / bench.script).is_file(), bench.name
        for flag in _flags(" ".join(bench.args)):
            assert _takes(bench.script, flag), f"run_all gives bench/{bench.script} {flag}, which it does not take"


def test_a_benchmark_whose_data_is_missing_is_skipped_with_the_reason(monkeypatch, capsys):
    runner = _runner()
    monkeypatch.delenv("AIGC_DATA_DIR", raising=False)
    monkeypatch.setattr(runner, "run", lambda bench: pytest.fail(f"{bench.name} ran without its data"))
    assert runner.main(["--only", "text-shakespeare,gan-quality"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped: needs AIGC_DATA_DIR") == 4  # as it happens, and again in the summary


def test_an_unknown_benchmark_is_a_one_line_usage_error(capsys):
    runner = _runner()
    with pytest.raises(SystemExit) as stop:
        runner.main(["--only", "gan-thruput"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "run_all: --only: unknown benchmark 'gan-thruput'; did you mean 'gan-throughput'?"
