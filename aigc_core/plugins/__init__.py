"""Plugin discovery: the built-in plugin first, then entry points of the group ``aigc``.

Environment:

* ``AIGC_LOAD_PLUGINS=a,b`` loads only those plugins (by entry-point or distribution name);
  set and empty, it loads none but the built-in one, as ``LLM_LOAD_PLUGINS`` does for ``llm``.
  A name that matches no installed plugin is reported (a typo would otherwise load nothing silently).
* ``AIGC_STRICT_PLUGINS=1`` turns every plugin problem into an error (CI, plugin authors).
* ``AIGC_TRACE_HOOKS=1`` prints each hook call with its plugin and timing to stderr.

A plugin that fails to import or to register is reported (plugin, distribution, error) and
skipped; the rest keep working. That includes a plugin raising ``SystemExit`` at import: only
``KeyboardInterrupt`` passes through.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
from importlib import metadata
from typing import Any

import pluggy

from .. import hookspecs
from ..contract.errors import PluginError, did_you_mean
from .registry import KINDS, PluginInfo, Registry

ENTRY_POINT_GROUP = "aigc"
#: Where a plugin declares the plugin API version it targets (see ``aigc_core.plugin_api``).
API_GROUP = "aigc.api"
BUILTIN_NAME = "builtin"
HOOKS = {
    "data_source": "aigc_register_data_sources",
    "generator": "aigc_register_generators",
    "postprocessor": "aigc_register_postprocessors",
    "metric": "aigc_register_metrics",
    "exporter": "aigc_register_exporters",
    "modality": "aigc_register_modalities",
}
MODALITY = "modality"

from ..hookspecs import hookimpl  # noqa: E402,F401 - beside hookspec; this old import path keeps working

_registry: Registry | None = None


def strict_mode() -> bool:
    return os.environ.get("AIGC_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


def _selected() -> set[str] | None:
    raw = os.environ.get("AIGC_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _core_version() -> str:
    try:
        return metadata.version("aigc-core")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _trace(pm: pluggy.PluginManager) -> None:
    starts: list[float] = []

    def before(hook_name, impls, kwargs):
        starts.append(time.perf_counter())
        names = ", ".join(impl.plugin_name for impl in impls)
        print(f"aigc trace: {hook_name} -> [{names}]", file=sys.stderr)

    def after(outcome, hook_name, impls, kwargs):
        elapsed = (time.perf_counter() - starts.pop()) * 1000 if starts else 0.0
        print(f"aigc trace: {hook_name} done in {elapsed:.2f} ms", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def load_plugins() -> Registry:
    """Discover plugins and collect their components into a fresh Registry."""
    from .. import builtin

    registry = Registry()
    pm = pluggy.PluginManager("aigc")
    pm.add_hookspecs(hookspecs)
    if os.environ.get("AIGC_TRACE_HOOKS", "").lower() in ("1", "true", "yes"):
        _trace(pm)

    infos: dict[str, PluginInfo] = {}
    pm.register(builtin, name=BUILTIN_NAME)
    infos[BUILTIN_NAME] = PluginInfo(BUILTIN_NAME, _core_version(), "aigc-core", builtin=True)

    selected = _selected()
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if selected:
        known = {ep.name for ep in entry_points} | {ep.dist.name for ep in entry_points if ep.dist}
        for name in sorted(selected - known - {BUILTIN_NAME}):
            hint = did_you_mean(name, sorted(known))
            registry.problems.append(f"AIGC_LOAD_PLUGINS names {name!r}, which is not an installed plugin{hint} "
                                     f"(installed: {', '.join(sorted(known)) or 'none'})")
    for ep in entry_points:
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if selected is not None and ep.name not in selected and dist not in selected:
            continue
        if ep.name in infos:
            registry.problems.append(
                f"plugin {ep.name!r} (distribution {dist}) has the same name as an earlier plugin; skipped"
            )
            continue
        try:
            problem = _api_problem(ep, dist)
            if problem:
                registry.problems.append(problem)
                continue
            module = ep.load()
            invalid = _hook_problems(pm, module)
            if invalid:
                registry.problems.extend(
                    f"plugin {ep.name!r} (distribution {dist}): {text}; skipped" for text in invalid
                )
                continue
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            registry.problems.append(f"plugin {ep.name!r} (distribution {dist}) is invalid: {detail}; skipped")
            continue
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the others down
            registry.problems.append(
                f"plugin {ep.name!r} (distribution {dist}) failed to load: {type(exc).__name__}: {exc}; skipped"
            )
            continue
        infos[ep.name] = PluginInfo(ep.name, version, dist)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = getattr(exc, "plugin", None)
        plugin_name = pm.get_name(name) if name is not None else "?"
        registry.problems.append(f"plugin {plugin_name!r} implements an unknown hook: {exc}")
        if name is not None:
            pm.unregister(name)
            infos.pop(plugin_name, None)

    for kind in (MODALITY, *KINDS):  # modalities first: any plugin's components may use them
        hook_name = HOOKS[kind]
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin = infos.get(impl.plugin_name)
            if plugin is None:
                continue
            others = [p for n, p in pm.list_name_plugin() if n != impl.plugin_name]
            subset = pm.subset_hook_caller(hook_name, remove_plugins=others)
            register = registry.modality_register_function(plugin) if kind == MODALITY \
                else registry.register_function(kind, plugin)
            try:
                subset(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                registry.problems.append(
                    f"plugin {plugin.name!r} (distribution {plugin.distribution}) failed in "
                    f"{hook_name}: {type(exc).__name__}: {exc}"
                )
    registry.plugins = infos
    if registry.problems and strict_mode():
        raise PluginError("; ".join(registry.problems) + " (AIGC_STRICT_PLUGINS is set)")
    return registry


def _hook_problems(pm: pluggy.PluginManager, module: Any) -> list[str]:
    """What is wrong with a plugin's hook implementations, checked before pluggy sees them.

    pluggy rejects a misspelt argument with a multi-line error at ``register`` and a misspelt
    hook name only later; this names the hook and the offending names in one line each.
    """
    marker = f"{pm.project_name}_impl"
    problems = []
    for attr in sorted(dir(module)):
        func = getattr(module, attr, None)
        opts = getattr(func, marker, None)
        if not isinstance(opts, dict) or not callable(func):
            continue
        hook_name = opts.get("specname") or attr
        caller = getattr(pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        if spec is None:
            if opts.get("optionalhook"):
                continue
            problems.append(f"implements unknown hook {hook_name!r}{did_you_mean(hook_name, HOOKS.values())}")
            continue
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            continue
        taken = [n for n, p in params.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
        unknown = [n for n in taken if n not in spec.argnames]
        if unknown:
            wants = ", ".join(repr(n) for n in unknown)
            takes = ", ".join(spec.argnames)
            problems.append(f"hook {hook_name} has argument(s) {wants} that the hook does not "
                            f"provide (it provides: {takes}); check the spelling")
    return problems


_API_VALUE = re.compile(r"^aigc_core\.plugin_api\s*:\s*v(\d+)$")


def _api_problem(ep: Any, dist: str) -> str | None:
    """A plugin declaring another major plugin-API version is skipped before it is imported.

    The declaration is an entry point ``NAME = "aigc_core.plugin_api:vN"`` in the group
    ``aigc.api`` (see ``aigc_core.plugin_api``); only its text is read. A plugin that declares
    nothing is assumed to target the current version.
    """
    from .. import PLUGIN_API_VERSION
    from ..plugin_api import FROM_V1, FROM_V2, FROM_V3

    if ep.dist is None:
        return None
    declared = None
    for other in ep.dist.entry_points:
        if other.group == API_GROUP and other.name == ep.name:
            declared = other.value.strip()
    if declared is None:
        return None
    match = _API_VALUE.match(declared)
    if match is None:
        return (
            f"plugin {ep.name!r} (distribution {dist}) declares plugin API {declared!r} in the "
            f"entry-point group {API_GROUP!r}; expected \"aigc_core.plugin_api:v<major>\"; skipped"
        )
    major = match.group(1)
    steps = {"1": (FROM_V1, FROM_V2, FROM_V3), "2": (FROM_V2, FROM_V3), "3": (FROM_V3,)}.get(major)
    if steps is not None:
        return (f"plugin {ep.name!r} (distribution {dist}) targets aigc plugin API {major}; this aigc-core "
                f"provides {PLUGIN_API_VERSION}, skipped. To update it: {'; then '.join(steps)}")
    if major != PLUGIN_API_VERSION.split(".")[0]:
        return (
            f"plugin {ep.name!r} (distribution {dist}) targets aigc plugin API {major}.x, "
            f"this aigc-core provides {PLUGIN_API_VERSION}; skipped (install a release of the "
            f"plugin built for API {PLUGIN_API_VERSION.split('.')[0]})"
        )
    return None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use; problems are printed once to stderr."""
    global _registry
    if _registry is None:
        _registry = load_plugins()
        for problem in _registry.problems:
            print(f"aigc: warning: {problem}", file=sys.stderr)
    return _registry
