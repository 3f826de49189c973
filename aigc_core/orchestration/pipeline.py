"""The orchestration API: one class that the CLI, the server and the tests all drive.

    pipe = Pipeline.from_config("configs/quickstart.yaml", overrides=["train.max_epochs=1"])
    run_dir = pipe.run()          # fit, generate, post-process, export, score

    inference = Run.load(run_dir).inference                # aigc_core.Run: a finished run, loaded
    content = inference.generate(8, seed=1)

Data flows one way: config -> data source -> training (``training.fit``, explicit inputs) -> run
directory (``RunDir``: checkpoints, model, manifest) -> inference (``Inference``: defaults +
options + seed -> generate -> stamp) -> post-processors -> exporter. This class resolves the
config into components and hands each stage what it needs; no stage calls back into it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..store import config as cfg
from ..contract.atomic import sha256_file
from ..contract.content import Content
from ..contract.errors import AigcError, CheckpointError, ConfigError, QualityGateError, UsageError, first_line
from ..generation.inference import Inference, options_dict
from ..plugins import get_registry
from ..contract.progress import phase
from ..helpers.ranks import launcher_rank
from ..plugins.registry import ComponentInfo, Registry
from .personalise import CORE_KEYS
from ..store.rundir import EMPTY, MODEL_DIR, NEW, RUN, RunDir
from ..contract.seeding import MAX_TRAIN_SEED
#: Keys whose change does not make a different run: training can go on with more epochs.
RESUMABLE_CHANGES = ("train.max_epochs", "train.max_steps", "train.max_time", "train.max_minutes",
                     "train.progress_bar", "train.devices", "train.accelerator", "train.strategy", "train.num_nodes",
                     "train.checkpoint_every_n_epochs", "train.checkpoint_every_n_steps",
                     "train.checkpoint_every_minutes", "train.checkpoint_keep")


@dataclass
class Part:
    """One configured component: where it came from, its class and its validated parameters."""

    key: str
    info: ComponentInfo
    cls: type
    params: Any

    @property
    def name(self) -> str:
        return self.info.name

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.cls(self.params, *args, **kwargs)


class Pipeline:
    def __init__(self, raw: Mapping, *, registry: Registry | None = None, run_dir: str | Path | None = None,
                 written: Mapping | None = None, config_dir: str | Path | None = None,
                 cwd_keys: Sequence[str] = ()):
        from ..contract.preflight import dotted

        self.raw = dict(raw)
        #: Keys set on the command line (``key=value``): their relative paths mean the working directory.
        self.cwd_keys = {dotted(k) for k in cwd_keys}
        #: Where relative paths of the config resolve from: the config file's folder (``preflight``).
        self.config_dir = Path(config_dir).absolute() if config_dir is not None else Path.cwd()
        #: Unset variables in declared paths: raised by ``check`` (and so by ``run``), not by loading a run.
        self.path_problems: list = []
        #: The config as it goes to disk: like ``raw``, but values read with ``${oc.env:...}`` stay unresolved.
        self.written = dict(written) if written is not None else self.raw
        self.registry = registry or get_registry()
        self._resolve()
        self.run_dir = Path(run_dir) if run_dir is not None else Path(self.output.dir)
        self.rundir = RunDir(self.run_dir)
        self._source = None
        self._generator = None
        self._inference: Inference | None = None
        #: sha256 over the model's files (``RunDir.model_fingerprint``), once trained or loaded.
        self.fingerprint: str | None = None
        #: False on the extra processes of a distributed run: they train, then leave the rest to rank 0.
        self.is_global_zero = True

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, source: str | Path | Mapping, overrides: Sequence[str] = (), **kwargs: Any) -> "Pipeline":
        # resolving the components imports their modules (torch, transformers, diffusers): seconds,
        # tens on a busy machine, so a log hears of it if it lasts (lazy: a config error stays one line)
        with phase(STARTING, lazy=True):
            raw, written = cfg.load_config(source, overrides)
            if not isinstance(source, Mapping):
                kwargs.setdefault("config_dir", Path(source).absolute().parent)
                kwargs.setdefault("cwd_keys", [item.partition("=")[0].strip() for item in overrides])
            return cls(raw, written=written, **kwargs)

    @classmethod
    def for_run_dir(cls, run_dir: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> "Pipeline":
        """The stored config of a run resolved into components, nothing loaded: ``Run.load`` loads."""
        run_dir = Path(run_dir)
        config_path = RunDir(run_dir).config_path
        if not config_path.is_file():
            raise UsageError(f"{run_dir}: not a run directory (no {config_path.name})")
        raw, written = cfg.load_config(config_path, overrides)
        # relative paths mean what they meant when the run was made (runs before this record: the working directory)
        recorded = RunDir(run_dir).manifest().get("config_dir")
        if isinstance(recorded, str) and recorded:
            kwargs.setdefault("config_dir", recorded)
        try:
            with phase(STARTING, lazy=True):  # as in from_config: the components' imports
                return cls(raw, run_dir=run_dir, written=written, **kwargs)
        except ConfigError as exc:
            raise _missing_plugin_hint(exc, RunDir(run_dir).manifest(), kwargs.get("registry")) from None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, overrides: Sequence[str] = (), **kwargs: Any) -> "Pipeline":
        """A pipeline over a finished run, its generator loaded: what ``Run.load`` wraps."""
        pipe = cls.for_run_dir(run_dir, overrides, **kwargs)
        pipe.load_generator()
        return pipe

    def _resolve(self) -> None:
        raw = self.raw
        cfg.top_level_check(raw)
        self.name: str = raw["name"]
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError("seed", f"expected an integer, got {seed!r}")
        if not 0 <= seed <= MAX_TRAIN_SEED:  # Lightning's seed_everything takes 32 bits
            raise ConfigError("seed", f"must be in [0, {MAX_TRAIN_SEED}], got {seed}")
        self.seed: int = seed
        reg = self.registry

        data = dict(raw["data"])
        if "source" not in data:
            raise ConfigError("data.source", "missing required value")
        info = reg.get("data_source", data["source"], "data.source")
        klass = info.load()
        self.data = Part("data", info, klass, self._params(klass.Params, data, "data", ignore=("source",)))

        gen = dict(raw["generator"])
        if "name" not in gen:
            raise ConfigError("generator.name", "missing required value")
        info = reg.get("generator", gen["name"], "generator.name")
        klass = info.load()
        gen = self._resolve_base(gen)
        self.gen = Part("generator", info, klass, self._params(klass.Params, gen, "generator", ignore=CORE_KEYS))
        self.modality = self.gen.info.modalities[0]
        if self.data.info.modalities[0] != self.modality:
            raise ConfigError(
                "data.source",
                f"data source {self.data.name!r} gives {self.data.info.modality} but generator "
                f"{self.gen.name!r} makes {self.modality}",
            )

        self.train = cfg.build_params(cfg.TrainConfig, raw.get("train"), "train")
        self.output = cfg.build_params(cfg.OutputConfig, raw.get("output") or {"dir": f"runs/{self.name}"}, "output")

        gen_section = raw.get("generate") or {}
        if not isinstance(gen_section, Mapping):
            raise ConfigError("generate", f"expected a mapping, got {gen_section!r}")
        own = set(cfg.GenerateSection.model_fields)
        self.generate_section = cfg.build_params(
            cfg.GenerateSection, {k: v for k, v in gen_section.items() if k in own}, "generate"
        )
        self.generate_options = self.validate_options({k: v for k, v in gen_section.items() if k not in own}, "generate")

        self.postprocessors = [self._part("postprocessor", "postprocess", i, spec)
                               for i, spec in enumerate(self._list("postprocess"))]
        self.metrics = [self._part("metric", "metrics", i, spec) for i, spec in enumerate(self._list("metrics"))]
        exporter_name = self.output.exporter or self.modality
        info = reg.get("exporter", exporter_name, "output.exporter", modality=self.modality)
        if self.modality not in info.modalities:
            raise ConfigError("output.exporter", f"exporter {exporter_name!r} writes {info.modality}, not {self.modality}")
        klass = info.load()
        self.exporter = Part("output.exporter", info, klass, klass.Params())

    def _resolve_base(self, gen: dict) -> dict:
        """``generator.base`` and ``generator.adapter`` (see ``personalise``): the generator section,
        with a base run's parameters under the keys this config leaves unset."""
        from . import personalise

        #: What ``generator.base`` names (None: trained from nothing) and, for an aigc run, its pipeline.
        self.base: personalise.BaseRef | None = None
        self.base_pipe: Pipeline | None = None
        #: ``generator.adapter``: the LoRA spec (None: every weight trains).
        self.adapter = None
        adapter = gen.get("adapter")
        if gen.get("base") is not None:
            self.base = personalise.resolve(gen["base"], self.config_dir,
                                            from_cwd=bool({"generator", "generator.base"} & self.cwd_keys))
            if self.base.is_run:
                self.base_pipe = personalise.base_pipeline(self.base, gen["name"], self.registry)
                gen = {"name": gen["name"], **personalise.inherited(self.base_pipe.gen.params, gen)}
        if adapter is not None:
            from ..generation.adapters import AdapterSpec

            if self.base is None:
                raise ConfigError("generator.adapter", "an adapter corrects a trained model: set generator.base "
                                                       "to a finished run or a pretrained checkpoint")
            self.adapter = cfg.build_params(AdapterSpec, adapter, "generator.adapter")
        return gen

    def _list(self, key: str) -> list:
        value = self.raw.get(key) or []
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list of {{name: ...}} entries, got {value!r}")
        return value

    def _part(self, kind: str, key: str, index: int, spec: Any) -> Part:
        where = f"{key}[{index}]"
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(where, f"expected a mapping with a 'name', got {spec!r}")
        info = self.registry.get(kind, spec["name"], f"{where}.name", modality=self.modality)
        if self.modality not in info.modalities:
            raise ConfigError(
                f"{where}.name",
                f"{info.name!r} accepts {info.modality}, but generator {self.gen.name!r} makes {self.modality}",
            )
        klass = info.load()
        return Part(where, info, klass, self._params(klass.Params, spec, where, ignore=("name",)))

    def _params(self, params_cls: type, values: Any, prefix: str, ignore: Sequence[str] = ()) -> Any:
        """Validated parameters, with declared paths resolved from the config's folder first."""
        from ..contract.preflight import resolve_paths

        values, problems = resolve_paths(params_cls, values, prefix, self.config_dir, self.cwd_keys,
                                         self._written_at(prefix))
        self.path_problems += problems
        self._record_cwd_paths(params_cls, values, prefix)
        try:
            return cfg.build_params(params_cls, values, prefix, ignore=ignore)
        except ConfigError:
            if problems:  # a validator that reads the file saw the unexpanded name: the variable is the cause
                raise problems[0].error() from None
            raise

    def _written_at(self, key: str) -> Any:
        """The section at ``key`` (``postprocess[1]``) of the config as written (interpolations kept)."""
        from ..contract.preflight import dotted

        node: Any = self.written
        for part in dotted(key).split("."):
            try:
                node = node[int(part)] if isinstance(node, list) else node.get(part)
            except (IndexError, ValueError, AttributeError, TypeError):
                return None
        return node

    def _record_cwd_paths(self, params_cls: type, values: Any, prefix: str) -> None:
        """A relative path typed on the command line goes into config.yaml resolved: the run's
        recorded config folder (from which its other paths resolve later) is not what it meant."""
        from ..contract.preflight import dotted, path_fields

        if not isinstance(values, Mapping):
            return
        for name in path_fields(params_cls):
            key = dotted(f"{prefix}.{name}")
            if (key in self.cwd_keys or dotted(prefix) in self.cwd_keys) and name in values:
                node = self.written
                *parents, leaf = key.split(".")
                for part in parents:
                    try:
                        node = node[int(part)] if isinstance(node, list) else node.get(part)
                    except (IndexError, ValueError, AttributeError):
                        return
                    if node is None:
                        return
                if isinstance(node, dict) and not (isinstance(node.get(leaf), str) and "${" in node[leaf]):
                    node[leaf] = values[name]

    @property
    def parts(self) -> list[Part]:
        return [self.data, self.gen, *self.postprocessors, *self.metrics, self.exporter]

    def validate_options(self, options: Mapping, prefix: str = "generate") -> Any:
        """The generator's validated options object from a mapping, with the usual key-path errors."""
        return cfg.build_params(self.gen.cls.GenerateOptions, dict(options), prefix)

    def check(self) -> "Pipeline":
        """What construction cannot see: what the config names outside itself (``check_inputs``) and
        whether Lightning takes the train section on this machine (strategy names, an absent GPU).
        ``aigc check`` and ``fit`` both ask, before any data is read or anything written."""
        self.check_inputs()
        self._check_base()
        self._check_trainer()
        return self

    def _check_base(self) -> None:
        """An adapter's targets and rank against the base run's generator (loaded, verified): a layer
        name that does not exist or a rank larger than a layer fails in ``aigc check``, not mid-run."""
        if self.adapter is None or self.base_pipe is None:
            return
        from ..generation.adapters import check_spec

        check_spec(self.base_pipe.generator, self.adapter)

    def check_inputs(self) -> None:
        """Unset variables and missing files in declared paths, then each component's own ``check``
        (a vocoder run that is missing, unfinished or made for other mel settings, say)."""
        from ..contract.preflight import CheckContext, check_paths

        if self.path_problems:
            raise self.path_problems[0].error()
        for part in self.parts:
            check_paths(part.params, part.key)
        for part in self.parts:
            checker = getattr(part.cls, "check", None)
            if callable(checker):
                checker(part.params, CheckContext(part.key, data=self.data.params, config_dir=self.config_dir,
                                                  config=self.raw))

    # -- run directory -----------------------------------------------------------------------
    def _training_config(self) -> dict:
        return _training_subset(self.written, self.seed)

    def prepare_run_dir(self, restart: bool = False) -> bool:
        """Create or reopen the run directory; True when an earlier run can be resumed.

        Only a new or empty directory becomes a run; a non-empty one that is not aigc's is refused
        with or without --restart (see ``rundir``)."""
        rd = self.rundir
        state = rd.refuse_unless_writable()
        resumable = False
        if state == RUN:
            stored = rd.stored_config_text()
            diff = []
            if stored is not None:
                old = Pipeline._flat(_training_subset(_unresolved_yaml(stored), None))
                new = Pipeline._flat(self._training_config())
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)
                              and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_CHANGES))
            if diff and not restart:
                raise UsageError(
                    f"{self.run_dir} holds a run of another config (differs at {diff[0]}); use --restart to "
                    "discard that run (only files aigc wrote there are removed) or set output.dir to another directory"
                )
            if restart:
                if launcher_rank() == 0:  # the other ranks of a distributed run start after rank 0 has cleared
                    rd.clear()
            else:
                resumable = True
        self._fresh_state = state if state in (NEW, EMPTY) else None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.run_dir, prefix=".probe.", delete=True)
            probe.close()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
            raise AigcError(f"{self.run_dir}: run directory is not writable ({getattr(exc, 'strerror', None) or exc})") from None
        if launcher_rank() == 0:
            if state in (NEW, EMPTY):
                rd.create(config_yaml(self.written), {"name": self.name, "config_dir": str(self.config_dir)})
            else:
                rd.remove_stale_temporaries()
                rd.write_config(config_yaml(self.written))
        return resumable

    @staticmethod
    def _flat(d: Any, prefix: str = "") -> dict:
        out = {}
        if isinstance(d, dict):
            for k, v in d.items():
                out.update(Pipeline._flat(v, f"{prefix}.{k}" if prefix else str(k)))
        else:
            out[prefix] = d
        return out

    def manifest(self) -> dict:
        return self.rundir.manifest()

    def _update_manifest(self, **sections: Any) -> dict:
        return self.rundir.update_manifest(
            {"name": self.name, "seed": self.seed, "modality": self.modality, "generator": self.gen.name,
             "versions": self._versions(), "config_dir": str(self.config_dir)},
            merge=sections,
        )

    def _versions(self) -> dict:
        plugins, provided_by = {}, {}
        for part in self.parts:
            p = self.registry.plugins.get(part.info.plugin)
            if p is not None:
                plugins[p.distribution] = p.version
                provided_by[part.key] = {"name": part.name, "distribution": p.distribution, "version": p.version}
        # which distribution made each component: the hint when one is uninstalled later (_missing_plugin_hint)
        versions = {"python": platform.python_version(), "plugins": plugins, "components": provided_by}
        if "torch" in sys.modules:
            versions["torch"] = sys.modules["torch"].__version__
        core = self.registry.plugins.get("builtin")
        versions["aigc-core"] = core.version if core else "?"
        return versions

    # -- the stages ---------------------------------------------------------------------------
    def data_source(self):
        """The data source, set up for fitting (reads the data on first call)."""
        if self._source is None:
            problems = [p for p in self.path_problems if p.key.startswith("data.")]
            if problems:  # an unset variable: a config error, not unreadable data
                raise problems[0].error()
            with phase(f"reading data ({self.data.name})"):
                source = self.data.cls(self.data.params, seed=self.seed)
                source.setup("fit")
            self._source = source
        return self._source

    def fit(self, restart: bool = False, callbacks: Sequence[Any] = ()):
        """Train the generator with Lightning; resumes from the run's last checkpoint if there is one.

        ``callbacks``: more Lightning callbacks for this fit (a benchmark's CPU-time budget, say: the
        train section's ``max_time`` counts wall time, which a shared machine makes meaningless)."""
        with phase("checking the config and this machine (loading Lightning)", lazy=True):
            from ..train import training

            self.check()  # what the config names and what Lightning refuses fail first, before any data is read
        source = self.data_source()  # bad data fails here, before the run directory is touched
        from ..contract.splits import check_needs  # a split too small for a metric: one line now, not after training

        check_needs(source, {part.name: part.build().needs() for part in self.metrics})
        # a base that cannot make this data fails here too: loaded (and checked) before anything is written
        base_generator = self._base_generator(source.info) if self.base is not None else None
        resumable = self.prepare_run_dir(restart=restart)
        started = time.perf_counter()
        from lightning_fabric.utilities.exceptions import MisconfigurationException

        try:
            training.seed_everything(self.seed)  # before building: the weights are drawn from it
            with phase(f"building the generator ({self.gen.name})"):
                if self.base is None:
                    generator = self.gen.cls.build(self.gen.params, source, self.rundir.preprocess_dir)
                else:
                    generator = base_generator.train()  # loaded for sampling: in eval mode
                    training.seed_everything(self.seed)  # the adapter's initial weights: the same for a seed
                    if self.adapter is not None:
                        from ..generation.adapters import attach

                        attach(generator, self.adapter)
            samples_dir, exporter = self.rundir.samples_dir, self.exporter.build()

            def preview(content: Content, stem: str) -> None:
                training.write_preview(content, samples_dir, stem, exporter)

            from ..train.startup import StartupGuard

            try:  # a run stuck meeting its other processes still stops on SIGINT/SIGTERM, its new directory gone
                with StartupGuard(self._discard_if_fresh) as guard:
                    summary = training.fit(source, generator, self.train, seed=self.seed, rundir=self.rundir,
                                           resume=resumable, preview=preview, callbacks=[guard.callback, *callbacks],
                                           base=self._base_run if self.base is not None else False,
                                           adapter=self.adapter)
            except MisconfigurationException as exc:
                # a train setting this generator cannot take (clipping with manual optimisation): known once it is built
                raise ConfigError("train", first_line(exc)) from None
        except BaseException:
            self._discard_if_fresh()
            raise
        self._generator = generator
        self._inference = None
        if summary.get("global_rank", 0) != 0:
            self.is_global_zero = False
            return generator
        personal = {}
        if self.base is not None:
            personal["base"] = self._base_record
            if self.adapter is not None:
                from ..generation.adapters import save_adapter

                files = self.rundir.save_model(lambda d: save_adapter(generator, d, self.adapter, self._base_record))
                personal["adapter"] = self.adapter.model_dump()
        if self.adapter is None:
            files = self.rundir.save_model(generator.save_artifact)
        self.fingerprint = self.rundir.model_fingerprint(files)
        self._update_manifest(training=summary, timings={"fit_s": round(time.perf_counter() - started, 3)}, **personal)
        return generator

    def _base_generator(self, info: Mapping | None) -> Any:
        """The base's generator, loaded and verified: from a finished run (``Run.load``) or, for a
        checkpoint in the backend's own format, by the generator class. ``info``: the data's
        description, which must match the base's (None when loading a finished personalised run)."""
        from . import personalise

        self._base_run = None
        if self.base.is_run:
            from .run import Run

            self._base_run = Run(self.base_pipe)
            generator = self.base_pipe.generator  # loaded by ``check`` already, or now
            self._base_record = personalise.run_record(self.base, self.base_pipe, self.base_pipe.fingerprint)
            self.base_pipe._generator = None  # the copy is ours to train; the base pipeline keeps nothing
        else:
            with phase(f"loading the base ({self.base.written})"):
                generator = self.gen.cls.load_base(self.base.target, self.gen.params, dict(info) if info else None)
            self._base_record = {"kind": "pretrained", **self.gen.cls.base_record(self.base.target)}
        if info is not None:
            personalise.check_info(generator.info, info, self.data.name)
        # the base's weights, this config's parameters (the base's, with what this config changes:
        # learning rates and the like; the networks were built by the base's)
        generator.params = self.gen.params
        return generator

    def _discard_if_fresh(self) -> None:
        """Remove the run directory this first run made (rank 0), unless it holds a checkpoint."""
        if launcher_rank() == 0 and self._fresh_state:
            try:
                self.rundir.discard_new(created=self._fresh_state == NEW)
            except (OSError, AigcError):
                pass  # the first error is the one to report

    def _check_trainer(self) -> None:
        """Build (and drop) a Trainer from the train section: what Lightning refuses fails before any write."""
        import pytorch_lightning as pl

        from ..train.layout import check_layout, check_precision
        from ..train.training import quiet_lightning, trainer_kwargs

        check_layout(self.train)  # what Lightning accepts but this machine cannot run (nodes, devices)
        quiet_lightning()
        from lightning_utilities.core.rank_zero import rank_zero_only

        kwargs = dict(trainer_kwargs(self.train), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
        # Building a Trainer under a launcher's variables sets Lightning's process-wide rank; a
        # check must leave it as it was, or every later logger in this process thinks it is not
        # rank 0 and writes nothing.
        rank = getattr(rank_zero_only, "rank", 0)
        try:
            with warnings.catch_warnings():  # what they warn about is checked below, in one line
                warnings.simplefilter("ignore")
                trainer = pl.Trainer(**kwargs)
        except Exception as exc:  # Lightning's own checks: MisconfigurationException, ValueError...
            raise ConfigError("train", first_line(exc)) from None
        finally:
            rank_zero_only.rank = rank
        check_precision(self.train, trainer)

    def load_generator(self, base: Any = None, adapter_name: str = "default"):
        """Load the trained generator from model/, verified against the manifest's sha256.

        ``base``: for a personalised run, an already loaded base ``Run`` whose generator takes this
        run's adapter under ``adapter_name`` instead of a copy of the base of its own, so ``aigc serve``
        holds one base for many adapters. It is checked like a base loaded here."""
        model_dir = self.rundir.model_dir
        if not model_dir.is_dir():
            raise CheckpointError(f"{self.run_dir}: no trained model here (missing {MODEL_DIR}/); run 'aigc run' first")
        recorded = self.rundir.verified_model_files()  # no record: refused, never loaded unverified
        self.fingerprint = self.rundir.model_fingerprint(recorded)
        generator_name = self.rundir.recorded_generator()
        if generator_name and generator_name != self.gen.name:
            raise CheckpointError(f"{model_dir}: holds a {generator_name!r} checkpoint, not {self.gen.name!r}")
        if self.manifest().get("adapter"):
            self._generator = self._load_personalised(model_dir, base, adapter_name)
        elif base is not None:
            raise UsageError(f"{self.run_dir}: not a personalised run; it cannot share a base")
        else:
            with phase(f"loading the model ({self.gen.name})"):
                self._generator = self.gen.cls.load_artifact(model_dir, self.gen.params)
        self._inference = None
        return self._generator

    def _load_personalised(self, model_dir: Path, base: Any = None, adapter_name: str = "default") -> Any:
        """Base + adapter as one model: the base loaded and checked to be the one the adapter was
        trained on, then the adapter attached and filled from ``model/``."""
        from . import personalise
        from ..generation.adapters import attach, load_adapter_state, read_adapter

        recorded = self.manifest().get("base") if isinstance(self.manifest().get("base"), Mapping) else {}
        if self.base is None:
            raise CheckpointError(f"{self.run_dir}: holds an adapter, but its config names no generator.base")
        spec, info, state = read_adapter(model_dir)
        if base is None:
            generator = self._base_generator(None if self.base.is_run else info)
        else:  # a base loaded once for several adapters (the server's)
            generator = base.generator
            self._base_record = personalise.run_record(self.base, base.pipeline, base.fingerprint)
        personalise.check_base(recorded, self._base_record, self.run_dir)
        with phase("attaching the adapter"):
            attach(generator, spec, name=adapter_name)
            load_adapter_state(generator, state, name=adapter_name, where=str(model_dir))
        generator.eval()
        return generator

    @property
    def generator(self):
        if self._generator is None:
            self.load_generator()
        return self._generator

    @property
    def inference(self) -> Inference:
        """The trained generator with this config's defaults, post-processors and exporter."""
        if self._inference is None:
            section = self.generate_section
            self._inference = Inference(
                self.generator, generator_name=self.gen.name, run_name=self.name, modality=self.modality,
                validate_options=self.validate_options, defaults=options_dict(self.generate_options),
                num_samples=section.num_samples, seed=section.seed if section.seed is not None else self.seed,
                fingerprint=self.fingerprint, postprocessors=self.postprocessors, exporter=self.exporter,
                data_source=self.data_source, run_dir=self.run_dir, config=self.raw,
            )
        return self._inference

    def generate(self, n: int | None = None, seed: int | None = None, **options: Any) -> Content:
        """New content from the trained generator; same seed, same content (see ``Inference.generate``)."""
        return self.inference.generate(n, seed, **options)

    def postprocess(self, content: Content) -> Content:
        return self.inference.postprocess(content)

    def export(self, content: Content, out_dir: str | Path | None = None) -> list[Path]:
        return self.inference.export(content, out_dir if out_dir is not None else self.rundir.outputs_dir)

    def score(self, content: Content) -> dict:
        from ..contract.base import MetricContext

        results = {}
        cache = Path(os.environ.get("AIGC_CACHE_DIR") or Path.home() / ".cache" / "aigc")
        for part in self.metrics:
            context = MetricContext(self.generator, self.data_source(), content, cache, self.seed, self.run_dir,
                                    inference=self.inference)
            with phase(f"metric {part.name}"):
                results[part.name] = part.build().compute(context)
        for line in gate_warnings(results):
            print(f"WARNING: {line}", file=sys.stderr)
        return results

    def run(self, restart: bool = False) -> Path:
        """Fit, generate, post-process, export and score; returns the run directory."""
        t0 = time.perf_counter()
        self.fit(restart=restart)
        if not self.is_global_zero:
            return self.run_dir
        t1 = time.perf_counter()
        content = self.generate()
        t2 = time.perf_counter()
        content = self.postprocess(content)
        t3 = time.perf_counter()
        outputs_dir = self.rundir.outputs_dir
        self.rundir.remove_listed_outputs()  # the last run's exports; a user's files in outputs/ stay
        files = self.export(content, outputs_dir)
        t4 = time.perf_counter()
        metrics = self.score(content)
        t5 = time.perf_counter()
        with phase("writing the summary (loss plot, manifest)", lazy=True):  # matplotlib's import: seconds
            from ..store.plotting import plot_losses

            extra = plot_losses(self.run_dir)
            outputs = [
                {"path": str(p.relative_to(self.run_dir)), "sha256": sha256_file(p), "bytes": p.stat().st_size}
                for p in [*files, *extra]
            ]
            self._update_manifest(
                metrics=metrics,
                outputs=outputs,
                dropped=[{"index": i.meta.get("index"), **i.meta.get("dropped", {})} for i in content.dropped],
                timings={
                    "generate_s": round(t2 - t1, 3),
                    "postprocess_s": round(t3 - t2, 3),
                    "export_s": round(t4 - t3, 3),
                    "metrics_s": round(t5 - t4, 3),
                    "total_s": round(time.perf_counter() - t0, 3),
                },
            )
        failed = gate_warnings(metrics, only="fail")
        if failed:
            raise QualityGateError(f"{self.run_dir}: quality gate failed: {failed[0]}")
        return self.run_dir


#: The lazy phase of resolving a config into components (see ``progress.phase``'s ``lazy``).
STARTING = "starting (loading torch and the components' libraries)"

#: Config keys that name a component, and the manifest's key of that component (``versions.components``).
_NAME_KEYS = (("data.source", "data"), ("generator.name", "generator"), ("output.exporter", "output.exporter"))


def _missing_plugin_hint(exc: ConfigError, manifest: Mapping, registry: Registry | None = None) -> ConfigError:
    """``exc`` with the distribution to reinstall, when it says a component the run was made with is unknown."""
    if "unknown" not in str(exc):
        return exc
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), Mapping) else {}
    components = versions.get("components") if isinstance(versions.get("components"), Mapping) else {}
    part = dict(_NAME_KEYS).get(exc.key) or (exc.key[:-len(".name")] if exc.key.endswith(".name") else exc.key)
    made_by = components.get(part)
    problem = str(exc).split(": ", 1)[-1].split(" (known:")[0]
    if isinstance(made_by, Mapping) and made_by.get("distribution"):
        dist, version = made_by["distribution"], made_by.get("version")
        made = f"{dist} {version}" if version else dist
        return ConfigError(exc.key, f"{problem}: this run was made with {made}, which is not installed now; "
                                    f"reinstall it (aigc plugins install {dist})")
    plugins = versions.get("plugins") if isinstance(versions.get("plugins"), Mapping) else {}
    installed = {p.distribution for p in (registry or get_registry()).plugins.values()}
    gone = sorted(f"{d} {v}" for d, v in plugins.items() if d not in installed)
    if gone:  # a run from before components were recorded: the plugins it used that are missing now
        return ConfigError(exc.key, f"{problem}: this run was made with {', '.join(gone)}, not installed now; "
                                    f"reinstall {'it' if len(gone) == 1 else 'them'} (aigc plugins install NAME)")
    return exc


def gate_warnings(metrics: Mapping, only: str | None = None) -> list[str]:
    """Lines for every metric whose result carries a tripped quality gate (``gate``: warn or fail)."""
    lines = []
    for name, values in metrics.items():
        if isinstance(values, Mapping) and values.get("gate") in ("warn", "fail") and only in (None, values["gate"]):
            lines.append(f"{name} quality gate: {values.get('gate_reason', 'tripped')}")
    return lines


def _training_subset(config: Mapping, seed: int | None) -> dict:
    keep = {k: config.get(k) for k in ("name", "seed", "data", "generator", "train")}
    keep["seed"] = seed if seed is not None else config.get("seed", 0)
    return json.loads(json.dumps(keep, default=str))


def _unresolved_yaml(text: str) -> dict:
    """A stored config.yaml as written: interpolations (the redacted secrets) are compared as text."""
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


def config_yaml(data: Mapping) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(dict(data)))
