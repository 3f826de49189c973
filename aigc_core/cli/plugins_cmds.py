"""``aigc plugins``: what is installed, what each component takes, and writing, installing and
removing plugins (the resolving and the safety checks are ``aigc_core/plugins/install.py``'s; this module
parses and prints)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


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
    from ..plugins.install import PROTECTED
    from ..plugins.scaffold import MODALITIES as TEMPLATE_MODALITIES

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
    from ..plugins.registry import KIND_LABELS

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
    from ..contract.params import json_schema

    cls = info.load()
    options = {"generate_options": json_schema(cls.GenerateOptions)} if info.kind == "generator" else {}
    return {**info.as_dict(), "plugin": info.plugin, "params": json_schema(cls.Params), **options}


def cmd_info(args: argparse.Namespace) -> int:
    from ..contract.errors import UsageError
    from ..contract.params import describe_schema
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
    from ..plugins.scaffold import create, names_for

    target = create(args.name, kind=args.kind, modality=args.modality, directory=args.dir)
    names = names_for(args.name)
    print(f"wrote {args.kind} plugin {names['dist']} ({args.modality}) to {target}")
    print(f"next:  aigc plugins install -e {target}   (or: pip install -e {target})")
    print(f"       aigc plugins list                  (shows {names['plugin']!r})")
    print(f"       python -m pytest {target / 'tests'}")
    return 0


# ---------------------------------------------------------------------------------------------
# install / uninstall


def _pip_args(args: argparse.Namespace) -> list[str]:
    from ..contract.errors import UsageError

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


def cmd_install(args: argparse.Namespace) -> int:
    from ..plugins import install
    from ..contract.errors import AigcError

    pip_args = _pip_args(args)
    what = " ".join(args.specs + [f"-e {e}" for e in args.editable])
    if args.dry_run:
        changes = install.dry_run_changes(args.specs, args.editable, _pip_flags(args), install.installed_versions(), what)
    else:  # resolving builds source trees: running the code of what the user asked to install
        changes = install.changes_from_report(install.resolve(pip_args, what), install.installed_versions())
    problems = install.conflicts(changes, install.plugin_requirements())
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
    proc = install.pip("install", *pip_args)
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
    from ..plugins import install
    from ..contract.errors import AigcError, UsageError
    from ..plugins import get_registry

    registry = get_registry()
    plugin = registry.plugins.get(args.name)
    if plugin is not None and plugin.builtin:
        raise UsageError("the built-in plugin is part of aigc-core and cannot be uninstalled")
    dist = plugin.distribution if plugin is not None else None
    if dist is None:
        wanted = install.canonical(args.name)
        matches = [p.distribution for p in registry.plugins.values() if install.canonical(p.distribution) == wanted]
        if not matches:
            known = ", ".join(sorted(n for n, p in registry.plugins.items() if not p.builtin)) or "none installed"
            raise UsageError(f"no installed plugin named {args.name!r} (plugins: {known})")
        dist = matches[0]
    if install.canonical(dist) in install.PROTECTED:
        raise UsageError(f"{dist} is not a plugin; aigc plugins uninstall removes plugins only")
    proc = install.pip("uninstall", "--yes", dist)
    if proc.returncode != 0:
        raise AigcError(f"pip uninstall {dist} failed (exit {proc.returncode}); see pip's output above")
    return 0
