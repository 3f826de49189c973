"""Lightning does the engineering: Trainer, checkpoints, logs. This module only wires it up."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from torch.utils.data import RandomSampler

from ..contract import progress
from ..helpers.allocator import tune_allocator
from ..contract.atomic import write_text
from ..contract.content import Content
from ..store.checkpoints import NonFiniteLoss, RunCheckpointIO, RunCheckpoints, StopSignals, loaders_in
from ..contract.errors import CheckpointError, Interrupted
from ..generation.inference import generate_with
from ..contract.modalities import get_modality
from ..store.rundir import CHECKPOINT_FILE, LOGS_DIR, RunDir
from ..contract.training_module import as_datamodule, training_module

_QUIET = (
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*resuming from a checkpoint that ended before the epoch ended.*",  # checkpoints.RunCheckpoints handles it
    # Lightning's Timer (train.max_time) saved its state; resumed without a budget, nothing needs it
    r".*callbacks used to create the checkpoint need to be provided during `Trainer` instantiation.*",
)


def quiet_lightning() -> None:
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed",
                 "lightning_fabric.utilities.distributed", "pytorch_lightning.utilities.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)


class SampleWriter(Callback):
    """Makes a preview every few epochs and hands it to ``preview(content, stem)``, so progress can be seen.

    Training only produces the preview; where and how it is written is the caller's business, so
    nothing here reaches back into the pipeline.
    """

    def __init__(self, preview: Callable[[Content, str], None] | None, every: int, seed: int):
        self.preview = preview
        self.every = every
        self.seed = int(seed)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.preview is None or not self.every or (trainer.current_epoch + 1) % self.every \
                or not trainer.is_global_zero:
            return
        generator = module.generator  # eval mode and back, no autograd: generate_with's
        content = generate_with(generator, get_modality(generator.modality).preview_count, self.seed)
        self.preview(content, f"epoch_{trainer.current_epoch + 1:03d}")


def write_preview(content: Content, directory: Path, stem: str, exporter) -> None:
    """As the modality writes previews (``Modality.write_preview``): images as one grid
    ``STEM.png``, others through ``exporter`` into ``directory/STEM``."""
    get_modality(content.modality).write_preview(content, directory, stem, exporter)


class NonFiniteLossGuard(Callback):
    """Stops training when a logged loss is NaN or infinite, keeping the last good checkpoint.

    Under DDP every rank must stop together (a lone rank raising would leave the others waiting
    in the next all-reduce), so the decision is reduced across ranks.
    """

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        bad = None
        for key, value in trainer.callback_metrics.items():
            if "loss" in key and torch.is_tensor(value) and not torch.isfinite(value).all():
                bad = (key, float(value.float().reshape(-1)[0]))
                break
        if trainer.world_size > 1:
            if not trainer.strategy.reduce_boolean_decision(bad is not None, all=False):
                return
            bad = bad or ("loss", float("nan"))
        if bad is not None:
            key, value = bad
            raise NonFiniteLoss(
                f"training stopped: {key} became {value} at step {trainer.global_step}; "
                "the last good checkpoint is kept (lower the learning rate or check the data)"
            )


# --------------------------------------------------------------------------------------------
# Logs that survive a kill and a resume


class _ResumableCSVWriter(ExperimentWriter):
    """Keeps the rows of earlier attempts (Lightning's writer deletes them) and rewrites the file
    atomically, dropping rows of steps that a resumed run is about to repeat."""

    def __init__(self, log_dir: str):
        self.metrics, self.metrics_keys, self.hparams = [], [], {}
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        os.makedirs(log_dir, exist_ok=True)
        self._rows: list[dict] = []
        self._trimmed = False
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self._rows = list(csv.DictReader(f))

    def log_hparams(self, params: dict) -> None:
        self.hparams.update(params)
        write_text(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), json.dumps(self.hparams, default=str) + "\n")

    def save(self) -> None:
        if not self.metrics:
            return
        if not self._trimmed:
            first = min(int(m.get("step", 0)) for m in self.metrics)
            self._rows = [r for r in self._rows if _int(r.get("step")) < first]
            self._trimmed = True
        self._rows.extend(self.metrics)
        self.metrics = []
        keys = sorted(set().union(*self._rows))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self._rows)
        write_text(self.metrics_file_path, buffer.getvalue())


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return -1


class ResumableCSVLogger(CSVLogger):
    @property
    def experiment(self) -> _ResumableCSVWriter:
        if self._experiment is None:
            self._experiment = _ResumableCSVWriter(self.log_dir)
        return self._experiment


class AtomicTensorBoardLogger(TensorBoardLogger):
    """TensorBoard, with its one YAML file written atomically (event files are append-only logs)."""

    def save(self) -> None:
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and not os.path.isfile(hparams_file):
            write_text(hparams_file, json.dumps(dict(self.hparams), default=str) + "\n")
        super().save()


# --------------------------------------------------------------------------------------------
# Randomness that a resume repeats


def derived_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class EpochSeeder(Callback):
    """Each epoch's randomness derives from (seed, epoch, rank) alone.

    Lightning does not store RNG states in checkpoints, so without this a run resumed after a kill
    would draw other noise and another data order than the uninterrupted run. The shuffling
    generator is seeded the way Lightning's DistributedSampler seeds itself (seed + epoch), so one
    process sees the same global batches as N processes. (A resume inside an epoch also needs the
    states reached within it: checkpoints.RunCheckpoints stores and restores those.)
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._epoch_shuffles(trainer)  # a run resumed inside an epoch gets no on_train_epoch_start

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        s = derived_seed(self.seed, epoch, trainer.global_rank)
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s % (1 << 32))
        for sampler in self._epoch_shuffles(trainer):
            sampler.set_epoch(epoch)

    def _epoch_shuffles(self, trainer: pl.Trainer) -> list:
        found = []
        for loader in loaders_in(trainer.train_dataloader):
            sampler = getattr(loader, "sampler", None)
            if type(sampler) is RandomSampler and isinstance(sampler.generator, torch.Generator):
                sampler.__class__ = EpochShuffle  # same object, reseeded at each iteration
                sampler.seed = self.seed
            if isinstance(sampler, EpochShuffle):
                found.append(sampler)
        return found


class EpochShuffle(RandomSampler):
    """A shuffle whose order is a function of (seed, epoch), like DistributedSampler's.

    It reseeds at the start of every iteration, because Lightning may open the iterator more than
    once around a resume, and each opening would otherwise advance the generator.
    """

    seed = 0
    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class RunProgress(Callback):
    """The whole run's progress and time left, where Lightning's bar shows one epoch's.

    The share done is the largest of the bounds that apply (epochs, ``max_steps``, the time
    budget), so the estimate follows whichever ends training first; the time left comes from the
    pace of this session (a resumed run does not count the first session's speed). It feeds the
    phase ``training`` (plain lines in a log) and Lightning's bar on a terminal (``RunBar``).
    """

    def __init__(self, shown: progress.Phase, max_epochs: int, max_steps: int, budget_s: float | None):
        self.shown = shown
        self.max_epochs = int(max_epochs)
        self.max_steps = int(max_steps)
        self.budget_s = budget_s
        self.text = ""
        self._mark: tuple[float, float] | None = None  # (time, share) when this session started

    def fraction(self, trainer: pl.Trainer, batches_in_epoch: int) -> float | None:
        shares = []
        per_epoch = trainer.num_training_batches
        if self.max_epochs > 0 and isinstance(per_epoch, int) and per_epoch > 0:
            shares.append((trainer.current_epoch * per_epoch + batches_in_epoch) / (self.max_epochs * per_epoch))
        if self.max_steps > 0:
            shares.append(trainer.global_step / self.max_steps)
        timer = _timer(trainer)
        if timer is not None and self.budget_s:
            shares.append(timer.time_elapsed("train") / self.budget_s)
        return min(1.0, max(shares)) if shares else None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._mark = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        share = self.fraction(trainer, batch_idx + 1)
        epochs = f"epoch {trainer.current_epoch + 1}" + (f"/{self.max_epochs}" if self.max_epochs > 0 else "")
        detail = f"{epochs}, step {trainer.global_step}"
        if share is None:
            self.shown.update(batch_idx + 1, detail=detail)
            return
        now = time.monotonic()
        if self._mark is None:
            self._mark = (now, share)
        t0, s0 = self._mark
        left = (now - t0) / (share - s0) * (1.0 - share) if share > s0 else None
        timer = _timer(trainer)
        if timer is not None and self.budget_s:
            budget_left = max(0.0, self.budget_s - timer.time_elapsed("train"))
            left = budget_left if left is None else min(left, budget_left)
        self.text = f"{share:.0%}" + (f", {progress.format_duration(left)} left" if left is not None else "")
        self.shown.update(round(100 * share, 1), 100, detail=detail, eta=left)


def _timer(trainer: pl.Trainer) -> Any:
    from pytorch_lightning.callbacks import Timer

    return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)


def _run_bar(run: RunProgress) -> Callback:
    """Lightning's own bar (one epoch), with the whole run's share and time left beside its figures."""
    from pytorch_lightning.callbacks import TQDMProgressBar

    class RunBar(TQDMProgressBar):
        # Lightning writes its bars to stdout, where aigc prints what a command made: stderr instead
        def init_sanity_tqdm(self):
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_sanity_tqdm()

        def init_train_tqdm(self):
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_train_tqdm()

        def init_validation_tqdm(self):
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_validation_tqdm()

        def get_metrics(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict:
            items = super().get_metrics(trainer, module)
            if run.text:
                items["run"] = run.text
            return items

    return RunBar()


def _frozen_eval_modules_only(module: torch.nn.Module) -> bool:
    """True when every module in eval mode sits in a frozen sub-model (a trained vocoder inside a
    spectrogram generator: eval mode, no parameter requiring grad): Lightning's warning about
    eval-mode modules would then be noise. Any other eval-mode module keeps the warning."""
    modules = dict(module.named_modules())
    roots = [name for name, m in modules.items()
             if not m.training and (name == "" or modules[name.rpartition(".")[0]].training)]
    for name in roots:
        params = list(modules[name].parameters())
        if not params or any(p.requires_grad for p in params):
            return False
    return bool(roots)


def _clock() -> float:
    """The training clock of time-based checkpoints (a function, so tests can stand in for time)."""
    return time.monotonic()


def _strategy(name: Any, module: pl.LightningModule) -> Any:
    """A GAN's manual optimisation leaves one network unused in each backward pass; DDP must know."""
    if name == "ddp" and not module.automatic_optimization:
        return "ddp_find_unused_parameters_true"
    return name


def seed_everything(seed: int) -> None:
    """Seed every random generator; call it before building the generator, whose weights it draws."""
    quiet_lightning()
    pl.seed_everything(seed, workers=True, verbose=False)


def trainer_kwargs(train: Any) -> dict:
    """The Trainer's arguments from the ``train`` section (``aigc check`` builds one from them too)."""
    t = train
    kwargs = dict(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch, deterministic=t.deterministic,
    )
    for key in ("gradient_clip_val", "limit_train_batches", "limit_val_batches"):
        if getattr(t, key) is not None:
            kwargs[key] = getattr(t, key)
    budget = t.time_budget_s()
    if budget is not None:
        from datetime import timedelta

        kwargs["max_time"] = timedelta(seconds=budget)
        if t.max_epochs < 1:
            kwargs["max_epochs"] = -1  # the time budget alone ends training
    return kwargs


def fit(source: Any, generator: torch.nn.Module, train: Any, *, seed: int, rundir: RunDir,
        resume: bool, preview: Callable[[Content, str], None] | None = None,
        callbacks: Sequence[Callback] = (), base: Any = False, adapter: Any = None) -> dict:
    """Train ``generator`` on ``source`` with the ``train`` settings; checkpoints and logs go into ``rundir``.

    The generator is wrapped in the LightningModule its class names (``Generator.training``); the
    trained weights stay in ``generator`` itself.

    Returns the training summary. ``resume``: continue from ``checkpoints/last.ckpt`` when it is
    there (verified first). ``preview(content, stem)`` receives the previews made every
    ``train.sample_every_n_epochs``; ``callbacks`` are added before aigc's checkpointing one.
    ``base``: the base ``Run`` (None: a checkpoint in the backend's own format) when the generator
    starts from ``generator.base``; the training module's ``adopt_base`` sees it before fitting.
    ``adapter``: the ``AdapterSpec`` attached to ``generator``, whose ``lr_scale`` scales the
    adapter's learning rates.
    """
    quiet_lightning()
    tune_allocator()
    t = train
    module = training_module(generator)
    if base is not False:
        module.adopt_base(base)
    if adapter is not None:
        from ..generation.adapters import scale_lr

        scale_lr(module, adapter)
    datamodule = as_datamodule(module.datamodule(source))
    run_dir = rundir.path
    checkpoint_io = RunCheckpointIO(rundir)
    stop = StopSignals()
    checkpoints = RunCheckpoints(run_dir, checkpoint_io, every_n_epochs=t.checkpoint_every_n_epochs,
                                 every_n_steps=t.checkpoint_every_n_steps, every_minutes=t.checkpoint_every_minutes,
                                 keep=t.checkpoint_keep, stop=stop, clock=_clock)
    callbacks = [
        SampleWriter(preview, t.sample_every_n_epochs, seed),
        NonFiniteLossGuard(),
        EpochSeeder(seed),
        *callbacks,
        checkpoints,  # last: what the others write at an epoch's end is on disk before the checkpoint
    ]
    loggers = [ResumableCSVLogger(str(run_dir), name=LOGS_DIR, version="csv")]
    try:
        loggers.append(AtomicTensorBoardLogger(str(run_dir), name=LOGS_DIR, version="tb", default_hp_metric=False))
    except ModuleNotFoundError:
        pass
    kwargs = trainer_kwargs(t)
    budget = t.time_budget_s()
    # the CLI's display: on a terminal Lightning's bar draws (with the run's share and time left),
    # in a log plain lines do (a bar's carriage returns make a mess of a log), --quiet shows neither
    shown_as = progress.display_kind()
    bar = t.progress_bar if shown_as in (None, "rich") else False
    with progress.phase("training", external=bar, listen=False, unit="%") as shown:
        run = RunProgress(shown, kwargs["max_epochs"], t.max_steps, budget)
        callbacks.insert(0, run)
        if bar:
            callbacks.insert(0, _run_bar(run))
        kwargs.update(
            strategy=_strategy(t.strategy, module),
            enable_progress_bar=bar, enable_model_summary=False, enable_checkpointing=False,
            default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks,
            plugins=[checkpoint_io],
        )
        try:
            trainer = pl.Trainer(**kwargs)
        except (ValueError, TypeError, RuntimeError) as exc:  # Lightning's own checks of the train section
            from ..contract.errors import ConfigError

            raise ConfigError("train", str(exc).strip().splitlines()[0]) from None
        started = time.perf_counter()
        _train(trainer, module, datamodule, rundir, resume, stop, checkpoints)
    summary = {
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "resumed_from": checkpoints.resumed_from,
        "checkpoints_written": checkpoints.written,
        "checkpoint_s": round(checkpoints.seconds, 3),
        "train_s": round(time.perf_counter() - started, 3),
        "accelerator": type(trainer.accelerator).__name__,
        "world_size": int(trainer.world_size),
        "precision": str(trainer.precision),  # what it really trained in (Lightning's name)
        "global_rank": int(trainer.global_rank),
    }
    timer = _timer(trainer)
    if budget is not None and timer is not None:
        used = float(timer.time_elapsed("train"))
        summary["time_budget"] = {"max_time_s": round(budget, 3), "used_s": round(used, 3),
                                  "stopped": used >= budget}
        if used >= budget and trainer.is_global_zero and progress.display_kind() != "off":
            print(f"aigc: training stopped at its time budget ({progress.format_duration(budget)} of training, "
                  f"train.max_time/max_minutes) at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                  "a rerun with a larger budget goes on from there", file=sys.stderr, flush=True)
    return summary


def _train(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any, rundir: RunDir, resume: bool,
           stop: StopSignals, checkpoints: RunCheckpoints) -> None:
    last = rundir.checkpoint_dir / CHECKPOINT_FILE
    ckpt_path = None
    if resume and last.is_file():
        rundir.verify_checkpoint(last)  # before Lightning opens it at all
        ckpt_path = str(last)
    try:
        with stop, warnings.catch_warnings():
            if _frozen_eval_modules_only(module):
                warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if stop.signum is not None:  # the signal came after the last batch: the final checkpoint is written
            raise checkpoints._interrupted()
    except (NonFiniteLoss, CheckpointError, Interrupted):
        raise
    except SystemExit:  # Lightning's own SIGTERM exit, for a signal that came before training started
        if stop.signum is not None:
            raise checkpoints._interrupted() from None
        raise
    except Exception as exc:
        if ckpt_path and _is_unpickling_error(exc):
            raise CheckpointError(f"{last}: refused to load: {str(exc).splitlines()[0]}") from None
        if ckpt_path and isinstance(exc, (RuntimeError, KeyError)) and "state_dict" in str(exc):
            raise CheckpointError(f"{last}: does not fit this generator (a checkpoint of another model?)") from None
        raise


def _is_unpickling_error(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, (pickle.UnpicklingError, EOFError)) or "weights_only" in str(exc)
