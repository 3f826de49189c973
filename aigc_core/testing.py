"""The contract test-kit: what every plugin's tests call to check its components.

A component that breaks the contract fails with a :class:`ContractFailure` that names the
component, each failing check and why, so a plugin author reads one message and knows what to fix::

    from aigc_core.testing import check_generator, tiny_source

    def test_contract(tmp_path):
        check_generator(MyGenerator, tiny_source("image"), params={"width": 4}, workdir=tmp_path)

Checks, per kind (``GENERATOR_CHECKS`` and friends hold their names, to parametrize tests):

* generators: declared modality, params models valid, one-batch training step, output
  types/shapes/ranges/dtypes, item metadata, same seed same output (and a sample does not depend
  on how many are made with it), empty input (``n=0``), checkpoint save and reload round trip;
* post-processors: params, output per modality, drops recorded with a reason, deterministic,
  input left untouched, empty input;
* data sources: params, declared modality, ``info``, item format, same seed same split,
  a training batch, tiny data (empty validation split).

This module imports torch and Lightning (generators need them); import it from tests only.
"""

from __future__ import annotations

import inspect
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pytest

from .contract.params import build_params, describe_schema, is_params_class, json_schema
from .contract.cancel import CancelToken
from .contract.content import Content, Item
from .contract.modalities import InvalidItem, get_modality, known_modalities
from .contract.errors import AigcError, CheckpointError, first_line

GENERATOR_CHECKS = ("modality", "params", "train-step", "output", "metadata", "same-seed", "empty", "round-trip")
POSTPROCESSOR_CHECKS = ("params", "output", "metadata", "drops", "deterministic", "no-mutation", "empty")
DATA_SOURCE_CHECKS = ("params", "modality", "info", "items", "same-seed", "loader", "empty")

#: Files a checkpoint must never be: they unpickle (run code) when loaded.
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt")


class ContractFailure(AssertionError):
    """One or more contract checks failed; ``failures`` maps each check to its reason."""

    def __init__(self, component: str, failures: Mapping[str, str]):
        self.component = component
        self.failures = dict(failures)
        lines = [f"{component} breaks the aigc contract:"]
        lines += [f"  [{check}] {reason}" for check, reason in self.failures.items()]
        super().__init__("\n".join(lines))


#: Raised inside one check (by the kit, or by a ``Modality``'s checks); becomes that check's entry
#: in ContractFailure.
_Fail = InvalidItem


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise _Fail(reason)


def _label(cls: type, kind: str) -> str:
    name = getattr(cls, "component_name", "") or ""
    return f"{kind} {cls.__module__}:{cls.__qualname__}" + (f" ({name!r})" if name else "")


class _Contract:
    CHECKS: tuple[str, ...] = ()
    kind = "component"

    def __init__(self, cls: type):
        self.cls = cls
        self.label = _label(cls, self.kind)

    def check(self, name: str) -> None:
        """Run one check; raise ContractFailure naming it if it fails."""
        if name not in self.CHECKS:
            raise ValueError(f"unknown {self.kind} check {name!r}; known: {', '.join(self.CHECKS)}")
        reason = self._run_one(name)
        if reason is not None:
            raise ContractFailure(self.label, {name: reason})

    def run(self, checks: Iterable[str] | None = None) -> None:
        """Run every check (or those named), then raise one ContractFailure listing all failures."""
        failures = {}
        for name in checks or self.CHECKS:
            if name not in self.CHECKS:
                raise ValueError(f"unknown {self.kind} check {name!r}; known: {', '.join(self.CHECKS)}")
            reason = self._run_one(name)
            if reason is not None:
                failures[name] = reason
        if failures:
            raise ContractFailure(self.label, failures)

    def _run_one(self, name: str) -> str | None:
        method = getattr(self, "check_" + name.replace("-", "_"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                method()
        except _Fail as exc:
            return str(exc)
        except ContractFailure:
            raise
        except Exception as exc:  # the component raised: that is the failure of this check
            return f"raised {type(exc).__name__}: {first_line(exc)}"
        return None


# ---------------------------------------------------------------------------------------------
# Shared checks of parameters and of content


def _check_params_class(params_cls: Any, what: str, values: Mapping | None) -> Any:
    _require(is_params_class(params_cls),
             f"{what} must be a subclass of aigc_core.Params (plugin API 2), got {params_cls!r}")
    try:
        described = describe_schema(json_schema(params_cls))
    except Exception as exc:
        raise _Fail(f"{what} cannot be described: {type(exc).__name__}: {first_line(exc)}") from None
    try:
        instance = build_params(params_cls, values or {}, what)
    except AigcError as exc:
        hint = "" if values else " (give the kit valid values with params=...)"
        raise _Fail(f"{what} cannot be built from {dict(values or {})!r}: {exc}{hint}") from None
    # every value must survive a trip through a config file (plain types only)
    plain = instance.model_dump()
    try:
        json.dumps(plain)
    except (TypeError, ValueError) as exc:
        raise _Fail(f"{what} holds a value a config file cannot: {exc}") from None
    again = build_params(params_cls, plain, what)
    _require(again == instance, f"{what} does not survive a round trip through its own values: "
                                f"{instance!r} became {again!r}")
    for field in described:
        _require(not field["name"].startswith("_"), f"{what}.{field['name']}: parameters may not be private")
    return instance


def check_item(modality: str, item: Any, where: str, info: Mapping | None = None) -> None:
    """Raise ``_Fail`` unless ``item`` is a valid Item of ``modality`` (its ``Modality.check_item``)."""
    _require(isinstance(item, Item), f"{where} is {type(item).__name__}, not aigc_core.Item")
    _require(isinstance(item.meta, dict), f"{where}.meta is {type(item.meta).__name__}, not dict")
    _modality(modality).check_item(item, where, info)


def _modality(name: str) -> Any:
    """The registered Modality of ``name``; the kit's own error for an unknown one."""
    if name not in known_modalities():
        raise ValueError(f"unknown modality {name!r}")
    return get_modality(name)


def check_content(content: Any, modality: str, where: str, n: int | None = None,
                  info: Mapping | None = None) -> None:
    _require(isinstance(content, Content), f"{where} returned {type(content).__name__}, not aigc_core.Content")
    _require(content.modality == modality, f"{where} returned {content.modality} content, declared {modality}")
    if n is not None:
        _require(len(content.items) == n, f"{where} returned {len(content.items)} items, asked for {n}")
    for i, item in enumerate(content.items):
        check_item(modality, item, f"{where} item {i}", info)


def _check_meta(content: Content, where: str) -> None:
    for i, item in enumerate(list(content.items) + list(content.dropped)):
        _require(isinstance(item.meta, dict), f"{where} item {i} has no metadata dict")
        try:
            json.dumps(item.meta)
        except (TypeError, ValueError) as exc:
            raise _Fail(f"{where} item {i}: metadata must be JSON-serialisable for manifests ({exc})") from None


def same_data(a: Any, b: Any) -> bool:
    """Byte-equal item data (arrays compare dtype, shape and bytes)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    return type(a) is type(b) and a == b


def close_data(a: Any, b: Any, atol: float = 1e-5) -> bool:
    """Equal up to float rounding: batched kernels may round differently for other batch sizes."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=atol))
    return same_data(a, b)


def _first_difference(a: Content, b: Content, exact: bool = True) -> int | None:
    equal = same_data if exact else close_data
    if len(a.items) != len(b.items):
        return min(len(a.items), len(b.items))
    for i, (x, y) in enumerate(zip(a.items, b.items)):
        if not equal(x.data, y.data):
            return i
    return None


# ---------------------------------------------------------------------------------------------
# Generators


class GeneratorContract(_Contract):
    """The generator contract, one check at a time (``check``) or all at once (``run``).

    The model is built once with ``cls.build(params, source, workdir)``; ``train-step`` trains it
    for one batch, and later checks use the trained model, as a pipeline would.
    """

    CHECKS = GENERATOR_CHECKS
    kind = "generator"

    def __init__(self, cls: type, source: Any, params: Mapping | None = None, options: Mapping | None = None,
                 workdir: str | Path | None = None, n: int = 4, seed: int = 7,
                 modality: str | None = None):
        super().__init__(cls)
        self.source = source
        self.param_values = dict(params or {})
        self.option_values = dict(options or {})
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="aigc-contract-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.n = n
        self.seed = seed
        self.registered_modality = modality
        self._model = None
        self._trained = False

    # -- helpers ---------------------------------------------------------------------------------
    def params(self) -> Any:
        return build_params(self.cls.Params, self.param_values, "generator")

    def options(self) -> dict:
        return dict(self.option_values)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.cls.build(self.params(), self.source, self.workdir / "preprocess")
        return self._model

    def generate(self, model: Any, n: int, seed: int) -> Content:
        return generate(model, n, seed, **self.options())

    # -- checks ----------------------------------------------------------------------------------
    def check_modality(self) -> None:
        declared = getattr(self.cls, "modality", "")
        _require(declared in known_modalities(), f"class attribute modality is {declared!r}, expected one of {known_modalities()}")
        if self.registered_modality is not None:
            _require(declared == self.registered_modality,
                     f"registered with modality {self.registered_modality!r} but the class says {declared!r}")
        source_modality = getattr(self.source, "modality", None)
        _require(source_modality == declared,
                 f"the data source given is {source_modality!r}, the generator declares {declared!r}")

    def check_params(self) -> None:
        _check_params_class(self.cls.Params, "generator", self.param_values)
        opts = getattr(self.cls, "GenerateOptions", None)
        _check_params_class(opts, "generate", self.option_values)
        signature = inspect.signature(self.cls.generate)
        names = [p.name for p in signature.parameters.values() if p.name != "self"]
        _require(names[:3] == ["n", "seed", "options"],
                 f"generate() takes ({', '.join(names)}); plugin API 4 wants generate(self, n, seed, options): "
                 "the options arrive as one GenerateOptions object, whose fields and defaults are their only "
                 "declaration")
        repeated = [name for name in opts.model_fields if name in signature.parameters]
        _require(not repeated, f"generate() repeats GenerateOptions.{repeated[0] if repeated else ''} as an "
                               "argument; read options.NAME instead")
        for flag, argument in (("shards", "start"), ("reads_data", "data_source")):
            if getattr(self.cls, flag, False):
                _require(argument in signature.parameters,
                         f"the class declares {flag} = True but generate() takes no {argument}=")
        if getattr(self.cls, "streams", False):
            stream = getattr(self.cls, "stream", None)
            _require(callable(stream), "the class declares streams = True but has no stream()")
            taken = [p.name for p in inspect.signature(stream).parameters.values() if p.name != "self"]
            _require(taken[:2] == ["seed", "options"],
                     f"stream() takes ({', '.join(taken)}); plugin API 4 wants stream(self, seed, options)")

    def check_train_step(self) -> None:
        import pytorch_lightning as pl
        import torch

        from .train.training import quiet_lightning
        from .contract.training_module import as_datamodule, training_module

        quiet_lightning()
        model = training_module(self.model)  # the generator, and what only training needs
        before = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        _require(bool(before), "the model has no floating-point parameters to train")
        trainer = pl.Trainer(
            max_steps=1, limit_train_batches=1, limit_val_batches=0, num_sanity_val_steps=0,
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=str(self.workdir / "lightning"),
        )
        torch.manual_seed(self.seed)
        trainer.fit(model, datamodule=as_datamodule(model.datamodule(self.source)))
        self._trained = True
        _require(trainer.global_step >= 1, "one training batch made no optimiser step "
                                           "(training_step/configure_optimizers)")
        after = model.state_dict()
        changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
        _require(bool(changed), "one training step changed no parameter (is the loss connected to them?)")
        bad = [k for k, v in after.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        _require(not bad, f"parameters became NaN/inf after one step: {', '.join(bad[:3])}")
        for key, value in trainer.callback_metrics.items():
            if torch.is_tensor(value) and not torch.isfinite(value).all():
                raise _Fail(f"logged {key} is {value.item()} after one step")

    def check_output(self) -> None:
        model = self.model
        content = self.generate(model, self.n, self.seed)
        check_content(content, self.cls.modality, "generate()", self.n, getattr(model, "info", None))

    def check_metadata(self) -> None:
        content = self.generate(self.model, self.n, self.seed)
        _check_meta(content, "generate()")

    def check_same_seed(self) -> None:
        model = self.model
        first = self.generate(model, self.n, self.seed)
        second = self.generate(model, self.n, self.seed)
        diff = _first_difference(first, second)
        _require(diff is None, f"two calls with seed {self.seed} differ at item {diff}: same seed must give "
                               "the same output (draw randomness from aigc_core.sample_seed(seed, index))")
        other = self.generate(model, self.n, self.seed + 1)
        _require(_first_difference(first, other) is not None,
                 f"seeds {self.seed} and {self.seed + 1} give identical output: generate() ignores its seed")
        if self.n >= 2:
            fewer = self.generate(model, self.n - 1, self.seed)
            diff = _first_difference(fewer, Content(first.modality, first.items[: self.n - 1]), exact=False)
            _require(diff is None, f"item {diff} changes when {self.n - 1} instead of {self.n} samples are made: "
                                   "a sample's randomness must depend on (seed, index) alone")

    def check_empty(self) -> None:
        content = self.generate(self.model, 0, self.seed)
        check_content(content, self.cls.modality, "generate(0)", 0)

    def check_round_trip(self) -> None:
        model = self.model
        directory = self.workdir / "artifact"
        if directory.exists():
            import shutil

            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        files = model.save_artifact(directory)
        _require(isinstance(files, (list, tuple)) and files, "save_artifact() must return the files it wrote")
        for f in files:
            path = Path(f)
            _require(path.exists(), f"save_artifact() lists {path}, which does not exist")
            _require(directory.resolve() in path.resolve().parents or path.resolve() == directory.resolve(),
                     f"save_artifact() wrote {path} outside the directory it was given")
        unsafe = [p.name for p in directory.rglob("*") if p.suffix.lower() in UNSAFE_SUFFIXES]
        _require(not unsafe, f"the artifact holds pickle-based files {unsafe}; use safetensors")
        loaded = self.cls.load_artifact(directory, self.params())
        _require(isinstance(loaded, self.cls), f"load_artifact() returned {type(loaded).__name__}")
        original = self.generate(model, self.n, self.seed)
        reloaded = self.generate(loaded, self.n, self.seed)
        diff = _first_difference(original, reloaded)
        _require(diff is None, f"after save_artifact/load_artifact, item {diff} of seed {self.seed} differs: "
                               "the artifact misses state that generation uses")
        empty = self.workdir / "artifact-missing"
        empty.mkdir(exist_ok=True)
        try:
            self.cls.load_artifact(empty, self.params())
        except CheckpointError:
            pass
        except Exception as exc:
            raise _Fail(f"load_artifact() of an empty directory raised {type(exc).__name__} "
                        f"({first_line(exc)}), expected aigc_core.CheckpointError naming the file") from None
        else:
            raise _Fail("load_artifact() of an empty directory succeeded; it must raise CheckpointError")


def generate(model: Any, n: int, seed: int = 0, **options: Any) -> Content:
    """``n`` items from a bare generator, asked as a run's ``Inference`` asks it: ``options`` (and
    ``start=``/``data_source=``) validated into its ``GenerateOptions``, the label checked, eval mode
    without autograd and the model's modes restored after. What a plugin's tests call instead of
    ``model.generate``, which takes the validated options object (plugin API 4)."""
    from .generation.inference import generate_with

    return generate_with(model, n, seed, **options)


def stream(model: Any, seed: int = 0, **options: Any) -> Iterator[str]:
    """``model.stream`` as ``Inference.stream`` calls it (options validated, eval mode, no autograd)."""
    from .generation.inference import check_seed, stream_generator

    return stream_generator(model, check_seed(seed), build_params(type(model).GenerateOptions, options, "generate"))


def check_generator(cls: type, source: Any, **kwargs: Any) -> None:
    """Run the whole generator contract; see ``GeneratorContract`` for the arguments."""
    GeneratorContract(cls, source, **kwargs).run()


class GeneratorContractTests:
    """A generator's contract as a pytest test class: subclass it as ``Test<Name>`` in a plugin's
    tests and say what to build. Each of ``GENERATOR_CHECKS`` is one test, run on one model built
    (and trained for a batch) once for the class, and ``test_registration`` checks the plugin's
    registrations (``check_registrations``) and that one of them is this generator::

        class TestSparkle(GeneratorContractTests):
            plugin = aigc_sparkle.plugin
            generator = Sparkle
            modality = "image"
            params = {"size": "debug"}     # options = {...} for generate

    The model is built from ``tiny_source(modality, **source_info)``; override ``source()`` for other data.
    """

    plugin: Any
    generator: type
    modality: str
    params: Mapping = {}
    options: Mapping | None = None
    source_info: Mapping = {}

    def source(self) -> Any:
        """The data the model is built from and trains on."""
        return tiny_source(self.modality, **self.source_info)

    @pytest.fixture(scope="class")
    def contract(self, tmp_path_factory) -> GeneratorContract:
        return GeneratorContract(self.generator, self.source(), params=self.params, options=self.options,
                                 workdir=tmp_path_factory.mktemp(f"{self.generator.__name__.lower()}-contract"),
                                 modality=self.modality)

    @pytest.mark.parametrize("check", GENERATOR_CHECKS)
    def test_contract(self, contract: GeneratorContract, check: str) -> None:
        contract.check(check)

    def test_registration(self) -> None:
        registered = [e for e in check_registrations(self.plugin) if e["kind"] == "generator"]
        assert any(e["class"] is self.generator for e in registered), \
            f"{getattr(self.plugin, '__name__', self.plugin)} registers no generator {self.generator.__name__}"


# ---------------------------------------------------------------------------------------------
# Post-processors


class PostProcessorContract(_Contract):
    CHECKS = POSTPROCESSOR_CHECKS
    kind = "post-processor"

    def __init__(self, cls: type, modality: str, params: Mapping | None = None, content: Content | None = None):
        super().__init__(cls)
        self.modality = modality
        self.param_values = dict(params or {})
        self.content = content if content is not None else sample_content(modality)

    def build(self) -> Any:
        return self.cls(build_params(self.cls.Params, self.param_values, "postprocess[0]"))

    def process(self, content: Content) -> Content:
        return self.build()(content)

    def check_params(self) -> None:
        _check_params_class(self.cls.Params, "postprocess[0]", self.param_values)

    def check_output(self) -> None:
        out = self.process(self.content.copy())
        check_content(out, self.modality, "__call__()")
        for i, item in enumerate(out.dropped):
            check_item(self.modality, item, f"__call__() dropped item {i}")

    def check_metadata(self) -> None:
        _check_meta(self.process(self.content.copy()), "__call__()")

    def check_drops(self) -> None:
        source = self.content.copy()
        earlier = source.drop(Item(source.items[0].data, {"marker": "earlier"}), by="contract", reason="earlier drop")
        source = source.replace(source.items, [earlier])
        out = self.process(source)
        _require(any(d.meta.get("marker") == "earlier" for d in out.dropped),
                 "items dropped before this step are lost; return content.replace(kept, dropped)")
        for i, item in enumerate(out.dropped):
            why = item.meta.get("dropped")
            _require(isinstance(why, dict) and why.get("by") and why.get("reason"),
                     f"dropped item {i} has no meta['dropped'] with 'by' and 'reason'; use content.drop(item, by, reason)")

    def check_deterministic(self) -> None:
        a = self.process(self.content.copy())
        b = self.process(self.content.copy())
        diff = _first_difference(a, b)
        _require(diff is None and len(a.dropped) == len(b.dropped),
                 f"two runs on the same input differ (item {diff}); post-processing must be deterministic")

    def check_no_mutation(self) -> None:
        given = self.content.copy()
        keep = given.copy()
        self.process(given)
        diff = _first_difference(given, keep)
        metas_equal = [a.meta for a in given.items] == [b.meta for b in keep.items]
        _require(diff is None and metas_equal,
                 "the input content was changed in place; build new Items (content.replace) instead")

    def check_empty(self) -> None:
        out = self.process(Content(self.modality, []))
        check_content(out, self.modality, "__call__(empty content)")


def check_postprocessor(cls: type, modality: str, params: Mapping | None = None,
                        content: Content | None = None) -> None:
    PostProcessorContract(cls, modality, params, content).run()


# ---------------------------------------------------------------------------------------------
# Data sources


class DataSourceContract(_Contract):
    CHECKS = DATA_SOURCE_CHECKS
    kind = "data source"

    def __init__(self, cls: type, params: Mapping | None = None, seed: int = 0):
        super().__init__(cls)
        self.param_values = dict(params or {})
        self.seed = seed

    def build(self, **overrides: Any) -> Any:
        values = {**self.param_values, **overrides}
        return self.cls(build_params(self.cls.Params, values, "data"), seed=self.seed)

    def check_params(self) -> None:
        _check_params_class(self.cls.Params, "data", self.param_values)
        names = set(self.cls.Params.model_fields) if is_params_class(self.cls.Params) else set()
        missing = {"batch_size", "num_workers", "limit"} - names
        _require(not missing, f"Params lacks {sorted(missing)}: subclass aigc_core.DataParams")

    def check_modality(self) -> None:
        modality = getattr(self.cls, "modality", "")
        _require(modality in known_modalities(), f"class attribute modality is {modality!r}, expected one of {known_modalities()}")

    def check_info(self) -> None:
        info = self.build().info
        _require(isinstance(info, dict), f"info is {type(info).__name__}, expected dict")
        try:
            json.dumps(info)
        except (TypeError, ValueError) as exc:
            raise _Fail(f"info must be JSON-serialisable (it is saved with checkpoints): {exc}") from None
        if "modality" in info:
            _require(info["modality"] == self.cls.modality, f"info['modality'] is {info['modality']!r}")
        _modality(self.cls.modality).check_info(info)

    def check_items(self) -> None:
        source = self.build()
        train = source.split("train")
        _require(len(train) > 0, "the train split is empty")
        info = source.info
        for i in range(min(3, len(train))):
            _check_raw_item(self.cls.modality, train[i], f"split('train')[{i}]", info)

    def check_same_seed(self) -> None:
        a, b = self.build(), self.build()
        ta, tb = a.split("train"), b.split("train")
        _require(len(ta) == len(tb), "two sources with the same seed have train splits of different sizes")
        for i in range(min(3, len(ta))):
            _require(_raw_equal(ta[i], tb[i]), f"two sources with the same seed differ at train item {i}")

    def check_loader(self) -> None:
        source = self.build()
        source.setup("fit")
        batch = next(iter(source.train_dataloader()), None)
        _require(batch is not None, "train_dataloader() yields no batch")

    def check_empty(self) -> None:
        source = self.build(limit=1)
        for name in ("val", "test"):
            for _ in source._loader(name, shuffle=False) if hasattr(source, "_loader") else ():
                pass
            _require(len(source.split(name)) <= 1, f"limit=1 still gives a {name} split of {len(source.split(name))}")


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def _raw_equal(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_raw_equal(x, y) for x, y in zip(a, b))
    a, b = _to_numpy(a), _to_numpy(b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def _check_raw_item(modality: str, raw: Any, where: str, info: Mapping) -> None:
    _modality(modality).check_raw(raw, where, info)


def check_data_source(cls: type, params: Mapping | None = None, seed: int = 0) -> None:
    DataSourceContract(cls, params, seed).run()


# ---------------------------------------------------------------------------------------------
# Registrations


def registrations(plugin: Any) -> list[dict]:
    """What a plugin module registers, by calling its hooks with a recording ``register``."""
    from .plugins import HOOKS

    found = []
    for kind, hook in HOOKS.items():
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue

        def register(name, target=None, modality=(), description="", _kind=kind):
            if _kind == "modality":  # a modality is its own: register(name, target, description)
                modality = (name,)
            found.append({"kind": _kind, "name": name, "target": target, "description": description,
                          "modalities": (modality,) if isinstance(modality, str) else tuple(modality)})

        impl(register=register)
    return found


def check_registrations(plugin: Any) -> list[dict]:
    """Every registration names a loadable class whose declared modality matches, with a description.

    The plugin's own modalities count as known, and each must name an ``aigc_core.Modality``.
    """
    from .contract.modalities import Modality
    from .plugins.registry import import_target

    failures = {}
    found = registrations(plugin)
    if not found:
        failures["registrations"] = "the plugin registers no component (implement an aigc_register_* hook)"
    known = set(known_modalities()) | {e["name"] for e in found if e["kind"] == "modality"}
    for entry in found:
        where = f"{entry['kind']} {entry['name']!r}"
        target = entry["target"]
        if not entry["description"]:
            failures[f"metadata {entry['name']}"] = f"{where} has no description (aigc plugins list shows it)"
        if entry["kind"] == "modality" and target is None:
            continue  # the base Modality: downloads, no checks
        bad = [m for m in entry["modalities"] if m not in known]
        if bad or not entry["modalities"]:
            failures[f"modality {entry['name']}"] = f"{where} registered with modality {entry['modalities']}"
            continue
        if isinstance(target, str):
            try:
                target = import_target(target)
            except Exception as exc:
                failures[f"target {entry['name']}"] = f"{where}: {target!r} cannot be loaded: {type(exc).__name__}: {exc}"
                continue
        entry["class"] = target
        if entry["kind"] == "modality":
            if not (isinstance(target, Modality) or (isinstance(target, type) and issubclass(target, Modality))):
                failures[f"target {entry['name']}"] = f"{where}: {entry['target']!r} is not an aigc_core.Modality"
            continue
        declared = getattr(target, "modality", None)
        if entry["kind"] in ("generator", "data_source") and declared not in entry["modalities"]:
            failures[f"modality {entry['name']}"] = (
                f"{where} is registered as {','.join(entry['modalities'])} but its class declares {declared!r}")
    if failures:
        raise ContractFailure(f"plugin {getattr(plugin, '__name__', plugin)}", failures)
    return found


# ---------------------------------------------------------------------------------------------
# Tiny inputs, made in memory, for contract tests


def sample_content(modality: str, n: int = 3, seed: int = 0) -> Content:
    """A few valid items of ``modality`` (with some structure, so filters have work to do):
    its ``Modality.sample_content``."""
    return _modality(modality).sample_content(n, seed)


def tiny_source(modality: str, n: int = 24, seed: int = 0, batch_size: int = 8, **info: Any) -> Any:
    """An in-memory data source of ``n`` items, so generator tests need no files or downloads.

    The items are the modality's ``Modality.tiny_items``: for the core's, images are 1x8x8
    (override with ``shape=[C, H, W]``), audio is 0.25 s at 8 kHz (``sample_rate=``,
    ``num_samples=``), text is short sentences. Splits are 75/12.5/12.5 %.
    """
    from .contract.components import DataParams, DataSource, split_indices

    kind = _modality(modality)

    class TinySource(DataSource):
        Params = DataParams

        def __init__(self, params: Any = None, seed: int = 0):
            super().__init__(params, seed)
            content = kind.tiny_items(n, seed, info)
            parts = split_indices(n, 0.125, 0.125, seed)
            self._splits = {name: [content[i] for i in idx] for name, idx in parts.items()}

        def split(self, name: str) -> Any:
            return self._splits[name]

        @property
        def info(self) -> dict:
            base = {"modality": modality, "sizes": {k: len(v) for k, v in self._splits.items()},
                    "num_classes": 2, "classes": ["a", "b"]}
            base.update(kind.tiny_info(info))
            return base

    TinySource.modality = modality
    TinySource.component_name = f"tiny-{modality}"
    return TinySource(DataParams(batch_size=batch_size, val_fraction=0.125, test_fraction=0.125), seed)


# ---------------------------------------------------------------------------------------------
# Where a generator checks for cancellation; what its modules import


class CancelAfter(CancelToken):
    """Cancelled by its own ``checks``-th check: shows where (and how often) a generator checks.

    ``with aigc_core.cancellation(CancelAfter(2)): generate(model, ...)`` must raise
    ``aigc_core.Cancelled``; ``seen`` then counts the checks the generator made."""

    def __init__(self, checks: int):
        super().__init__()
        self.left = checks
        self.seen = 0

    def check(self) -> None:
        self.seen += 1
        self.left -= 1
        if self.left <= 0:
            self.cancel("test")
        super().check()


#: The training stack a finished run's generator should load without.
TRAINING_STACK = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib")


def modules_loaded_by(modules: Iterable[str], packages: Iterable[str] = TRAINING_STACK) -> list[str]:
    """The modules of ``packages`` that importing ``modules`` loads, sorted (empty is the goal).

    Asked of a fresh interpreter, because a test process has long imported them itself."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        f"for name in {tuple(modules)!r}: __import__(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))\n" % (tuple(packages),)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def refused_network(monkeypatch: Any) -> Iterator[list]:
    """The body of a fixture in which any name lookup or connection is recorded and refused, and
    which fails the test if the record is not empty at the end (an error raised at the socket could
    be caught by a library's retry loop, the record cannot). Use it as
    ``yield from refused_network(monkeypatch)``; the fixture's value is the record."""
    import socket

    calls: list = []

    def refuse(*args, **kwargs):
        calls.append(args[:2])
        raise OSError("the network was used")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield calls
    assert calls == [], f"the network was used: {calls}"


def refuse_unpickling(monkeypatch: Any) -> None:
    """``torch.load`` fails the test from here on: what runs next must not unpickle a checkpoint."""
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", refuse)


def hub_out_of_reach(monkeypatch: Any, by_env: bool) -> None:
    """The Hugging Face hub out of reach, as a user meets it: ``HF_HUB_OFFLINE`` set (``by_env``),
    or no such variable and the hub's reachability probe (``aigc_core.helpers.hub``) finding no route."""
    if by_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        return
    from .helpers import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(hub.socket, "create_connection", unreachable)


# ---------------------------------------------------------------------------------------------
# Resuming inside an epoch


class SimulatedKill(BaseException):
    """Raised inside a training step by :func:`check_mid_epoch_resume`: the process "dies" there."""


def check_mid_epoch_resume(config: Mapping, workdir: Path, kill_at_step: int, every_n_steps: int) -> dict:
    """Train ``config`` uninterrupted, then again killed at ``kill_at_step`` and rerun; both must end equal.

    The second run writes a checkpoint every ``every_n_steps`` optimiser steps and dies in the
    training step that follows ``kill_at_step``; its rerun must say it resumed from inside an
    epoch (a batch other than 0) and end with exactly the uninterrupted run's weights, optimiser
    states and artifact: the same batches in the same order and the same random draws (noise,
    dropout, binarisation) after the resume as without it. Choose ``kill_at_step`` so that the
    last checkpoint before it falls inside an epoch. Returns the rerun's ``resumed_from``.
    """
    import torch

    from .orchestration.pipeline import Pipeline

    workdir = Path(workdir)
    train = {**dict(config.get("train") or {}), "checkpoint_every_n_steps": every_n_steps,
             "checkpoint_every_minutes": 0}
    config = {**dict(config), "train": train}
    reference = Pipeline.from_config({**config, "output": {"dir": str(workdir / "reference")}})
    reference.fit()
    killed = Pipeline.from_config({**config, "output": {"dir": str(workdir / "killed")}})
    cls = killed.gen.cls.training_class()
    original = cls.training_step

    def dying(self, batch, batch_idx):
        if self.global_step >= kill_at_step:
            raise SimulatedKill(f"killed at step {self.global_step}")
        return original(self, batch, batch_idx)

    cls.training_step = dying
    try:
        killed.fit()
        raise AssertionError(f"training ended before step {kill_at_step}: nothing was killed")
    except SimulatedKill:
        pass
    finally:
        cls.training_step = original
    rerun = Pipeline.from_config({**config, "output": {"dir": str(workdir / "killed")}})
    rerun.fit()
    got, expected = rerun.manifest()["training"], reference.manifest()["training"]
    resumed = got["resumed_from"]
    assert resumed is not None, "the rerun started from scratch"
    assert resumed["batch"] > 0, f"the rerun resumed at an epoch's start ({resumed}), not inside one"
    assert kill_at_step - every_n_steps <= resumed["step"] <= kill_at_step, resumed
    assert got["global_step"] == expected["global_step"], (got, expected)
    a = torch.load(workdir / "reference" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(workdir / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    different = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not different, f"weights differ from the uninterrupted run's: {different[:5]}"
    for x, y in zip(a["optimizer_states"], b["optimizer_states"]):
        for key, state in x["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(y["state"][key][name])), \
                    f"optimiser state {key}.{name} differs from the uninterrupted run's"
    assert rerun.manifest()["checkpoint"]["files"] == reference.manifest()["checkpoint"]["files"], \
        "the artifact differs from the uninterrupted run's"
    return resumed


__all__ = [
    "ContractFailure", "DATA_SOURCE_CHECKS", "DataSourceContract", "GENERATOR_CHECKS", "GeneratorContract",
    "POSTPROCESSOR_CHECKS", "PostProcessorContract", "check_content", "check_data_source", "check_generator",
    "generate", "stream",
    "SimulatedKill", "check_item", "check_mid_epoch_resume", "check_postprocessor", "check_registrations",
    "registrations", "same_data",
    "sample_content", "tiny_source",
]
