"""Checkpoints while training: when they are written, what they hold, how they are written and read.

Lightning's checkpoint holds weights, optimisers and loop counters. :class:`RunCheckpoints`
decides when one is written (every n epochs, every n steps, every few minutes of training, and
on SIGINT or SIGTERM) and adds what Lightning leaves out: the position inside the epoch and the
state of every random number generator. A run resumed in the middle of an epoch therefore skips
the batches it had already trained on and draws the same noise as the run that was killed, and
ends with the same weights as a run that was never interrupted.

Only ``checkpoints/last.ckpt`` is kept unless ``train.checkpoint_keep`` asks for more.

:class:`RunCheckpointIO` is how every checkpoint file is written and read (Lightning's
``CheckpointIO`` plugin): a temporary name and a rename, the sha256 recorded in the run's manifest,
and ``torch.load(weights_only=True)`` after the record is checked; :func:`load_checkpoint_file` is
the one reader of a checkpoint's tensors (``Run.training_state`` uses it too).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import pickle
import random
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback
from torch.utils.data import BatchSampler

from ..contract.atomic import write_bytes
from ..contract.errors import AigcError, CheckpointError, Interrupted, first_line
from .rundir import CHECKPOINT_DIR, CHECKPOINT_FILE, RunDir

LAST = CHECKPOINT_FILE
#: Where aigc's own part of a Lightning checkpoint lives.
STATE_KEY = "aigc_resume"
_KEPT = re.compile(r"^step(\d+)\.ckpt$")


# --------------------------------------------------------------------------------------------
# Random number generators


def rng_state() -> dict:
    """Every generator a training step may draw from, as tensors and plain data (weights_only loads it)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _per_rank(trainer: pl.Trainer, state: dict) -> list:
    """Each process's state, gathered so that rank 0 can write them all into one checkpoint."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        states: list = [None] * trainer.world_size
        torch.distributed.all_gather_object(states, state)
        return states
    return [state]


# --------------------------------------------------------------------------------------------
# Samplers that leave out the part of an epoch already trained on


def _iter_after_skip(self):
    """``__iter__`` of a skipping sampler: the first ``skip`` indices (a resumed epoch's done part) are left out."""
    indices = super(type(self), self).__iter__()
    return itertools.islice(indices, self.skip, None) if self.skip else indices


#: One skipping subclass per sampler class, made on first need (same layout, so ``__class__`` can change).
_SKIPPING: dict[type, type] = {}


def skip_done_batches(loader: Any, batches: int) -> bool:
    """Make ``loader``'s next iterations start after ``batches`` batches; False if it cannot.

    The sampler's order must not change on reopening (aigc's EpochShuffle, DistributedSampler and
    sequential samplers are functions of the epoch), and batches must be plain ``batch_size``
    slices of it: then leaving out ``batches * batch_size`` indices gives exactly the rest.
    """
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    batch_size = getattr(loader, "batch_size", None)
    if sampler is None or batch_size is None or type(batch_sampler) is not BatchSampler \
            or batch_sampler.sampler is not sampler:
        return False
    cls = type(sampler)
    if cls not in _SKIPPING.values():
        if cls not in _SKIPPING:
            _SKIPPING[cls] = type(f"Skipping{cls.__name__}", (cls,), {"__iter__": _iter_after_skip, "skip": 0})
        sampler.__class__ = _SKIPPING[cls]  # the same object: Lightning and the DataLoader hold it
    sampler.skip = int(batches) * int(batch_size)
    return True


def _train_loaders(trainer: pl.Trainer) -> list:
    return loaders_in(trainer.train_dataloader)


def loaders_in(obj: Any) -> list:
    """The DataLoaders in what Lightning holds: one, or lists and dicts of them."""
    if obj is None:
        return []
    if isinstance(obj, (list, tuple)):
        return [x for o in obj for x in loaders_in(o)]
    if isinstance(obj, dict):
        return [x for o in obj.values() for x in loaders_in(o)]
    return [obj]


# --------------------------------------------------------------------------------------------
# SIGINT and SIGTERM


class StopSignals:
    """Turns the first SIGINT or SIGTERM into a request to checkpoint and stop; a second one exits at once.

    Installed around ``Trainer.fit`` only, and only in the main thread (a server runs pipelines
    in worker threads, where Python cannot receive signals).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stream=None):
        self.signum: int | None = None
        self.stream = stream
        self._saved: dict = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def take_back(self) -> None:
        """Handle the signals again after Lightning has put its own SIGTERM handler in place.

        Lightning's would end the process with exit code 0 at the end of the batch, before the
        checkpoint of that batch reaches the disk.
        """
        for signum in self._saved:
            signal.signal(signum, self._handle)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        out = self.stream or sys.stderr
        name = signal.Signals(signum).name
        if self.signum is not None:
            out.write(f"aigc: {name} again: exiting at once; the last checkpoint on disk is kept\n")
            out.flush()
            os._exit(128 + signum)
        self.signum = signum
        out.write(f"aigc: {name} received: writing a checkpoint after this batch, then stopping "
                  "(press Ctrl-C again to exit at once)\n")
        out.flush()


# --------------------------------------------------------------------------------------------
# When checkpoints are written, and what aigc adds to them


class RunCheckpoints(Callback):
    """Writes ``checkpoints/last.ckpt`` on the intervals of the ``train`` section and on a stop signal.

    Mid-epoch checkpoints are taken at the end of a batch (where Lightning's loops can restart)
    but reach the disk only at the start of the next one, after Lightning has logged that batch:
    so the loss log on disk always covers every step of the checkpoint on disk. A checkpoint due
    at the last batch of an epoch waits for the epoch's end (validation, previews), which is
    where epoch checkpoints are written. Keep this callback last in the list: what the other
    callbacks write at an epoch's end must be on disk before the checkpoint that skips it.
    """

    def __init__(self, run_dir: Path, io: Any, *, every_n_epochs: int = 0, every_n_steps: int = 0,
                 every_minutes: float = 5.0, keep: int = 1, stop: StopSignals | None = None,
                 clock: Callable[[], float] | None = None):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / CHECKPOINT_DIR
        self.io = io
        self.every_n_epochs = int(every_n_epochs)
        self.every_n_steps = int(every_n_steps)
        self.every_s = float(every_minutes) * 60.0
        self.keep = int(keep)
        self.stop = stop or StopSignals()
        self.clock = clock or time.monotonic
        #: Where a resumed run started: {"epoch", "batch", "step", "checkpoint"}; None for a fresh start.
        self.resumed_from: dict | None = None
        #: Checkpoints written by this process, and the seconds spent on them (serialising and writing).
        self.written = 0
        self.seconds = 0.0
        self.last_written: dict | None = None
        self._position: dict | None = None  # what the checkpoint being taken records
        self._pending: dict | None = None  # taken, not yet on disk
        self._restore: dict | None = None  # a mid-epoch state to apply when training starts
        self._deferred = False  # a save fell due at an epoch's last batch
        self._stopping = False
        self._step_mark = 0
        self._last_time = 0.0
        self._zero = True
        self._skipping: list = []

    # -- what goes into a checkpoint ------------------------------------------------------
    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        position = self._position or {"epoch": int(trainer.current_epoch), "batch": 0}
        entry = {**position, "step": int(trainer.global_step), "world_size": int(trainer.world_size)}
        if position["batch"]:  # inside an epoch: the rest of it must draw what the killed run would have
            entry["rng"] = _per_rank(trainer, rng_state())
        checkpoint[STATE_KEY] = entry

    def on_load_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        entry = checkpoint.get(STATE_KEY) or {}
        self.resumed_from = {
            "epoch": int(entry.get("epoch", checkpoint.get("epoch", 0))),
            "batch": int(entry.get("batch", 0)),
            "step": int(checkpoint.get("global_step", 0)),
            "checkpoint": f"{CHECKPOINT_DIR}/{LAST}",
        }
        self._restore = entry if entry.get("batch") else None
        if trainer.is_global_zero:
            r = self.resumed_from
            print(f"aigc: resumed from {self.dir / LAST}: epoch {r['epoch']}, batch {r['batch']}, step {r['step']}",
                  file=sys.stderr, flush=True)

    # -- training ---------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.stop.take_back()
        self._zero = trainer.is_global_zero
        self._last_time = self.clock()
        self._step_mark = int(trainer.global_step)
        entry = self._restore
        if entry is None:
            return
        if entry.get("world_size") != trainer.world_size:
            self._restore = None
            self._note(trainer, f"the checkpoint was written by {entry.get('world_size')} processes, this run has "
                                f"{trainer.world_size}: epoch {entry['epoch']} restarts from its first batch")
            return
        loaders = _train_loaders(trainer)
        self._skipping = loaders
        if not all(skip_done_batches(loader, entry["batch"]) for loader in loaders):
            self._note(trainer, "the training data loader has its own batch sampler, so the resumed epoch "
                                f"{entry['epoch']} replays its first {entry['batch']} batches")

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._write_pending()
        if self._stopping:
            raise self._interrupted()
        if self._restore is not None:
            set_rng_state(self._restore["rng"][trainer.global_rank])
            self._restore = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        steps_due = False
        if self.every_n_steps:
            step = int(trainer.global_step)
            steps_due = step // self.every_n_steps > self._step_mark // self.every_n_steps
            self._step_mark = step
        due = steps_due or self._time_due()
        stop = self.stop.signum is not None
        if trainer.world_size > 1:
            due, stop = _agree(trainer, due, stop)
        stepping = not module.automatic_optimization or (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if not (due or stop) or not stepping:  # mid-accumulation: the next batch is asked again
            return
        if batch_idx + 1 >= trainer.num_training_batches:  # the epoch's end is the next clean point
            self._deferred = self._deferred or due
            return
        self._save(trainer, {"epoch": int(trainer.current_epoch), "batch": batch_idx + 1}, defer=True)
        self._stopping = stop

    def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._write_pending()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._write_pending()
        for loader in self._skipping:  # the resumed epoch is over: the next ones are whole
            skip_done_batches(loader, 0)
        self._skipping = []
        epoch = int(trainer.current_epoch)
        due = self._deferred or self._time_due() or \
            bool(self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0)
        stop = self.stop.signum is not None
        if trainer.world_size > 1:
            due, stop = _agree(trainer, due, stop)
        if due or stop:
            self._save(trainer, {"epoch": epoch + 1, "batch": 0}, defer=False)
        if stop:
            raise self._interrupted()

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._write_pending()
        done = self.last_written or self.resumed_from or {}
        if done.get("step") != int(trainer.global_step):  # the end is always a resume point
            self._save(trainer, {"epoch": int(trainer.current_epoch), "batch": 0}, defer=False)

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        try:  # a checkpoint taken before the failure is still a good one
            self._write_pending()
        except Exception:  # noqa: BLE001 - the original exception is the one to report
            pass

    # -- helpers ------------------------------------------------------------------------------
    def _time_due(self) -> bool:
        return bool(self.every_s) and self.clock() - self._last_time >= self.every_s

    def _save(self, trainer: pl.Trainer, position: dict, defer: bool) -> None:
        started = time.perf_counter()
        self._position = position
        self.io.defer = defer
        try:
            trainer.save_checkpoint(self.dir / LAST, weights_only=False)
        finally:
            self.io.defer = False
            self._position = None
        self._deferred = False
        self._last_time = self.clock()
        record = {**position, "step": int(trainer.global_step)}
        self.seconds += time.perf_counter() - started
        if defer:
            self._pending = record
        else:
            self._written(record)

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        started = time.perf_counter()
        record, self._pending = self._pending, None
        self.io.flush()
        self.seconds += time.perf_counter() - started
        self._written(record)

    def _written(self, record: dict) -> None:
        self.written += 1
        self.last_written = record
        if self.keep > 1 and self._zero and (self.dir / LAST).is_file():
            self.io.keep_copy(self.dir / LAST, self.dir / f"step{record['step']:08d}.ckpt", self.keep - 1)

    def _interrupted(self) -> Interrupted:
        r = self.last_written or self.resumed_from or {"epoch": 0, "batch": 0, "step": 0}
        name = self.stop.name or "a signal"
        return Interrupted(self.stop.signum or signal.SIGTERM,
                           f"stopped by {name} after writing {self.dir / LAST} (epoch {r['epoch']}, batch "
                           f"{r['batch']}, step {r['step']})")

    def _note(self, trainer: pl.Trainer, message: str) -> None:
        if trainer.is_global_zero:
            print(f"aigc: warning: {message}", file=sys.stderr, flush=True)


def _agree(trainer: pl.Trainer, *flags: bool) -> tuple:
    """All processes of a distributed run take the same decision (any one asking is enough)."""
    votes = torch.tensor([float(f) for f in flags], device=trainer.strategy.root_device)
    votes = trainer.strategy.reduce(votes, reduce_op="sum")
    return tuple(bool(v > 0) for v in votes.tolist())


def kept_copies(names: list[str]) -> list[tuple[int, str]]:
    """The ``stepNNNNNNNN.ckpt`` copies among ``names``, oldest first."""
    found = [(int(m.group(1)), name) for name in names if (m := _KEPT.match(name))]
    return sorted(found)


class NonFiniteLoss(AigcError):
    pass


# --------------------------------------------------------------------------------------------
# Checkpoints that a kill cannot tear and a stranger cannot plant

def verify_checkpoint(run_dir: Path, path: Path) -> str:
    """The file's sha256 if the run's manifest vouches for it; see ``RunDir.verify_checkpoint``."""
    return RunDir(run_dir).verify_checkpoint(path)


def _non_finite_tensor(state: dict) -> str | None:
    for key, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            return key
    return None


class RunCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, made crash-safe and safe to load.

    Save: refuse non-finite weights (so the last checkpoint on disk is always a good one), write to
    a temporary name, fsync, rename, and keep the sha256 in manifest.json. Load: verify the sha256
    first, then ``torch.load(weights_only=True)``: tensors and plain data only, never arbitrary
    pickled objects.
    """

    def __init__(self, run_dir: Path | RunDir):
        super().__init__()
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.rundir.path
        #: True: ``save_checkpoint`` only serialises; ``flush`` writes it (see RunCheckpoints).
        self.defer = False
        self._held: tuple[Path, bytes] | None = None

    def _name(self, path) -> str:
        return str(Path(path).resolve().relative_to(self.rundir.checkpoint_dir.resolve()))

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Any = None) -> None:
        bad = _non_finite_tensor(checkpoint.get("state_dict") or {})
        if bad is not None:
            raise NonFiniteLoss(
                f"training stopped: weight {bad} became non-finite at step {checkpoint.get('global_step')}; "
                "the last good checkpoint is kept (lower the learning rate or check the data)"
            )
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        if self.defer:
            self._held = (Path(path), buffer.getvalue())
        else:
            self._write(Path(path), buffer.getvalue())

    def flush(self) -> None:
        """Write the checkpoint that a deferred save serialised, if any."""
        if self._held is not None:
            (path, data), self._held = self._held, None
            self._write(path, data)

    def _write(self, path: Path, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        name = self._name(path)
        old = self.rundir.checkpoint_records().get(name) or {}
        previous = [old["sha256"]] if path.is_file() and old.get("sha256") else []
        self.rundir.record_checkpoint(name, previous + [digest])  # both digests valid while renaming
        write_bytes(path, data)
        self.rundir.record_checkpoint(name, [digest])

    def keep_copy(self, source: Path, target: Path, keep: int) -> None:
        """Keep ``source`` also as ``target`` (a hard link: no second write), then drop all but the newest ``keep``."""
        entry = self.rundir.checkpoint_records().get(self._name(source)) or {}
        if not entry.get("sha256"):
            return
        self.rundir.record_checkpoint(self._name(target), [entry["sha256"]])
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # atomic's naming
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links
            write_bytes(target, Path(source).read_bytes())
        else:
            os.replace(tmp, target)
        names = list(self.rundir.checkpoint_records())
        for _, name in kept_copies(names)[:-keep]:
            self.remove_checkpoint(self.rundir.checkpoint_dir / name)

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        self.rundir.verify_checkpoint(Path(path))
        return load_checkpoint_file(Path(path), map_location)

    def remove_checkpoint(self, path) -> None:
        name = self._name(path)
        Path(path).unlink(missing_ok=True)  # file first: a kill in between leaves a record without a file, harmless
        self.rundir.record_checkpoint(name, None)


def load_checkpoint_file(path: Path, map_location: Any = None) -> dict:
    """``torch.load`` with ``weights_only=True``; every failure becomes a one-line CheckpointError."""
    try:
        checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors ({first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first_line(exc)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint of this project (no state_dict)")
    return checkpoint
