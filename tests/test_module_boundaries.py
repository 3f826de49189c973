"""The house's boundaries, checked on the source with ``ast``: no module imports another module's
private (``_x``) names, and the core's modules import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from aigc_testutil import ROOT

PACKAGES = [ROOT / "aigc_core", *sorted(p for d in (ROOT / "plugins").glob("aigc-*") for p in d.glob("aigc_*"))]


def _modules(package: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _where(path: Path) -> Path:
    return path.relative_to(ROOT) if ROOT in path.parents else path


def _private_imports(module: str, path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, path.name == "__init__.py", node)
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{_where(path)}:{node.lineno}: from {source} import {alias.name}")
            if any(part.startswith("_") and not part.startswith("__") for part in source.split(".")):
                found.append(f"{_where(path)}:{node.lineno}: imports private module {source}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(p.startswith("_") and not p.startswith("__") for p in alias.name.split(".")):
                    found.append(f"{_where(path)}:{node.lineno}: import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = []
    for package in PACKAGES:
        for module, path in _modules(package).items():
            found += _private_imports(module, path)
    assert found == [], "private names imported across modules:\n" + "\n".join(found)


#: Core modules a plugin may import by name: the contract test kit and the plugin API markers.
PLUGIN_FACING = {"aigc_core", "aigc_core.testing", "aigc_core.hookspecs", "aigc_core.plugin_api"}


def test_plugins_use_only_the_public_api_of_aigc_core():
    found = []
    for package in PACKAGES[1:]:
        for module, path in _modules(package).items():
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                found += [f"{_where(path)}:{node.lineno}: {name}" for name in names
                          if name.startswith("aigc_core.") and name not in PLUGIN_FACING]
    assert found == [], "plugins importing aigc_core's internal modules (export the name from aigc_core):\n" + \
        "\n".join(found)


def _load_time_imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Core modules imported when ``module`` is loaded: module-level statements only (an import
    inside a function runs later, when the cycle is already resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in tree.body:
        nodes = [node]
        if isinstance(node, (ast.If, ast.Try)):  # TYPE_CHECKING guards and optional imports
            nodes = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for n in nodes:
            if isinstance(n, ast.ImportFrom):
                source = _absolute(module, path.name == "__init__.py", n)
                for alias in n.names:
                    candidate = f"{source}.{alias.name}"
                    out.add(candidate if candidate in known else source)
            elif isinstance(n, ast.Import):
                out.update(alias.name for alias in n.names)
    return {m for m in out if m in known and m != module}


def test_no_import_cycles_inside_the_core():
    modules = _modules(ROOT / "aigc_core")
    known = set(modules)
    graph = {m: _load_time_imports(m, p, known) for m, p in modules.items()}
    # a package's __init__ re-exporting its modules is not a cycle with them
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles in aigc_core:\n" + "\n".join(cycles)


def test_the_checks_see_what_they_look_for(tmp_path):
    """The scanners are not vacuous: a planted private import and a planted cycle are found."""
    planted = tmp_path / "pkg" / "a.py"
    planted.parent.mkdir()
    planted.write_text("from .b import _hidden\nfrom . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("from . import a\n")
    assert _private_imports("pkg.a", planted) == [f"{planted}:1: from pkg.b import _hidden"]
    known = {"pkg", "pkg.a", "pkg.b"}
    assert _load_time_imports("pkg.a", planted, known) == {"pkg.b"}
    assert _load_time_imports("pkg.b", tmp_path / "pkg" / "b.py", known) == {"pkg.a"}
