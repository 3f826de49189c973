"""Inference: a trained generator made ready to serve requests, the one path from a request to files.

    inference = Run.load("runs/gan-digits").inference
    content = inference.generate(8, seed=1)           # defaults + options + seed -> generate -> stamp
    files = inference.export(inference.postprocess(content), "out/")

Why one object: the run's configured defaults (the ``generate:`` section), a request's options and
the seed must be merged the same way whether the request comes from ``aigc generate`` (streaming
and sharded too), the HTTP server, a metric or Python; here is the only place that merges them.
It also stamps provenance (seed, generator, run, checkpoint sha256) on every item, and calls a
generator only with what it declared it can take (``Generator.streams``, ``shards``,
``reads_data``), never by probing its signature.

Upstream of it is the configuration (``Pipeline`` resolves a run's config into components) and
the run directory (``RunDir``: the verified model and its fingerprint); it calls neither back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .allocator import tune_allocator
from .config import MAX_NUM_SAMPLES
from .content import Content
from .errors import AigcError, UsageError
from .progress import ProgressCallback, phase, progress_reporting
from .seeding import MAX_SEED


def options_dict(options: Any) -> dict:
    """A validated options object (a pydantic model, or already a mapping) as a plain dict."""
    dump = getattr(options, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(options)


def check_seed(seed: Any, what: str = "seed") -> int:
    """Generation seeds: the same bounds everywhere (CLI, server, Python)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{what}: must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def check_num_samples(n: int) -> int:
    if not 0 <= n <= MAX_NUM_SAMPLES:
        raise UsageError(f"number of samples must be in [0, {MAX_NUM_SAMPLES}], got {n} "
                         "(for more, use 'aigc generate --shard-size', which writes shards)")
    return n


class Inference:
    """A loaded generator with its run's defaults, post-processors and exporter.

    Built by ``Run.load(path).inference`` (or ``Pipeline.inference`` right after training).
    ``validate_options(mapping, prefix)`` turns a merged mapping into the generator's validated
    options object, with errors naming ``prefix.key``.
    """

    def __init__(self, generator: Any, *, generator_name: str, run_name: str, modality: str,
                 validate_options: Callable[[Mapping, str], Any], defaults: Mapping[str, Any], num_samples: int,
                 seed: int, fingerprint: str | None = None, postprocessors: Sequence[Any] = (),
                 exporter: Any = None, data_source: Callable[[], Any] | None = None, run_dir: Path | None = None,
                 config: Mapping[str, Any] | None = None):
        tune_allocator()
        self.generator = generator
        self.generator_name = generator_name
        self.run_name = run_name
        self.modality = modality
        self._validate = validate_options
        #: The run's configured options (the ``generate:`` section minus num_samples/seed/batch_size).
        self.defaults = dict(defaults)
        self.num_samples = int(num_samples)
        #: The seed a request without one gets: ``generate.seed``, else the run's seed.
        self.seed = int(seed)
        #: sha256 over the model's files, stamped on every item as ``checkpoint_sha256``.
        self.fingerprint = fingerprint
        self.postprocessors = list(postprocessors)
        self.exporter = exporter
        self.data_source = data_source
        self.run_dir = Path(run_dir) if run_dir is not None else None
        #: The run's resolved config, for records of what made an output (``generation.json``).
        self.config = dict(config or {})

    # -- what the generator declared ----------------------------------------------------------
    @property
    def streams(self) -> bool:
        return bool(getattr(type(self.generator), "streams", False))

    @property
    def shards(self) -> bool:
        return bool(getattr(type(self.generator), "shards", False))

    @property
    def reads_data(self) -> bool:
        return bool(getattr(type(self.generator), "reads_data", False))

    # -- the one merge --------------------------------------------------------------------------
    def options(self, request: Mapping[str, Any] | None = None, prefix: str = "generate") -> dict:
        """The run's defaults overlaid with ``request``, validated (errors name ``prefix.key``)."""
        return options_dict(self._validate({**self.defaults, **dict(request or {})}, prefix))

    def resolve_seed(self, seed: int | None, what: str = "seed") -> int:
        return self.seed if seed is None else check_seed(seed, what)

    def resolve_n(self, n: int | None) -> int:
        return check_num_samples(self.num_samples if n is None else int(n))

    def _extra(self, start: int | None) -> dict:
        extra: dict[str, Any] = {}
        if start is not None:
            if not self.shards:
                raise UsageError(f"generator {self.generator_name!r} cannot make shards (it does not declare "
                                 "shards = True); run 'aigc generate' without --devices")
            extra["start"] = int(start)
        if self.reads_data and self.data_source is not None:
            extra["data_source"] = self.data_source  # a callable: the data is read only if asked for
        return extra

    # -- generate -> stamp -> post-process -> export -------------------------------------------
    def generate(self, n: int | None = None, seed: int | None = None, *, start: int | None = None,
                 progress: ProgressCallback | None = None, **options: Any) -> Content:
        """``n`` new items (default: the run's ``generate.num_samples``), stamped with their provenance.

        Same seed and options, same items. ``start``: make samples ``start .. start+n-1`` of the
        seed's sequence (sharded generation; the generator must declare ``shards``).
        ``progress(done, total)`` receives what the generator reports (``report_progress``).
        """
        n = self.resolve_n(n) if start is None else int(self.num_samples if n is None else n)  # shards: no cap
        seed = self.resolve_seed(seed)
        opts = self.options(options)
        with phase("generating", total=n) as shown:
            # the caller's callback (the server's) wins; else the CLI's phase, when one is shown
            with progress_reporting(progress if progress is not None or shown.display is None else shown.report):
                content = self.generator.generate(n, seed=seed, **opts, **self._extra(start))
            shown.update(n)
        return self.stamp(content, seed, start)

    def stream(self, seed: int | None = None, **options: Any) -> Iterator[str]:
        """Pieces of text as they are made (the generator must declare ``streams``)."""
        if not self.streams:
            raise UsageError(f"generator {self.generator_name!r} does not stream")
        return self.generator.stream(seed=self.resolve_seed(seed), **self.options(options))

    def stamp(self, content: Content, seed: int, start: int | None = None) -> Content:
        """Provenance only this object knows, on every item; a shard's indices count from ``start``.
        An item with a class index also gets the class's name from the data the model learnt
        (``info["classes"]``), so every client shows "bell" where the model said 3."""
        info = getattr(self.generator, "info", None)
        classes = info.get("classes") if isinstance(info, dict) else None
        for position, item in enumerate(content.items):
            label = item.meta.get("label")
            if ("class" not in item.meta and isinstance(classes, (list, tuple)) and isinstance(label, int)
                    and not isinstance(label, bool) and 0 <= label < len(classes)):
                item.meta["class"] = str(classes[label])
            if start is not None:
                item.meta["index"] = start + position  # names and provenance use the global index
            item.meta.setdefault("index", position)
            item.meta.setdefault("seed", seed)
            item.meta["generator"] = self.generator_name
            item.meta["run"] = self.run_name
            if self.fingerprint:
                item.meta["checkpoint_sha256"] = self.fingerprint
        return content

    def postprocess(self, content: Content) -> Content:
        if not self.postprocessors:
            return content
        with phase("post-processing", total=len(self.postprocessors), listen=False) as shown:
            for done, part in enumerate(self.postprocessors):
                shown.update(done, detail=part.name)
                processor = part.build()
                before = content.modality
                content = processor(content)
                if not isinstance(content, Content) or content.modality != before:
                    raise AigcError(f"{part.key} ({part.name}) returned something other than {before} Content")
            shown.update(len(self.postprocessors), detail="")
        return content

    def export(self, content: Content, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AigcError(f"{out}: cannot create output directory ({exc.strerror or exc})") from None
        try:
            with phase("exporting", total=len(content.items)) as shown:
                files = self.exporter.build().export(content, out)
                shown.update(len(content.items))
            return files
        except OSError as exc:
            raise AigcError(f"{out}: writing outputs failed ({exc.strerror or exc}); earlier files are intact") from None

    def __call__(self, n: int | None = None, seed: int | None = None, *, out: str | Path | None = None,
                 postprocess: bool = True, **options: Any) -> tuple[Content, list[Path]]:
        """The whole path: generate, stamp, post-process, and export into ``out`` when given."""
        content = self.generate(n, seed, **options)
        if postprocess:
            content = self.postprocess(content)
        return content, (self.export(content, out) if out is not None else [])
