"""``aigc plugins new``: write a plugin package that installs, lists and passes its tests as is.

The templates under ``templates/`` are plain text with ``{{placeholders}}`` (no template engine
to install); they ship as package data of aigc-core. Every file is written under a temporary
directory first and moved into place at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from ...contract.errors import UsageError

KINDS = ("generator", "post-processor", "data-source")
#: The modalities the templates cover (a plugin's own modality starts from the nearest one).
MODALITIES = ("image", "text", "audio")

#: A valid distribution name (PEP 508 / the core metadata spec).
_DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

_HOOKS = {
    "generator": "aigc_register_generators",
    "post-processor": "aigc_register_postprocessors",
    "data-source": "aigc_register_data_sources",
}
_MODULES = {"generator": "model", "post-processor": "post", "data-source": "source"}
_USAGE = {
    "generator": "In a pipeline config:\n\n    generator: {{name: {component}}}\n\nand `aigc plugins info {component}` lists its parameters.",
    "post-processor": "In a pipeline config:\n\n    postprocess: [{{name: {component}}}]\n\nand `aigc plugins info {component}` lists its parameters.",
    "data-source": "In a pipeline config:\n\n    data: {{source: {component}}}\n\nand `aigc plugins info {component}` lists its parameters.",
}


def names_for(name: str) -> dict[str, str]:
    """Distribution, package, plugin, component and class names derived from ``name``."""
    if not _DIST_NAME.match(name):
        raise UsageError(
            f"plugin name {name!r} is not a valid distribution name: use letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit (e.g. aigc-sparkle)"
        )
    normal = re.sub(r"[-_.]+", "-", name).lower()
    package = normal.replace("-", "_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise UsageError(f"plugin name {name!r} gives the package name {package!r}, which is not a "
                         "Python identifier; start it with a letter (e.g. aigc-{name})")
    plugin = normal[len("aigc-"):] if normal.startswith("aigc-") and len(normal) > len("aigc-") else normal
    words = [w for w in re.split(r"[-]", plugin) if w]
    cls = "".join(w[:1].upper() + w[1:] for w in words)
    if not cls[:1].isalpha():
        cls = "Plugin" + cls
    return {"dist": normal, "package": package, "plugin": plugin, "component": plugin, "Class": cls}


def _template(relative: str) -> str:
    return resources.files(__name__).joinpath("templates", *relative.split("/")).read_text(encoding="utf-8")


def _render(text: str, values: dict[str, str], where: str) -> str:
    def sub(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:  # a template bug, not a user error
            raise KeyError(f"template {where} uses unknown placeholder {key!r}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def plan(name: str, kind: str, modality: str) -> dict[str, str]:
    """The files of the new plugin, relative path -> content."""
    if kind not in KINDS:
        raise UsageError(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if modality not in MODALITIES:
        raise UsageError(f"--modality: expected one of {', '.join(MODALITIES)}, got {modality!r}")
    from ... import PLUGIN_API_VERSION, __version__

    values = names_for(name)
    major = int(__version__.split(".")[0])
    values.update(
        kind=kind.replace("-", " "),
        modality=modality,
        module=_MODULES[kind],
        hook=_HOOKS[kind],
        description=f"{values['Class']}: a {modality} {kind.replace('-', ' ')} for aigc",
        core_version=".".join(__version__.split(".")[:2]),
        core_next_major=str(major + 1),
        api_major=PLUGIN_API_VERSION.split(".")[0],
    )
    values["usage"] = _USAGE[kind].format(component=values["component"])
    pkg = values["package"]
    sources = {
        "pyproject.toml": "common/pyproject.toml.tmpl",
        "README.md": "common/README.md.tmpl",
        f"{pkg}/__init__.py": "common/__init__.py.tmpl",
        f"{pkg}/plugin.py": "common/plugin.py.tmpl",
        f"{pkg}/{values['module']}.py": f"{kind}/{modality}.py.tmpl",
        "tests/test_contract.py": f"{kind}/test_contract.py.tmpl",
    }
    if kind == "generator":  # the LightningModule that trains it lives apart: generating needs no Lightning
        sources[f"{pkg}/training.py"] = f"generator/{modality}_training.py.tmpl"
    return {path: _render(_template(src), values, src) for path, src in sources.items()}


def create(name: str, kind: str = "generator", modality: str = "image", directory: str | Path | None = None) -> Path:
    """Write the plugin into ``directory`` (default ``./NAME``), which must be absent or empty."""
    files = plan(name, kind, modality)
    target = Path(directory if directory is not None else names_for(name)["dist"]).expanduser()
    if target.exists():
        if not target.is_dir():
            raise UsageError(f"{target}: exists and is not a directory")
        if any(target.iterdir()):
            raise UsageError(f"{target}: directory exists and is not empty; choose another --dir")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{parent}: parent directory does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a plugin folder is not
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
