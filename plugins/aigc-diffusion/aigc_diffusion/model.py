"""A denoising diffusion model's networks and sampling, on diffusers' U-Net and schedulers, in
plain torch (its training is ``aigc_diffusion.training``).

Training: a clean image gets noise of a random strength (DDPMScheduler.add_noise) and the U-Net
learns to predict that noise; class labels are dropped to a "null" class now and then, so the
same network also knows the unconditional model that classifier-free guidance needs. Sampling:
any diffusers scheduler compatible with DDPM (DDIM and DPM-Solver by name) walks from noise to an
image in ``num_inference_steps`` steps, with the EMA copy of the U-Net.

Everything random in sampling (the starting noise and the noise that stochastic schedulers add
at each step) comes from one ``torch.Generator`` per sample seeded with ``sample_seed(seed, i)``.
The diffusion itself (U-Net, guided sampling loop) is ``aigc_diffusion.denoiser``, shared with
spectrogram generators; this module adds what is particular to images. ``DDPM`` holds only what
sampling needs, so a finished run loads and generates without Lightning.
"""

from __future__ import annotations

import copy
from typing import Callable, Literal, Optional

import numpy as np
import torch

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, sample_seed
from aigc_core import Field, Params, field_validator

from . import denoiser
from .denoiser import BETA_SCHEDULES, NORM_GROUPS, SCHEDULERS, scheduler_class  # noqa: F401 (names users import)

#: size -> (channels per U-Net level, resnet layers per level, self-attention in the middle block).
#: Most of a CPU's sampling time goes to the full- and half-resolution levels (16-channel
#: convolutions are the slowest per multiply-add), so ``fast`` narrows the half-resolution level:
#: (16, 16, 32) costs ~29 M multiply-adds per 28x28 image and pass against ~70 M for ``small`` and
#: samples ~1.2-1.8x faster (the figure moves with the load), but its digits scored ~13% higher
#: Fréchet distances; ``small`` stays what the configs use and keeps its channels, so its runs
#: keep loading. ``base_channels: 8`` with ``small`` is the lean (8, 16, 32) net: ~2.4x faster
#: than ``small``, clearly worse digits (docs/benchmarks.md).
SIZES = {
    "debug": ((16, 32), 1, False),
    "fast": ((16, 16, 32), 1, True),
    "small": ((16, 32, 64), 1, True),
    "base": ((64, 128, 256), 2, True),
}


class DDPMParams(Params):
    size: Literal[tuple(SIZES)] = Field("small", description="preset U-Net: debug (tests), fast (CPU sampling), small, base (GPU)")
    base_channels: Optional[int] = Field(None, ge=NORM_GROUPS, multiple_of=NORM_GROUPS, description="channels of the first level (the others scale with it); default from size")
    patch: Literal[1, 2, 4] = Field(1, description="fold patch x patch pixels into channels before the U-Net (cost / patch^2)")
    film: bool = Field(False, description="time and class embeddings scale and shift each resnet's features (adaptive group norm)")
    snr_gamma: Optional[float] = Field(None, gt=0, description="min-SNR loss weighting (5 is usual): converges faster; off when unset")
    conditional: bool = Field(True, description="learn per class when the data has labels (needed for guidance)")
    label_dropout: float = Field(0.1, ge=0, lt=1, description="share of training labels replaced by the null class (classifier-free guidance)")
    num_train_timesteps: int = Field(1000, ge=2, description="noise levels of the forward process")
    beta_schedule: Literal[BETA_SCHEDULES] = Field("squaredcos_cap_v2", description="noise schedule: linear, scaled_linear, squaredcos_cap_v2, sigmoid")
    prediction_type: Literal["epsilon", "v_prediction"] = Field("epsilon", description="what the U-Net predicts")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="0 turns the EMA copy off")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")

    @property
    def channels(self) -> tuple[int, ...]:
        preset = SIZES[self.size][0]
        if self.base_channels is None:
            return preset
        return tuple(self.base_channels * c // preset[0] for c in preset)


class DDPMOptions(Params):
    num_inference_steps: int = Field(25, ge=1, description="denoising steps: fewer is faster, more is finer")
    scheduler: str = Field("ddim", description="sampler: ddim, dpm-solver, unipc, ddpm, or a diffusers scheduler class name")
    guidance_scale: float = Field(2.0, ge=0, description="classifier-free guidance: 0 unconditional, 1 conditional, >1 stronger class")
    label: Optional[int] = Field(None, ge=0, description="conditional models: the class of every sample (default: cycle through classes)")
    use_ema: bool = Field(True, description="sample with the EMA copy of the U-Net")
    batch_size: int = Field(16, ge=1, description="samples are denoised in aligned chunks of this size")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        scheduler_class(name)
        return name


def unet_levels(size: str) -> int:
    return len(SIZES[size][0])


class DDPM(Generator):
    modality = "image"
    shards = True
    Params = DDPMParams
    GenerateOptions = DDPMOptions
    training = "aigc_diffusion.training:DDPMTraining"

    def __init__(self, params: DDPMParams, info: dict):
        super().__init__(params, info)
        channels, height, width = info["shape"]
        step = denoiser.side_multiple(unet_levels(params.size), params.patch)
        if height % step or width % step:
            patched = f" with patch {params.patch}" if params.patch > 1 else ""
            raise ConfigError("data.image_size", f"ddpm size {params.size!r}{patched} needs image sides divisible by {step}, "
                                                 f"got {height}x{width}")
        classes = int(info.get("num_classes") or 0)
        self.num_classes = classes if params.conditional and classes > 1 else 0
        _, layers, attention = SIZES[params.size]
        self.unet = denoiser.build_unet((channels, height, width), params.channels, layers, attention, self.num_classes,
                                        params.patch, film=params.film)
        self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False) if params.ema_decay > 0 else None
        self.noise_scheduler = denoiser.noise_schedule(params.num_train_timesteps, params.beta_schedule,
                                                       params.prediction_type)

    # -- generation ---------------------------------------------------------------------------
    def make_scheduler(self, name: str, steps: int):
        return denoiser.make_sampler(self.noise_scheduler, name, steps)

    @torch.no_grad()
    def generate(self, n: int, seed: int = 0, num_inference_steps: int = 25, scheduler: str = "ddim",
                 guidance_scale: float = 2.0, label: Optional[int] = None, use_ema: bool = True,
                 batch_size: int = 16, start: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None) -> Content:
        """Samples ``start .. start+n-1``; a sample's bytes depend on ``seed`` and its index alone
        (``denoiser.sample_chunks``). ``progress(done, total)`` is called after every denoising step."""
        if label is not None and (not self.num_classes or label >= self.num_classes):
            classes = self.num_classes or "no"
            raise ConfigError("generate.label", f"label {label} is not a class this model was trained on ({classes} classes)")
        self.make_scheduler(scheduler, num_inference_steps)  # bad options fail before any work
        net = self.unet_ema if (use_ema and self.unet_ema is not None) else self.unet
        was_training = net.training
        net.eval()
        end = start + n
        conditioned = self.num_classes and guidance_scale > 0
        labels_of = None
        if self.num_classes:
            labels_of = (lambda idx: torch.full_like(idx, label)) if label is not None else (lambda idx: idx % self.num_classes)
        items: list[Item] = []
        try:
            for lo, x, labels in denoiser.sample_chunks(
                    net, self.noise_scheduler, tuple(self.info["shape"]), seed, start, n, batch_size, scheduler,
                    num_inference_steps, guidance_scale, labels_of, self.num_classes, self.device, progress):
                images = ((x.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
                for j in range(batch_size):
                    index = lo + j
                    if not start <= index < end:
                        continue
                    meta = {"index": index, "seed": seed, "sample_seed": sample_seed(seed, index),
                            "num_inference_steps": num_inference_steps, "scheduler": scheduler}
                    if conditioned:
                        meta["label"] = int(labels[j])
                        meta["guidance_scale"] = guidance_scale
                    items.append(Item(images[j].astype(np.float32), meta))
        finally:
            net.train(was_training)
        return Content("image", items)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_state(self) -> dict[str, torch.Tensor]:
        """Only what sampling needs: the EMA U-Net (or the live one without EMA)."""
        net = self.unet_ema if self.unet_ema is not None else self.unet
        return {f"unet.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        unet_state = {k[5:]: v for k, v in state.items() if k.startswith("unet.")}
        if not unet_state or len(unet_state) != len(state):
            raise CheckpointError("checkpoint is not a ddpm U-Net (no 'unet.' tensors)")
        try:
            self.unet.load_state_dict(unet_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint does not fit this ddpm: {str(exc).strip().splitlines()[0]}") from None
        if self.unet_ema is not None:
            self.unet_ema.load_state_dict(unet_state, strict=True)
