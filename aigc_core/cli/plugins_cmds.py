"""``aigc plugins``: what is installed, what each component takes, and writing, installing and
removing plugins (pip, run in the interpreter aigc runs in, as ``llm install`` does)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Distributions every plugin is built against: a plugin may not replace them (without --force).
PROTECTED = ("torch", "pytorch-lightning", "transformers", "aigc-core")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    plugins = sub.add_parser("plugins", help="list and inspect plugins", description="List and inspect plugins.")
    psub = plugins.add_subparsers(dest="plugins_command", metavar="SUBCOMMAND", parser_class=type(plugins))

    p = psub.add_parser("list", help="installed plugins and their components")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="include the core's built-in plugin")
    p.set_defaults(func=cmd_list)

    p = psub.add_parser("info", help="a plugin's or a component's parameters")
    p.add_argument("name", help="plugin name, or component name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = psub.add_parser("new", help="write a new plugin package, ready to install and test",
                        description="Write a plugin package: pyproject.toml with the aigc entry point, the hook "
                                    "module, a minimal working component, a README and contract tests.")
    p.add_argument("name", help="distribution name, e.g. aigc-sparkle")
    p.add_argument("--kind", default="generator", choices=("generator", "post-processor", "data-source"),
                   help="the component it provides (default: generator)")
    from ..scaffold import MODALITIES as TEMPLATE_MODALITIES

    p.add_argument("--modality", default="image", choices=TEMPLATE_MODALITIES,
                   help="the content it handles (default: image)")
    p.add_argument("--dir", help="where to write it (default: ./NAME); must be absent or empty")
    p.set_defaults(func=cmd_new)

    p = psub.add_parser("install", help="pip-install plugins, refusing changes that would break the installation",
                        description="Install plugins with pip in the interpreter aigc runs in. pip first resolves "
                                    "without installing (a dry run with a report); aigc refuses, listing each "
                                    "change, when that would replace " + ", ".join(PROTECTED) +
                                    " or break a requirement of an installed plugin.")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="what pip installs: a name, name==version, a path, a wheel")
    p.add_argument("-e", "--editable", action="append", default=[], metavar="PATH",
                   help="install a local plugin in editable mode (repeatable)")
    p.add_argument("-U", "--upgrade", action="store_true", help="upgrade the named packages")
    p.add_argument("--force", action="store_true", help="install even if it replaces protected packages or "
                                                          "breaks another plugin's requirements")
    p.add_argument("--dry-run", action="store_true",
                   help="only show what would change, running no package's code: wheels only, and a local "
                        "source tree is read from its static pyproject.toml (one that needs its build to say "
                        "what it installs, such as a setup.py, is refused)")
    p.add_argument("--no-index", action="store_true", help="pip: do not use the package index")
    p.add_argument("-f", "--find-links", action="append", default=[], metavar="DIR",
                   help="pip: look for packages here too (repeatable)")
    p.add_argument("--no-build-isolation", action="store_true",
                   help="pip: build with the setuptools already installed (offline builds)")
    p.set_defaults(func=cmd_install)

    p = psub.add_parser("uninstall", help="pip-uninstall a plugin")
    p.add_argument("name", help="plugin name (as aigc plugins list shows it) or distribution name")
    p.set_defaults(func=cmd_uninstall)
    plugins.set_defaults(func=lambda args: plugins.print_help() or 2)


def cmd_list(args: argparse.Namespace) -> int:
    from ..plugins import get_registry
    from ..registry import KIND_LABELS

    registry = get_registry()
    plugins = [p for p in registry.plugins.values() if args.all or not p.builtin]
    if args.json:
        print(json.dumps([p.as_dict() for p in plugins], indent=2))
        return 0
    if not plugins:
        print("no plugins installed (aigc plugins list --all shows the built-in components)")
    for p in plugins:
        label = " (built-in)" if p.builtin else ""
        print(f"{p.name} {p.version}{label}  [{p.distribution}]")
        for c in p.components:
            print(f"  {KIND_LABELS[c.kind]:<15} {c.name:<18} {c.modality:<12} {c.description}")
    return 0


def component_details(info) -> dict:
    """The component's entry of ``plugins list --json`` plus the JSON Schema of its parameters
    (and, for a generator, of its generation options): the schema the web form and the docs use."""
    from ..params import json_schema

    cls = info.load()
    options = {"generate_options": json_schema(cls.GenerateOptions)} if info.kind == "generator" else {}
    return {**info.as_dict(), "plugin": info.plugin, "params": json_schema(cls.Params), **options}


def cmd_info(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..params import describe_schema
    from ..plugins import get_registry

    registry = get_registry()
    plugin = registry.plugins.get(args.name)
    components = plugin.components if plugin else [c for c in registry.all_components() if c.name == args.name]
    if plugin is None and not components:
        raise UsageError(f"no plugin or component named {args.name!r} (plugins: {', '.join(sorted(registry.plugins))})")
    data = {**(plugin.as_dict() if plugin else {}), "components": [component_details(c) for c in components]}
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    if plugin is not None:
        print(f"{plugin.name} {plugin.version}  [{plugin.distribution}]")
    for c in data["components"]:
        print(f"{c['kind']} {c['name']} ({c['modality']}, plugin {c['plugin']}): {c['description']}")
        for section in ("params", "generate_options"):
            rows = describe_schema(c.get(section, {}))
            if rows:
                print(f"  {section.replace('_', ' ')}:")
            for f in rows:
                default = "required" if f["required"] else f"default {f['default']!r}"
                kind = f"{f['type']} {f['bounds']}" if f["bounds"] else f["type"]
                print(f"    {f['name']}: {kind} ({default}){'  ' + f['help'] if f['help'] else ''}")
    return 0


# ---------------------------------------------------------------------------------------------
# new


def cmd_new(args: argparse.Namespace) -> int:
    from ..scaffold import create, names_for

    target = create(args.name, kind=args.kind, modality=args.modality, directory=args.dir)
    names = names_for(args.name)
    print(f"wrote {args.kind} plugin {names['dist']} ({args.modality}) to {target}")
    print(f"next:  aigc plugins install -e {target}   (or: pip install -e {target})")
    print(f"       aigc plugins list                  (shows {names['plugin']!r})")
    print(f"       python -m pytest {target / 'tests'}")
    return 0


# ---------------------------------------------------------------------------------------------
# install / uninstall


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


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) not in versions:
            versions[_canonical(name)] = dist.version
    return versions


def plugin_requirements() -> dict[str, list[str]]:
    """Requirements of aigc-core and of every installed plugin distribution, by distribution."""
    from importlib import metadata

    from ..plugins import ENTRY_POINT_GROUP

    out: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"] or "")
        is_plugin = any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points)
        if (is_plugin or name == "aigc-core") and name not in out:
            out[name] = list(dist.requires or [])
    return out


def changes_from_report(report: dict, installed: dict[str, str]) -> list[Change]:
    """What pip's ``--report`` says it would install, against what is installed now."""
    changes = []
    for entry in report.get("install", []):
        meta = entry.get("metadata", {})
        name = _canonical(meta.get("name", "?"))
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
            change = by_name.get(_canonical(req.name))
            if change is None:
                continue
            try:
                ok = req.specifier.contains(Version(change.new), prereleases=True)
            except InvalidVersion:
                ok = False
            if not ok:
                problems.append(f"{dist} requires {req}, but {change.name} would become {change.new}")
    return problems


def _pip_args(args: argparse.Namespace) -> list[str]:
    from ..errors import UsageError

    if not args.specs and not args.editable:
        raise UsageError("aigc plugins install: give at least one SPEC or -e PATH")
    for word in [*args.specs, *args.editable]:
        # after "--" argparse hands anything over as a SPEC; pip would read it as an option and
        # could undo the safety flags (--target elsewhere, a real install instead of a dry run)
        if word.startswith("-"):
            raise UsageError(f"aigc plugins install: {word!r} is not a SPEC; pip options cannot be passed "
                             f"through (aigc's own options are in 'aigc plugins install --help')")
    return _pip_flags(args) + [w for e in args.editable for w in ("-e", e)] + list(args.specs)


def _pip_flags(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.upgrade:
        out.append("--upgrade")
    if args.no_index:
        out.append("--no-index")
    if args.no_build_isolation:
        out.append("--no-build-isolation")
    for link in args.find_links:
        out += ["--find-links", link]
    return out


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

    from ..errors import UsageError

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


def dry_run_changes(args: argparse.Namespace, installed: dict[str, str], what: str) -> list["Change"]:
    """What installing would change, found without running any package's code."""
    from ..errors import UsageError

    own: list[Change] = []
    to_resolve: list[str] = []
    for spec in [*args.editable, *args.specs]:
        if spec in args.editable or is_source_tree(spec):
            name, version, deps = static_metadata(Path(spec))
            own.append(Change(_canonical(name), installed.get(_canonical(name)), version))
            to_resolve += deps
        elif needs_build(spec):
            raise UsageError(f"{spec}: a source archive or URL has to be built, running its code, before pip "
                             f"knows what it installs; a dry run runs no package code: {BUILD_HINT}")
        else:
            to_resolve.append(spec)
    changes = list(own)
    if to_resolve:
        report = resolve(["--only-binary=:all:", *_pip_flags(args), *to_resolve], what,
                         hint=" (a dry run considers wheels only: building a source distribution runs its code)")
        changes += [c for c in changes_from_report(report, installed) if c.name not in {o.name for o in own}]
    return changes


def _pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    return subprocess.run(cmd, env=env, text=True, capture_output=capture)


def _pip_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [f"exit status {proc.returncode}"])[0]


def resolve(pip_args: list[str], what: str = "", hint: str = "") -> dict:
    """pip's resolution of ``pip_args`` without installing (``--dry-run --report``). pip still
    builds what it cannot resolve otherwise (source trees, sdists): see ``dry_run_changes``."""
    from ..errors import AigcError

    with tempfile.TemporaryDirectory(prefix="aigc-pip-") as tmp:
        report_path = Path(tmp) / "report.json"
        proc = _pip("install", "--dry-run", "--quiet", "--report", str(report_path), *pip_args, capture=True)
        if proc.returncode != 0 or not report_path.is_file():
            raise AigcError(f"pip cannot resolve {what or ' '.join(pip_args)}: {_pip_error(proc)}{hint}")
        return json.loads(report_path.read_text())


def cmd_install(args: argparse.Namespace) -> int:
    from ..errors import AigcError

    pip_args = _pip_args(args)
    what = " ".join(args.specs + [f"-e {e}" for e in args.editable])
    if args.dry_run:
        changes = dry_run_changes(args, installed_versions(), what)
    else:  # resolving builds source trees: running the code of what the user asked to install
        changes = changes_from_report(resolve(pip_args, what), installed_versions())
    problems = conflicts(changes, plugin_requirements())
    if changes:
        print(f"installing {what} would change:", file=sys.stderr)
        for change in changes:
            print(f"  {change}", file=sys.stderr)
    else:
        print(f"{what}: already installed, nothing to change", file=sys.stderr)
    if problems:
        print("which would break the installation:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        if not args.force:
            raise AigcError(f"refused to install {what}: {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                            + "; rerun with --force to install anyway")
        print("installing anyway (--force)", file=sys.stderr)
    if args.dry_run or not changes:
        return 0
    proc = _pip("install", *pip_args)
    if proc.returncode != 0:
        raise AigcError(f"pip install {what} failed (exit {proc.returncode}); see pip's output above")
    _report_new_plugins()
    return 0


def _report_new_plugins() -> None:
    """List what is installed now, from a fresh process (this one has stale metadata caches)."""
    proc = subprocess.run([sys.executable, "-m", "aigc_core", "plugins", "list"], text=True, capture_output=True)
    if proc.returncode == 0:
        print(proc.stdout, end="")


def cmd_uninstall(args: argparse.Namespace) -> int:
    from ..errors import AigcError, UsageError
    from ..plugins import get_registry

    registry = get_registry()
    plugin = registry.plugins.get(args.name)
    if plugin is not None and plugin.builtin:
        raise UsageError("the built-in plugin is part of aigc-core and cannot be uninstalled")
    dist = plugin.distribution if plugin is not None else None
    if dist is None:
        wanted = _canonical(args.name)
        matches = [p.distribution for p in registry.plugins.values() if _canonical(p.distribution) == wanted]
        if not matches:
            known = ", ".join(sorted(n for n, p in registry.plugins.items() if not p.builtin)) or "none installed"
            raise UsageError(f"no installed plugin named {args.name!r} (plugins: {known})")
        dist = matches[0]
    if _canonical(dist) in PROTECTED:
        raise UsageError(f"{dist} is not a plugin; aigc plugins uninstall removes plugins only")
    proc = _pip("uninstall", "--yes", dist)
    if proc.returncode != 0:
        raise AigcError(f"pip uninstall {dist} failed (exit {proc.returncode}); see pip's output above")
    return 0
