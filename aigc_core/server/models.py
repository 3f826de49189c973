"""The served models: one loaded run each, its option schema, and request validation.

The option schema is the JSON Schema of the generator's ``GenerateOptions`` model, with the
run's configured options as defaults, so a plugin gets a form on the web page and a documented
API without a line of server code.

Personalised runs (an adapter on a base run) that stand on the same base share one copy of it:
the base is loaded once, each run's adapter is attached to it under a name of its own, and every
model of that group generates under one lock, selecting its adapter (or none, for the base) when
its turn comes. A base adapts a whole model's memory to a few adapter tensors, so three adapters
cost little more than one model; a request can never see another adapter's weights because the
selection and the generation happen under the same lock.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..contract.fileoptions import file_options, request_content
from ..contract.params import json_schema
from ..contract.errors import AigcError, ConfigError, UsageError, first_line
from ..contract.modalities import get_modality
from .settings import ServerSettings


class RequestError(Exception):
    """A request the client must change; ``status`` is the HTTP status, ``field`` the culprit."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class ServedModel:
    name: str
    run_dir: Path
    #: The loaded run (``aigc_core.Run``): its generator, config and inference.
    run: Any
    modality: str
    #: JSON Schema of the generation options; each default is what a request without it gets.
    options: dict
    can_stream: bool
    #: Held while the generator runs: batches and stream steps take turns on one model. Models
    #: sharing one base share this lock too (``load_models``).
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: On a shared base: the adapter this model generates with, as attached to the shared generator
    #: (None: the base alone). Meaningless when ``shared`` is False.
    adapter: str | None = None
    #: True when the generator is shared with other served models: each turn selects its adapter.
    shared: bool = False
    #: A personalised model on a shared base: the served name of that base.
    base: str | None = None
    #: A shared base: the models whose adapters it carries, by served name (a request's ``adapter``).
    adapters: dict = field(default_factory=dict)
    #: On a shared base: the generator parameters this model's run gives its generator when loaded
    #: alone (a personalised run's config may change some of its base's), put back on each turn.
    params: Any = None

    @property
    def inference(self) -> Any:
        """The one path from a request to content (defaults + options + seed -> generate -> stamp)."""
        return self.run.inference

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """The generator is this model's inside the block: the lock held and, on a shared base, this
        model's adapter selected. Selecting outside the lock would let a batch for another adapter
        switch it mid-generation."""
        with self.lock:
            if self.shared:
                from ..generation.adapters import activate

                activate(self.run.generator, self.adapter)
                self.run.generator.params = self.params
            yield

    def pick(self, adapter: str | None) -> "ServedModel":
        """The model a request's ``adapter`` field selects: one of this base's adapters, or this model
        itself (None, or its own name)."""
        if adapter is None or adapter == self.name:
            return self
        if adapter in self.adapters:
            return self.adapters[adapter]
        if self.adapters:
            choices = ", ".join(sorted(self.adapters))
            raise RequestError(422, f"adapter: {adapter!r} is not an adapter served on model {self.name!r} "
                                    f"(adapters: {choices}; null for the base alone)", "adapter")
        if self.base:
            raise RequestError(422, f"adapter: model {self.name!r} is itself an adapter; choose among the "
                                    f"adapters of its base {self.base!r}", "adapter")
        raise RequestError(422, f"adapter: model {self.name!r} carries no adapters (it is not the base of a "
                                f"personalised run served here)", "adapter")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "modality": self.modality,
            # how the page shows an item, as the modality says (render: image/audio/text/download)
            "display": dict(get_modality(self.modality).display),
            "generator": self.run.generator_name,
            "stream": self.can_stream,
            "options": self.options,
            "postprocess": [p.name for p in self.run.pipeline.postprocessors],
            # one base in memory for several personalised runs: the names a request's `adapter` takes
            "adapters": sorted(self.adapters),
            "base": self.base,
        }

    def validated_options(self, options: Any, settings: ServerSettings) -> Any:
        """The run's configured options overlaid with the request's, validated (once: the object the
        generator receives) and capped.

        The caps apply to the values the generator will receive, after type coercion: a cap
        checked on the raw JSON is passed by ``"99999999"``, which coercion then makes a number.
        Sizes are checked once on the raw value too, so a huge list is refused before it is coerced.
        File options take the file's content only, never a path (``fileoptions``); the body limit
        bounds them, not the text cap.
        """
        if not isinstance(options, Mapping):
            raise RequestError(422, "options: expected a JSON object", "options")
        files = file_options(self.options)
        check_option_limits(options, settings, files)
        try:
            with request_content():
                opts = self.inference.options(options, "options")
        except ConfigError as exc:
            raise RequestError(422, str(exc), exc.key) from None
        check_option_limits({key: getattr(opts, key) for key in options if key in type(opts).model_fields},
                            settings, files)
        return opts


def check_option_limits(options: Mapping, settings: ServerSettings, files: Sequence[str] = ()) -> None:
    """Every option a request sets: lists and strings bounded, numbers finite and under the cap
    this server sets for that option's name. ``files`` (file options) are bounded by the body limit."""
    for key, value in options.items():
        if key in files:
            continue
        where = f"options.{key}"
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and len(value) > settings.max_samples:
            raise RequestError(422, f"{where}: at most {settings.max_samples} entries, got {len(value)}", where)
        cap = settings.option_caps.get(key)
        for v in values:
            if isinstance(v, str) and len(v) > settings.max_prompt_chars:
                raise RequestError(
                    422, f"{where}: at most {settings.max_prompt_chars} characters, got {len(v)}", where
                )
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise RequestError(422, f"{where}: must be a finite number, got {v}", where)
            if cap is not None and v > cap:
                raise RequestError(422, f"{where}: this server allows at most {cap}, got {v}", where)


def load_models(specs: Sequence[str | Path], loader: Any = None,
                report: Callable[[int, int, Path, "ServedModel | None"], None] | None = None) -> dict[str, ServedModel]:
    """Load each run once. A spec is ``RUN_DIR`` (served under the run's name) or ``NAME=RUN_DIR``.

    Personalised runs whose manifests name the same base run (its fingerprint) share one copy of
    it: the base is a run given here with that fingerprint, or else the run their config names,
    served too (under its run name), so ``adapter: null`` has a model to mean. Runs on different
    bases each get their own base. ``loader`` (tests) replaces ``Run.load`` for runs that share
    nothing.

    ``report(position, total, run_dir, model)`` is called before each run loads (``model`` None)
    and after (the served model): loading takes seconds to minutes, and ``aigc serve`` says so.
    """
    from ..orchestration.run import Run

    if loader is None:
        loader = Run.load
    plan = _plan(specs)
    models: dict[str, ServedModel] = {}
    bases: dict[str, ServedModel] = {}  # base fingerprint -> the served base
    for position, (name, run_dir, role, key) in enumerate(plan):
        if report is not None:
            report(position, len(plan), run_dir, None)
        if role == "adapter":
            base = bases[key]
            adapter = f"served{len(base.adapters)}"  # peft's names hold no dots; the served name may
            run = _load_on_base(run_dir, base, adapter)
        else:
            run = loader(run_dir) if role == "plain" and key is None else Run.load(run_dir)
        name = name or run.name
        if name in models:
            raise UsageError(
                f"two runs are named {name!r} ({models[name].run_dir} and {run_dir}); "
                f"serve one as NAME={run_dir}"
            )
        pipe = run.pipeline
        model = models[name] = ServedModel(
            name=name,
            run_dir=run_dir,
            run=run,
            modality=run.modality,
            options=json_schema(pipe.gen.cls.GenerateOptions, pipe.generate_options.model_dump(mode="json")),
            can_stream=run.inference.streams,
        )
        if key is not None and role != "adapter":
            bases[key] = model
            model.params = run.generator.params
        elif role == "adapter":
            model.shared, model.adapter, model.lock, model.base = True, adapter, base.lock, base.name
            model.params = pipe.gen.params  # what Run.load gives this run's generator alone
            base.shared = True
            base.adapters[name] = model
        if report is not None:
            report(position + 1, len(plan), run_dir, model)
    if not models:
        raise UsageError("no run directories to serve")
    return models


def _plan(specs: Sequence[str | Path]) -> list[tuple[str, Path, str, str | None]]:
    """What to load, in order: ``(name, run_dir, role, base key)``. Roles: ``plain`` (a run of its
    own; its key is set when personalised runs stand on it), ``base`` (a base none of ``specs``
    names, loaded for its adapters) and ``adapter`` (a personalised run on the base of its key).
    A base loads before its first adapter; nothing is loaded here, only manifests and configs read."""
    from ..store.rundir import RunDir

    parsed: list[tuple[str, Path, Mapping]] = []
    for spec in specs:
        text = str(spec)
        name, sep, path = text.partition("=")
        if not sep or "/" in name or not name:
            name, path = "", text
        run_dir = Path(path)
        parsed.append((name, run_dir, RunDir(run_dir).manifest()))
    fingerprints: dict[int, str] = {}
    for index, (_, run_dir, manifest) in enumerate(parsed):
        if manifest and not manifest.get("adapter"):
            try:
                fingerprints[index] = RunDir(run_dir).model_fingerprint()
            except AigcError:  # no model record: Run.load says so in its own words
                pass
    wanted: dict[str, int | Path] = {}  # base key -> the spec index, or else the directory, of the base
    for _, run_dir, manifest in parsed:
        key = _shared_base_key(manifest)
        if key is not None and key not in wanted:
            given = [i for i, fp in fingerprints.items() if fp == key]
            wanted[key] = given[0] if given else _base_dir(run_dir, manifest)
    providers = {v: k for k, v in wanted.items() if isinstance(v, int)}
    plan: list[tuple[str, Path, str, str | None]] = []
    placed: set[int] = set()
    ready: set[str] = set()  # base keys whose base is in the plan already
    for index, (name, run_dir, manifest) in enumerate(parsed):
        if index in placed:
            continue
        placed.add(index)
        key = _shared_base_key(manifest)
        if key is None:
            key = providers.get(index)
            if key is not None:
                ready.add(key)
            plan.append((name, run_dir, "plain", key))
            continue
        if key not in ready:
            provider = wanted[key]
            if isinstance(provider, int):
                plan.append((parsed[provider][0], parsed[provider][1], "plain", key))
                placed.add(provider)
            else:
                plan.append(("", provider, "base", key))
            ready.add(key)
        plan.append((name, run_dir, "adapter", key))
    return plan


def _shared_base_key(manifest: Mapping) -> str | None:
    """The fingerprint of the base run a personalised run stands on (None: not one that can share:
    a plain run, or an adapter on a pretrained checkpoint, which loads its own base)."""
    base = manifest.get("base") if manifest.get("adapter") else None
    if isinstance(base, Mapping) and base.get("kind") == "run" and isinstance(base.get("fingerprint"), str):
        return base["fingerprint"]
    return None


def _personalised_pipeline(run_dir: Path) -> Any:
    """A personalised run's config resolved (its base's too, nothing loaded); a base that is gone
    names the served run it belongs to, since ``aigc serve`` may have been given many."""
    from ..orchestration.pipeline import Pipeline

    try:
        return Pipeline.for_run_dir(run_dir)
    except ConfigError as exc:
        if exc.key == "generator.base":
            raise UsageError(f"{run_dir}: its base cannot be loaded ({first_line(exc)})") from None
        raise


def _base_dir(run_dir: Path, manifest: Mapping) -> Path:
    """The base run a personalised run's config names (what ``Run.load`` would load), resolved, and
    checked to be the base its adapter was trained on before anything loads (a base run trained
    again since would otherwise load, then clash by name with itself given on the command line)."""
    from ..orchestration.personalise import check_base
    from ..store.rundir import RunDir

    pipe = _personalised_pipeline(run_dir)
    if pipe.base is None or not pipe.base.is_run:
        raise UsageError(f"{run_dir}: its manifest names a base run, but its config's generator.base is not one")
    try:
        actual = RunDir(pipe.base.path).model_fingerprint()
    except AigcError:  # no model record: loading it says so in its own words
        return pipe.base.path
    check_base(manifest["base"], {"fingerprint": actual, "path": str(pipe.base.path)}, run_dir)
    return pipe.base.path


def _load_on_base(run_dir: Path, base: ServedModel, adapter: str) -> Any:
    """A personalised run whose adapter joins ``base``'s generator as ``adapter`` (nothing else loaded)."""
    from ..orchestration.run import Run

    pipe = _personalised_pipeline(run_dir)
    with base.lock:  # nothing serves yet while models load; the lock keeps the rule without exceptions
        pipe.load_generator(base=base.run, adapter_name=adapter)
    return Run(pipe)

