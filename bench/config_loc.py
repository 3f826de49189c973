"""Lines of the core's configuration and validation code (issue 14's target: a third smaller).

Counted (non-blank lines): aigc_core/store/config.py and aigc_core/contract/params.py whole; every parameter
class of the core (a class named ``*Params``/``*Options``, fields, validators and all); the
configuration half of tools/gen_docs.py; the option-schema code of the server; and
``plugins info``'s parameter listing.

    .venv/bin/python bench/config_loc.py
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "aigc_core"
WHOLE = ("aigc_core/store/config.py", "aigc_core/contract/params.py")
FUNCTIONS = {
    "tools/gen_docs.py": ("_default", "_table", "_rows", "_section_doc", "configuration_markdown"),
    "aigc_core/server/models.py": ("_kind", "option_schema"),
    "aigc_core/cli/plugins_cmds.py": ("component_details", "cmd_info"),
}


def lines(source: list[str], node: ast.AST) -> int:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return sum(1 for line in source[start - 1:node.end_lineno] if line.strip())


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help says what it counts
    total = 0
    for path in [*sorted(CORE.rglob("*.py")), ROOT / "tools" / "gen_docs.py"]:
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        source = text.splitlines()
        if rel in WHOLE:
            count = sum(1 for line in source if line.strip())
        else:
            count = 0
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.name.endswith(("Params", "Options")):
                    count += lines(source, node)
                elif isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS.get(rel, ()):
                    count += lines(source, node)
        if count:
            print(f"{count:6d}  {rel}")
        total += count
    print(f"{total:6d}  total")


if __name__ == "__main__":
    main()
