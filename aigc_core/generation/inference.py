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

Everything a generator would otherwise repeat is done here, once, for all of them (plugin API 4):
the options arrive as the generator's validated ``GenerateOptions`` object (its fields and
defaults are their only declaration), a ``label`` option is checked against the classes the model
learnt, the network is in eval mode without autograd while it generates (and back in the mode it
was in afterwards), and the seed is bounded and defaulted (``check_seed``, ``fresh_seed``).

Upstream of it is the configuration (``Pipeline`` resolves a run's config into components) and
the run directory (``RunDir``: the verified model and its fingerprint); it calls neither back.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..helpers.allocator import tune_allocator
from ..store.config import MAX_NUM_SAMPLES
from ..contract.content import Content
from ..contract.errors import AigcError, ConfigError, UsageError
from ..contract.progress import ProgressCallback, phase, progress_reporting
from ..contract.seeding import MAX_SEED

#: Seeds drawn for requests that give none (the server's): below 2**31, short enough to type back.
FRESH_SEEDS = 2**31
_fresh = random.SystemRandom()


def options_dict(options: Any) -> dict:
    """A validated options object (a pydantic model, or already a mapping) as a plain dict."""
    dump = getattr(options, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(options)


def check_seed(seed: Any, what: str = "seed") -> int:
    """Generation seeds: the same bounds and the same words everywhere (CLI, server, Python)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"{what}: must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{what}: must be in [0, {MAX_SEED}], got {seed}")
    return seed


def fresh_seed() -> int:
    """A seed for a request that names none and wants new content each time (the server's); the
    reply says which, so the content can be made again."""
    return _fresh.randrange(FRESH_SEEDS)


def check_num_samples(n: int) -> int:
    if not 0 <= n <= MAX_NUM_SAMPLES:
        raise UsageError(f"number of samples must be in [0, {MAX_NUM_SAMPLES}], got {n} "
                         "(for more, use 'aigc generate --shard-size', which writes shards)")
    return n


def check_label(generator: Any, options: Any) -> Any:
    """``options`` with its ``label`` (if the options have one and it is set) checked against the
    classes the model learnt, and given to the generator as the class index.

    The classes are ``generator.num_classes`` (0: the model takes no label) and, for a label option
    typed as text, their names ``generator.classes``: such a label is a name or an index.
    """
    label = getattr(options, "label", None)
    if label is None:
        return options
    count = int(getattr(generator, "num_classes", 0) or 0)
    if isinstance(label, str):
        names = [str(c) for c in getattr(generator, "classes", None) or ()]
        if label in names:
            index = names.index(label)
        elif label.lstrip("-").isdigit() and 0 <= int(label) < count:
            index = int(label)
        else:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError("generate.label", f"{label!r} is not a class this model was trained on (classes: {shown})")
        return options.model_copy(update={"label": index})
    if not count or label >= count:
        raise ConfigError("generate.label", f"label {label} is not a class this model was trained on "
                                            f"({count or 'no'} classes)")
    return options


@contextlib.contextmanager
def generating(generator: Any) -> Iterator[None]:
    """Eval mode and no autograd while a generator makes content, and every module back in the mode
    it was in afterwards (training previews generate from a network in the middle of training)."""
    import torch

    modules = list(generator.modules()) if callable(getattr(generator, "modules", None)) else []
    modes = [(module, module.training) for module in modules]
    for module in modules:
        module.training = False  # what Module.eval() does, without a subclass's train() override
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def call_generator(generator: Any, n: int, seed: int, options: Any, **extra: Any) -> Content:
    """The one call of ``generator.generate``: the label checked, in eval mode without autograd.
    ``extra`` holds ``start=``/``data_source=``, which the caller passes only as declared."""
    options = check_label(generator, options)
    with generating(generator):
        return generator.generate(n, seed, options, **extra)


def stream_generator(generator: Any, seed: int, options: Any) -> Iterator[str]:
    """``generator.stream(seed, options)`` as ``call_generator`` calls ``generate``: eval mode for the
    whole stream (a generator may decode in a thread of its own), each step without autograd."""
    options = check_label(generator, options)
    return _streaming(generator, seed, options)


def _streaming(generator: Any, seed: int, options: Any) -> Iterator[str]:
    import torch

    end = object()
    with generating(generator):
        pieces = iter(generator.stream(seed, options))
        try:
            while True:
                with torch.no_grad():
                    piece = next(pieces, end)
                if piece is end:
                    return
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # the generator's cleanup: a cancelled stream stops here


def generate_with(generator: Any, n: int, seed: int = 0, *, start: int | None = None, data_source: Any = None,
                  **options: Any) -> Content:
    """A bare generator (no run: a test, a notebook, a training preview) asked as ``Inference`` asks
    it: ``options`` validated into its ``GenerateOptions`` (errors name ``generate.KEY``), the seed
    checked, then ``call_generator``. Nothing is stamped, post-processed or exported."""
    from ..contract.params import build_params

    extra: dict[str, Any] = {}
    if start is not None:
        extra["start"] = int(start)
    if data_source is not None:
        extra["data_source"] = data_source
    opts = build_params(type(generator).GenerateOptions, options, "generate")
    return call_generator(generator, n, check_seed(seed), opts, **extra)


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
    def options(self, request: Mapping[str, Any] | None = None, prefix: str = "generate") -> Any:
        """The run's defaults overlaid with ``request``, validated once into the generator's options
        object (errors name ``prefix.key``): what ``generate(options=...)`` and the generator take."""
        return self._validate({**self.defaults, **dict(request or {})}, prefix)

    def resolve_seed(self, seed: int | None, what: str = "seed") -> int:
        """The seed a request gets: its own, checked, or else the run's (``generate.seed``, the run's seed)."""
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

    def _request(self, options: Any, request: Mapping[str, Any]) -> Any:
        """The validated options: ``options`` as given (from ``self.options``), else ``request`` merged and validated."""
        if options is None:
            return self.options(request)
        if request:
            raise TypeError(f"give the options either validated (options=) or as keywords, not both "
                            f"({', '.join(sorted(request))})")
        return options

    # -- generate -> stamp -> post-process -> export -------------------------------------------
    def generate(self, n: int | None = None, seed: int | None = None, *, options: Any = None,
                 start: int | None = None, progress: ProgressCallback | None = None, **request: Any) -> Content:
        """``n`` new items (default: the run's ``generate.num_samples``), stamped with their provenance.

        Options come as keywords (``label=3``: merged with the run's defaults and validated here) or,
        from a caller that validated them already (the server, sharding), as ``options=``, the
        object ``self.options(...)`` returned. Same seed and options, same items. ``start``: make
        samples ``start .. start+n-1`` of the seed's sequence (sharded generation; the generator must
        declare ``shards``). ``progress(done, total)`` receives what the generator reports
        (``report_progress``).
        """
        n = self.resolve_n(n) if start is None else int(self.num_samples if n is None else n)  # shards: no cap
        seed = self.resolve_seed(seed)
        opts = self._request(options, request)
        with phase("generating", total=n) as shown:
            # the caller's callback (the server's) wins; else the CLI's phase, when one is shown
            with progress_reporting(progress if progress is not None or shown.display is None else shown.report):
                content = call_generator(self.generator, n, seed, opts, **self._extra(start))
            shown.update(n)
        return self.stamp(content, seed, start)

    def stream(self, seed: int | None = None, *, options: Any = None, **request: Any) -> Iterator[str]:
        """Pieces of text as they are made (the generator must declare ``streams``)."""
        if not self.streams:
            raise UsageError(f"generator {self.generator_name!r} does not stream")
        seed = self.resolve_seed(seed)
        return stream_generator(self.generator, seed, self._request(options, request))

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
