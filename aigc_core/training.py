"""Lightning does the engineering: Trainer, checkpoints, logs. This module only wires it up."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from .atomic import write_bytes
from .errors import AigcError, CheckpointError

PREVIEW = {"image": 64, "text": 4, "audio": 4}

_QUIET = (
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def quiet_lightning() -> None:
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)


class SampleWriter(Callback):
    """Writes a preview of generated content every few epochs, so progress can be seen."""

    def __init__(self, pipeline: Any, every: int):
        self.pipeline = pipeline
        self.every = every

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self.every or (trainer.current_epoch + 1) % self.every or not trainer.is_global_zero:
            return
        was_training = module.training
        module.eval()
        try:
            content = module.generate(PREVIEW.get(module.modality, 4), seed=self.pipeline.seed)
        finally:
            module.train(was_training)
        write_preview(content, Path(self.pipeline.run_dir) / "samples", f"epoch_{trainer.current_epoch + 1:03d}",
                      self.pipeline.exporter.build())


def write_preview(content, directory: Path, stem: str, exporter) -> None:
    if content.modality == "image":
        from .imaging import make_grid, png_bytes

        grid = make_grid([item.data for item in content.items], nrow=8)
        write_bytes(directory / f"{stem}.png", png_bytes(grid))
    else:
        exporter.export(content, directory / stem)


class NonFiniteLossGuard(Callback):
    """Stops training when a logged loss is NaN or infinite, keeping the last good checkpoint."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        for key, value in trainer.callback_metrics.items():
            if "loss" in key and torch.is_tensor(value) and not torch.isfinite(value).all():
                raise NonFiniteLoss(
                    f"training stopped: {key} became {value.item()} at step {trainer.global_step}; "
                    "the last good checkpoint is kept (lower the learning rate or check the data)"
                )


class NonFiniteLoss(AigcError):
    pass


def fit(pipe: Any, resume: bool) -> tuple[Any, dict]:
    quiet_lightning()
    t = pipe.train
    pl.seed_everything(pipe.seed, workers=True, verbose=False)
    run_dir = Path(pipe.run_dir)
    source = pipe.data_source()
    generator = pipe.gen.cls.build(pipe.gen.params, source, run_dir / "preprocess")
    datamodule = generator.datamodule(source)

    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}", save_last=True, save_top_k=1,
                        every_n_epochs=t.checkpoint_every_n_epochs, auto_insert_metric_name=False),
        SampleWriter(pipe, t.sample_every_n_epochs),
        NonFiniteLossGuard(),
    ]
    loggers = [CSVLogger(str(run_dir), name="logs", version="csv")]
    try:
        loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tb", default_hp_metric=False))
    except ModuleNotFoundError:
        pass
    kwargs = dict(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, num_nodes=t.num_nodes, precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.check_val_every_n_epoch, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, enable_model_summary=False,
        default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks,
    )
    if t.gradient_clip_val is not None:
        kwargs["gradient_clip_val"] = t.gradient_clip_val
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    if t.limit_val_batches is not None:
        kwargs["limit_val_batches"] = t.limit_val_batches
    try:
        trainer = pl.Trainer(**kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:  # Lightning's own checks of the train section
        from .errors import ConfigError

        raise ConfigError("train", str(exc).strip().splitlines()[0]) from None
    ckpt_path = str(last) if resume and last.is_file() else None
    started = time.perf_counter()
    try:
        trainer.fit(generator, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLoss:
        raise
    except Exception as exc:
        if ckpt_path and _is_unpickling_error(exc):
            raise CheckpointError(f"{last}: refused to load: {str(exc).splitlines()[0]}") from None
        raise
    summary = {
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "resumed_from": ckpt_path and str(Path(ckpt_path).relative_to(run_dir)),
        "train_s": round(time.perf_counter() - started, 3),
        "accelerator": type(trainer.accelerator).__name__,
        "world_size": int(trainer.world_size),
    }
    return generator, summary


def _is_unpickling_error(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, (pickle.UnpicklingError, EOFError)) or "weights_only" in str(exc)
