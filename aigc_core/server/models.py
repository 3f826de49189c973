"""The served models: one loaded run each, its option schema, and request validation.

The option schema is the JSON Schema of the generator's ``GenerateOptions`` model, with the
run's configured options as defaults, so a plugin gets a form on the web page and a documented
API without a line of server code.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..fileoptions import file_options, request_content
from ..params import json_schema
from ..errors import ConfigError, UsageError
from ..modalities import get_modality
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
    #: Held while the generator runs: batches and stream steps take turns on one model.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def inference(self) -> Any:
        """The one path from a request to content (defaults + options + seed -> generate -> stamp)."""
        return self.run.inference

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
        }

    def validated_options(self, options: Any, settings: ServerSettings) -> dict:
        """The run's configured options overlaid with the request's, validated and capped.

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
        check_option_limits({key: opts[key] for key in options if key in opts}, settings, files)
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

    ``report(position, total, run_dir, model)`` is called before each run loads (``model`` None)
    and after (the served model): loading takes seconds to minutes, and ``aigc serve`` says so.
    """
    if loader is None:
        from ..run import Run

        loader = Run.load
    models: dict[str, ServedModel] = {}
    for position, spec in enumerate(specs):
        text = str(spec)
        name, sep, path = text.partition("=")
        if not sep or "/" in name or not name:
            name, path = "", text
        run_dir = Path(path)
        if report is not None:
            report(position, len(specs), run_dir, None)
        run = loader(run_dir)
        pipe = run.pipeline
        name = name or run.name
        if name in models:
            raise UsageError(
                f"two runs are named {name!r} ({models[name].run_dir} and {run_dir}); "
                f"serve one as NAME={run_dir}"
            )
        models[name] = ServedModel(
            name=name,
            run_dir=run_dir,
            run=run,
            modality=run.modality,
            options=json_schema(pipe.gen.cls.GenerateOptions, pipe.generate_options.model_dump(mode="json")),
            can_stream=run.inference.streams,
        )
        if report is not None:
            report(position + 1, len(specs), run_dir, models[name])
    if not models:
        raise UsageError("no run directories to serve")
    return models
