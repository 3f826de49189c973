"""The house's boundaries, checked on the source with ``ast``: no module imports another module's
private (``_x``) names, the core's modules import each other without cycles, and each of the
core's rooms imports only the rooms below it."""

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


#: aigc_core's rooms, bottom to top (docs/architecture.md, "Rooms"): a module imports only from its
#: own room and the rooms before it. The public face (``aigc_core/__init__.py``, ``__main__``)
#: stands above every room, and anything may read a name from it.
ROOMS = [
    ("contract", ["aigc_core.contract", "aigc_core.hookspecs", "aigc_core.plugin_api"]),
    ("helpers", ["aigc_core.helpers"]),
    ("builtin", ["aigc_core.builtin"]),
    ("plugins", ["aigc_core.plugins"]),
    ("store", ["aigc_core.store"]),
    ("generation", ["aigc_core.generation"]),
    ("train", ["aigc_core.train"]),
    ("orchestration", ["aigc_core.orchestration"]),
    ("front", ["aigc_core.server", "aigc_core.cli", "aigc_core.testing"]),
]
PUBLIC_FACE = {"aigc_core", "aigc_core.__main__"}

#: The imports that go up, each with why (all inside a function, run on first use).
UPWARD = {
    ("aigc_core.contract.modalities", "aigc_core.builtin"):
        "the built-in plugin's modalities are registered on first use, so Content('image') works before plugins load",
    ("aigc_core.contract.modalities", "aigc_core.plugins"): "the built-in plugin's name, for that registration",
    ("aigc_core.contract.modalities", "aigc_core.plugins.registry"): "'module:Class' targets load as components' do",
    ("aigc_core.contract.base", "aigc_core.generation.inference"):
        "a metric given a bare generator (no Inference) calls it through the one call path, on use",
}


def _room(module: str) -> int | None:
    for level, (_, prefixes) in enumerate(ROOMS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def _upward_imports(module: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(module, imported module, line) for every import, at any depth, of a room above the module's."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, path.name == "__init__.py", node)
            names = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name in known and name not in PUBLIC_FACE and (_room(name) or 0) > (_room(module) or 0):
                out.append((module, name, node.lineno))
    return out


def test_every_core_module_is_in_a_room():
    homeless = [m for m in _modules(ROOT / "aigc_core") if m not in PUBLIC_FACE and _room(m) is None]
    assert homeless == [], "modules in no room (put each in one, and in ROOMS here and docs/architecture.md):\n" + \
        "\n".join(homeless)


def test_rooms_import_only_the_rooms_below_them():
    modules = _modules(ROOT / "aigc_core")
    known = set(modules)
    found = []
    for module, path in modules.items():
        if module in PUBLIC_FACE or _room(module) is None:  # the test above names a module in no room
            continue
        for src, dst, line in _upward_imports(module, path, known):
            if (src, dst) not in UPWARD:
                found.append(f"{_where(path)}:{line}: {src} ({ROOMS[_room(src)][0]}) imports {dst} "
                             f"({ROOMS[_room(dst)][0]}), a room above it")
    assert found == [], "imports against the flow of the rooms:\n" + "\n".join(found)
    used = {(s, d) for m, p in modules.items() if _room(m) is not None for s, d, _ in _upward_imports(m, p, known)}
    assert set(UPWARD) <= used, f"UPWARD lists imports that are gone: {sorted(set(UPWARD) - used)}"


def test_the_room_check_sees_an_import_against_the_flow(tmp_path):
    planted = tmp_path / "store" / "x.py"
    planted.parent.mkdir()
    planted.write_text("def f():\n    from ..orchestration import pipeline\n")
    known = {"aigc_core.store.x", "aigc_core.orchestration", "aigc_core.orchestration.pipeline"}
    assert _upward_imports("aigc_core.store.x", planted, known) == [
        ("aigc_core.store.x", "aigc_core.orchestration.pipeline", 2)]
