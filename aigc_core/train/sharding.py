"""Batch generation at scale: Lightning's predict loop spreads shards over processes and nodes.

Sample ``i`` draws its randomness from ``(seed, i)`` alone and shards have a fixed size, so the
bytes of every file do not depend on how many processes made them. Each shard is exported into
a temporary directory and renamed into place with a ``shard.json`` of sha256 values, so a killed
job leaves finished shards whole and a rerun skips them.

    out/
      generation.json      the settings; a rerun with other settings is refused
      shard_00000/         sample_00000.png ... shard.json
      shard_00001/
      index.json           every shard, its index range and its files (written last)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from ..contract.atomic import sha256_file, write_json
from ..contract.errors import AigcError, UsageError
from ..generation.inference import Inference, options_dict
from ..helpers.ranks import launcher_rank

PLAN_FILE = "generation.json"
INDEX_FILE = "index.json"
SHARD_FILE = "shard.json"
DEFAULT_SHARD_SIZE = 1000
MAX_SAMPLES = 10**9
#: A shard's temporary directory (``tempfile.mkdtemp(prefix=".shard_NNNNN.", suffix=".tmp")``), matched exactly.
_TEMPORARY = re.compile(r"^\.shard_\d{5,}\.[a-z0-9_]{8}\.tmp$")


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    n: int
    shard_size: int

    @property
    def count(self) -> int:
        return -(-self.n // self.shard_size) if self.n else 0

    def bounds(self, shard: int) -> tuple[int, int]:
        lo = shard * self.shard_size
        return lo, min(self.n, lo + self.shard_size)

    @staticmethod
    def name(shard: int) -> str:
        return f"shard_{shard:05d}"


def _shard_files(directory: Path) -> list[str] | None:
    """The files a shard directory's shard.json lists (with shard.json), or None if it has no valid record."""
    try:
        files = json.loads((directory / SHARD_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict):
        return None
    return [rel for rel in files if isinstance(rel, str) and ".." not in Path(rel).parts] + [SHARD_FILE]


def _strangers(directory: Path) -> list[str]:
    """Files in a shard directory that aigc did not write there (all of them without a shard.json)."""
    listed = set(_shard_files(directory) or [])
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if not p.is_dir() and str(p.relative_to(directory)) not in listed)


def _remove_shard(directory: Path) -> None:
    """An earlier, damaged attempt at a shard: remove only the files its record lists."""
    strangers = _strangers(directory)
    if strangers:
        raise AigcError(f"{directory}: holds files aigc did not write ({strangers[0]}); choose another --out")
    for rel in _shard_files(directory) or []:
        (directory / rel).unlink(missing_ok=True)
    for sub in sorted((d for d in directory.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        sub.rmdir()
    directory.rmdir()


def check_out(out: Path, plan: "ShardPlan", overwrite: bool) -> None:
    """Refuse an ``--out`` that holds what aigc did not write, before any work is done.

    A directory with aigc's generation.json is a sharded generation (its settings are compared
    later); any other non-empty one needs ``--overwrite``, and even then no shard directory holding
    a stranger's file is ever replaced.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; choose another --out")
    if not (out / PLAN_FILE).is_file() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out}: not empty and not a sharded generation of aigc (no {PLAN_FILE}); choose another "
                         "--out, or add --overwrite to write beside what is there (aigc's own names only)")
    for shard in range(plan.count):
        directory = out / ShardPlan.name(shard)
        if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
            raise UsageError(f"{directory}: is not a shard directory of aigc; choose another --out")
        if directory.is_dir():
            strangers = _strangers(directory)
            if strangers:
                raise UsageError(f"{directory}: holds files aigc did not write ({strangers[0]}); "
                                 "aigc will not replace it: choose another --out")


def shard_done(out: Path, shard: int) -> bool:
    """A shard counts as finished only if every file it lists is there with its recorded sha256."""
    directory = out / ShardPlan.name(shard)
    try:
        record = json.loads((directory / SHARD_FILE).read_text())
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all((directory / rel).is_file() and sha256_file(directory / rel) == digest for rel, digest in files.items())


def _first(batch: list[int]) -> int:
    return int(batch[0])


class ShardPredictor(pl.LightningModule):
    """Wraps a trained generator so that one predict step makes one shard (through ``Inference``)."""

    def __init__(self, inference: Inference, plan: ShardPlan, seed: int, options: Any):
        super().__init__()
        self.generator = inference.generator  # a submodule: Lightning moves it to the device
        self.inference = inference
        self.plan = plan
        self.seed = seed
        self.options = options

    def predict_step(self, batch: int, batch_idx: int) -> Any:
        shard = int(batch)
        if shard < 0:  # padding, so that no process has an empty loop (it would miss the final barrier)
            return None
        lo, hi = self.plan.bounds(shard)
        return shard, self.inference.generate(hi - lo, self.seed, options=self.options, start=lo)


class ShardWriter(BasePredictionWriter):
    """Post-processes and exports each shard as it is made; rank 0 writes the index at the end."""

    def __init__(self, inference: Inference, out: Path, plan: ShardPlan, resumed_from: dict | None = None):
        super().__init__(write_interval="batch")
        self.inference = inference
        self.out = out
        self.plan = plan
        self.resumed_from = resumed_from
        self.written: list[int] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction is None:
            return
        shard, content = prediction
        content = self.inference.postprocess(content)
        final = self.out / ShardPlan.name(shard)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=self.out))
        try:
            files = self.inference.exporter.build().export(content, tmp)
            lo, hi = self.plan.bounds(shard)
            record = {"shard": shard, "start": lo, "stop": hi,
                      "files": {str(Path(p).relative_to(tmp)): sha256_file(p) for p in files}}
            write_json(tmp / SHARD_FILE, record)
            if final.exists():  # an earlier, damaged attempt
                _remove_shard(final)
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AigcError(f"{final}: writing the shard failed ({exc.strerror or exc}); finished shards are "
                            "intact, rerun the same command to continue") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.written.append(shard)

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier("aigc-shards-written")
        if trainer.is_global_zero:
            write_index(self.out, self.plan, self.resumed_from)


def write_index(out: Path, plan: ShardPlan, resumed_from: dict | None = None) -> dict:
    shards = []
    for shard in range(plan.count):
        path = out / ShardPlan.name(shard) / SHARD_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        shards.append({"name": ShardPlan.name(shard), "start": record["start"], "stop": record["stop"],
                       "files": {f"{ShardPlan.name(shard)}/{k}": v for k, v in record["files"].items()}})
    index = {"n": plan.n, "shard_size": plan.shard_size, "complete": len(shards) == plan.count,
             "resumed_from": resumed_from, "shards": shards}
    write_json(out / INDEX_FILE, index)
    return index


def resumed_from(plan: ShardPlan, pending: list[int]) -> dict | None:
    """What an earlier, killed (or finished) job had left whole; None when nothing was done yet."""
    done = [s for s in range(plan.count) if s not in set(pending)]
    if not done:
        return None
    samples = sum(hi - lo for lo, hi in map(plan.bounds, done))
    return {"shards_done": len(done), "samples_done": samples}


def _settings(inference: Inference, n: int, seed: int, options: Any, shard_size: int) -> dict:
    return json.loads(json.dumps({
        "n": n, "seed": seed, "shard_size": shard_size, "generator": inference.generator_name,
        "options": options_dict(options),
        "checkpoint_sha256": inference.fingerprint, "postprocess": inference.config.get("postprocess") or [],
        "exporter": inference.exporter.name,
    }, default=str))


def generate_sharded(inference: Inference, n: int, out: Path, *, seed: int | None = None, options: dict | None = None,
                     devices: int = 1, num_nodes: int = 1, accelerator: str = "cpu",
                     shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False) -> dict:
    """Make ``n`` samples into ``out`` in shards; returns a summary (``rank`` is 0 on the owner)."""
    if not 0 <= n <= MAX_SAMPLES:
        raise UsageError(f"number of samples must be in [0, {MAX_SAMPLES}], got {n}")
    if devices < 1 or num_nodes < 1 or shard_size < 1:
        raise UsageError("--devices, --num-nodes and --shard-size must be at least 1")
    from types import SimpleNamespace

    from .layout import check_layout

    check_layout(SimpleNamespace(num_nodes=num_nodes, devices=devices, accelerator=accelerator),
                 keys={"num_nodes": "--num-nodes", "devices": "--devices"})  # before anything is written
    out = Path(out)
    seed = inference.resolve_seed(seed, "--seed")
    opts = inference.options(options)
    if not inference.shards:
        raise UsageError(f"generator {inference.generator_name!r} cannot make shards (it does not declare "
                         "shards = True); run 'aigc generate' without --devices")

    plan = ShardPlan(n, shard_size)
    settings = _settings(inference, n, seed, opts, shard_size)
    check_out(out, plan, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        plan_path = out / PLAN_FILE
        if plan_path.is_file():
            try:
                old = json.loads(plan_path.read_text())
            except ValueError:
                old = None
            if old != settings:
                differs = next((k for k in settings if not isinstance(old, dict) or old.get(k) != settings[k]), "?")
                raise UsageError(f"{out} holds a generation with other settings (differs at {differs}); "
                                 "choose another --out or delete it")
        elif launcher_rank() == 0:
            write_json(plan_path, settings)
        if launcher_rank() == 0:  # shards a killed job never renamed into place
            for stale in out.glob(".shard_*.tmp"):
                if _TEMPORARY.match(stale.name) and stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale, ignore_errors=True)
    except OSError as exc:
        raise AigcError(f"{out}: cannot write here ({exc.strerror or exc})") from None

    pending = [s for s in range(plan.count) if not shard_done(out, s)]
    resumed = resumed_from(plan, pending)
    summary = {"out": str(out), "shards": plan.count, "skipped": plan.count - len(pending), "rank": launcher_rank(),
               "resumed_from": resumed}
    if resumed and launcher_rank() == 0:
        import sys

        print(f"aigc: resumed from {out}: {resumed['shards_done']} of {plan.count} shards already done "
              f"({resumed['samples_done']} of {plan.n} samples)", file=sys.stderr, flush=True)
    if not pending:
        if launcher_rank() == 0:
            write_index(out, plan, resumed)
        return summary

    from .training import quiet_lightning

    quiet_lightning()
    distributed = devices > 1 or num_nodes > 1
    writer = ShardWriter(inference, out, plan, resumed)
    trainer = pl.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                         strategy="ddp" if distributed else "auto", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, callbacks=[writer])
    padding = [-1] * max(0, devices * num_nodes - len(pending))
    loader = DataLoader(pending + padding, batch_size=1, shuffle=False, collate_fn=_first)
    module = ShardPredictor(inference, plan, seed, opts)
    with torch.inference_mode():
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    summary.update(rank=int(trainer.global_rank), written=len(writer.written), world_size=int(trainer.world_size))
    return summary


