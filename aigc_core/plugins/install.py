"""Installing plugins: what pip would change, and whether that breaks what is installed.

pip runs in the interpreter aigc runs in (as ``llm install`` does). Before anything is installed,
pip's resolution (``--dry-run --report``) is compared with the installed distributions: replacing a
distribution every plugin is built against (``PROTECTED``), or breaking an installed plugin's
requirement, is refused unless forced. A dry run runs no package code: a local source tree's
metadata is read from its static ``pyproject.toml``, everything else is resolved from wheels only.
``aigc plugins install``/``uninstall`` (``cli/plugins_cmds.py``) ask this module and print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Distributions every plugin is built against: a plugin may not replace them (without --force).
PROTECTED = ("torch", "pytorch-lightning", "transformers", "aigc-core")


@dataclass
class Change:
    name: str  # canonical distribution name
    old: str | None  # installed version, None when new
    new: str

    def __str__(self) -> str:
        if self.old is None:
            return f"{self.name} {self.new} (new)"
        if self.old == self.new:
            return f"{self.name} {self.new} (reinstalled)"
        return f"{self.name} {self.old} -> {self.new}"


def canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in versions:
            versions[canonical(name)] = dist.version
    return versions


def plugin_requirements() -> dict[str, list[str]]:
    """Requirements of aigc-core and of every installed plugin distribution, by distribution."""
    from importlib import metadata

    from . import ENTRY_POINT_GROUP

    out: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        is_plugin = any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points)
        if (is_plugin or name == "aigc-core") and name not in out:
            out[name] = list(dist.requires or [])
    return out


def changes_from_report(report: dict, installed: dict[str, str]) -> list[Change]:
    """What pip's ``--report`` says it would install, against what is installed now."""
    changes = []
    for entry in report.get("install", []):
        meta = entry.get("metadata", {})
        name = canonical(meta.get("name", "?"))
        changes.append(Change(name, installed.get(name), str(meta.get("version", "?"))))
    return changes


def conflicts(changes: list[Change], requirements: dict[str, list[str]]) -> list[str]:
    """Why ``changes`` would break the installation: protected packages replaced, or an
    installed plugin's requirement no longer met. Empty when it is safe."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    problems = []
    by_name = {c.name: c for c in changes}
    for change in changes:
        if change.name in PROTECTED and change.old is not None and change.old != change.new:
            problems.append(f"it would replace {change.name} {change.old} with {change.new} "
                            f"({change.name} is shared by every plugin)")
    for dist, reqs in sorted(requirements.items()):
        if dist in by_name:  # being replaced itself: its old requirements no longer matter
            continue
        for text in reqs:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            change = by_name.get(canonical(req.name))
            if change is None:
                continue
            try:
                ok = req.specifier.contains(Version(change.new), prereleases=True)
            except InvalidVersion:
                ok = False
            if not ok:
                problems.append(f"{dist} requires {req}, but {change.name} would become {change.new}")
    return problems


# A dry run runs no package code. pip learns what a source tree, a source archive or a VCS URL
# installs by building it (setup.py, an in-tree backend: the package's own code), so a dry run
# reads a local source tree's static pyproject.toml instead and resolves everything else from
# wheels only (--only-binary=:all:), where metadata is data.
SOURCE_ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")
BUILD_HINT = ("build a wheel first (pip wheel --no-deps SOURCE) and dry-run the wheel, or install without "
              "--dry-run (which builds it)")


def is_source_tree(spec: str) -> bool:
    """A local directory, as pip tells one from a name: it looks like a path and is a folder."""
    looks_like_path = os.sep in spec or bool(os.altsep and os.altsep in spec) or spec.startswith(".")
    return looks_like_path and Path(spec).is_dir()


def needs_build(spec: str) -> bool:
    """True when pip could learn what ``spec`` installs only by building it."""
    text = spec.strip()
    target = text.split("@", 1)[1].strip() if "@" in text and "://" not in text.split("@", 1)[0] else text
    lowered = target.lower().split("#", 1)[0].split("?", 1)[0]
    if lowered.endswith(".whl"):
        return False
    if is_source_tree(text) or lowered.endswith(SOURCE_ARCHIVES):
        return True
    return "://" in target or lowered.startswith(("git+", "hg+", "svn+", "bzr+"))


def static_metadata(path: Path) -> tuple[str, str, list[str]]:
    """Name, version and requirements of a source tree, from pyproject.toml alone, without
    running anything; a UsageError saying why when only its build could tell."""
    import tomllib

    from packaging.requirements import InvalidRequirement, Requirement

    from ..contract.errors import UsageError

    def refuse(why: str) -> UsageError:
        return UsageError(f"{path}: {why}; a dry run runs no package code: {BUILD_HINT}")

    if (path / "setup.py").exists():
        raise refuse("it has a setup.py, and only running it says what it would install")
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        raise refuse("no pyproject.toml, so only its build says what it would install")
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{pyproject}: unreadable ({exc})") from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise refuse("pyproject.toml has no [project] table, so its metadata comes from the build backend")
    dynamic = set(project.get("dynamic") or [])
    for key in ("name", "version", "dependencies"):
        if key in dynamic or (key != "dependencies" and key not in project):
            raise refuse(f"pyproject.toml leaves project.{key} to the build backend")
    name, version, deps = project["name"], project["version"], project.get("dependencies") or []
    if not isinstance(name, str) or not isinstance(version, str) or not isinstance(deps, list) \
            or not all(isinstance(d, str) for d in deps):
        raise UsageError(f"{pyproject}: project.name, project.version and project.dependencies must be "
                         f"a string, a string and a list of strings")
    for dep in deps:
        try:
            req = Requirement(dep)
        except InvalidRequirement as exc:
            raise UsageError(f"{pyproject}: project.dependencies: {exc}") from None
        if req.url and not req.url.lower().endswith(".whl"):
            raise refuse(f"its dependency {dep!r} is a direct reference that pip would build")
    return name, version, deps


def dry_run_changes(specs: list[str], editable: list[str], pip_flags: list[str], installed: dict[str, str],
                    what: str) -> list["Change"]:
    """What installing would change, found without running any package's code."""
    from ..contract.errors import UsageError

    own: list[Change] = []
    to_resolve: list[str] = []
    for spec in [*editable, *specs]:
        if spec in editable or is_source_tree(spec):
            name, version, deps = static_metadata(Path(spec))
            own.append(Change(canonical(name), installed.get(canonical(name)), version))
            to_resolve += deps
        elif needs_build(spec):
            raise UsageError(f"{spec}: a source archive or URL has to be built, running its code, before pip "
                             f"knows what it installs; a dry run runs no package code: {BUILD_HINT}")
        else:
            to_resolve.append(spec)
    changes = list(own)
    if to_resolve:
        report = resolve(["--only-binary=:all:", *pip_flags, *to_resolve], what,
                         hint=" (a dry run considers wheels only: building a source distribution runs its code)")
        changes += [c for c in changes_from_report(report, installed) if c.name not in {o.name for o in own}]
    return changes


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    return subprocess.run(cmd, env=env, text=True, capture_output=capture)


def pip_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [f"exit status {proc.returncode}"])[0]


def resolve(pip_args: list[str], what: str = "", hint: str = "") -> dict:
    """pip's resolution of ``pip_args`` without installing (``--dry-run --report``). pip still
    builds what it cannot resolve otherwise (source trees, sdists): see ``dry_run_changes``."""
    from ..contract.errors import AigcError

    with tempfile.TemporaryDirectory(prefix="aigc-pip-") as tmp:
        report_path = Path(tmp) / "report.json"
        proc = pip("install", "--dry-run", "--quiet", "--report", str(report_path), *pip_args, capture=True)
        if proc.returncode != 0 or not report_path.is_file():
            raise AigcError(f"pip cannot resolve {what or ' '.join(pip_args)}: {pip_error(proc)}{hint}")
        return json.loads(report_path.read_text())


