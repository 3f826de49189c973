"""``aigc plugins``: what is installed, and what each component takes."""

from __future__ import annotations

import argparse
import json


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
    plugins.set_defaults(func=lambda args: plugins.print_help() or 2)


def cmd_list(args: argparse.Namespace) -> int:
    from ..plugins import get_registry

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
            print(f"  {c.as_dict()['kind']:<15} {c.name:<18} {c.modality:<12} {c.description}")
    return 0


def component_details(info) -> dict:
    from ..config import describe_params

    cls = info.load()
    details = {**info.as_dict(), "plugin": info.plugin, "params": describe_params(cls.Params)}
    options = getattr(cls, "GenerateOptions", None)
    if options is not None and info.kind == "generator":
        details["generate_options"] = describe_params(options)
    return details


def cmd_info(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..plugins import get_registry

    registry = get_registry()
    plugin = registry.plugins.get(args.name)
    if plugin is not None:
        data = {**plugin.as_dict(), "components": [component_details(c) for c in plugin.components]}
    else:
        matches = [c for c in registry.all_components() if c.name == args.name]
        if not matches:
            known = ", ".join(sorted(registry.plugins))
            raise UsageError(f"no plugin or component named {args.name!r} (plugins: {known})")
        data = {"components": [component_details(c) for c in matches]}
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    if plugin is not None:
        print(f"{plugin.name} {plugin.version}  [{plugin.distribution}]")
    for c in data["components"]:
        print(f"{c['kind']} {c['name']} ({c['modality']}, plugin {c['plugin']}): {c['description']}")
        for section in ("params", "generate_options"):
            if c.get(section):
                print(f"  {section.replace('_', ' ')}:")
                for f in c[section]:
                    default = "required" if f["required"] else f"default {f['default']!r}"
                    print(f"    {f['name']}: {f['type']} ({default})")
    return 0
