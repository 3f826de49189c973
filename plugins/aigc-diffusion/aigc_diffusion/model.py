"""A denoising diffusion model as a LightningModule, on diffusers' U-Net and schedulers.

Training: a clean image gets noise of a random strength (DDPMScheduler.add_noise) and the U-Net
learns to predict that noise; class labels are dropped to a "null" class now and then, so the
same network also knows the unconditional model that classifier-free guidance needs. Sampling:
any diffusers scheduler compatible with DDPM (DDIM and DPM-Solver by name) walks from noise to an
image in ``num_inference_steps`` steps, with the EMA copy of the U-Net.

Everything random in sampling (the starting noise and the noise that stochastic schedulers add
at each step) comes from one ``torch.Generator`` per sample seeded with ``sample_seed(seed, i)``.
"""

from __future__ import annotations

import copy
import inspect
from typing import Callable, Literal, Optional

import numpy as np
import torch
from torch.nn import functional as F

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, report_progress, sample_seed, torch_generator
from aigc_core import Field, Params, field_validator

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
#: short names for the schedulers people mean; any diffusers scheduler class name works too
SCHEDULERS = {"ddim": "DDIMScheduler", "dpm-solver": "DPMSolverMultistepScheduler", "ddpm": "DDPMScheduler"}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
NORM_GROUPS = 8
SAMPLER_SETTINGS = {"timestep_spacing": "trailing", "thresholding": True, "sample_max_value": 1.0}


class DDPMParams(Params):
    size: Literal[tuple(SIZES)] = Field("small", description="preset U-Net: debug (tests), fast (CPU sampling), small, base (GPU)")
    base_channels: Optional[int] = Field(None, ge=NORM_GROUPS, multiple_of=NORM_GROUPS, description="channels of the first level (the others scale with it); default from size")
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
    scheduler: str = Field("ddim", description="sampler: ddim, dpm-solver, ddpm, or a diffusers scheduler class name")
    guidance_scale: float = Field(2.0, ge=0, description="classifier-free guidance: 0 unconditional, 1 conditional, >1 stronger class")
    label: Optional[int] = Field(None, ge=0, description="conditional models: the class of every sample (default: cycle through classes)")
    use_ema: bool = Field(True, description="sample with the EMA copy of the U-Net")
    batch_size: int = Field(16, ge=1, description="samples are denoised in aligned chunks of this size")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        scheduler_class(name)
        return name


def scheduler_class(name: str) -> type:
    """The diffusers scheduler called ``name`` (a short name or a class name), or ValueError."""
    target = SCHEDULERS.get(name, name)
    known = ", ".join(SCHEDULERS)
    if not target.endswith("Scheduler") or not target.isidentifier():
        raise ValueError(f"unknown scheduler {name!r}; use {known} or a diffusers scheduler class name")
    import diffusers

    cls = getattr(diffusers, target, None)
    if not isinstance(cls, type) or not hasattr(cls, "from_config"):
        raise ValueError(f"scheduler: diffusers {diffusers.__version__} has no scheduler {name!r}; "
                         f"use {known} or a diffusers scheduler class name")
    return cls


def unet_levels(size: str) -> int:
    return len(SIZES[size][0])


class DDPM(Generator):
    modality = "image"
    shards = True
    Params = DDPMParams
    GenerateOptions = DDPMOptions

    def __init__(self, params: DDPMParams, info: dict):
        super().__init__(params, info)
        from diffusers import DDPMScheduler, UNet2DModel

        channels, height, width = info["shape"]
        levels = unet_levels(params.size)
        step = 2 ** (levels - 1)  # the U-Net halves the image levels-1 times and must double back exactly
        if height % step or width % step:
            raise ConfigError("data.image_size", f"ddpm size {params.size!r} needs image sides divisible by {step}, "
                                                 f"got {height}x{width}")
        classes = int(info.get("num_classes") or 0)
        self.num_classes = classes if params.conditional and classes > 1 else 0
        _, layers, attention = SIZES[params.size]
        widths = params.channels
        self.unet = UNet2DModel(
            sample_size=(height, width), in_channels=channels, out_channels=channels,
            block_out_channels=widths, layers_per_block=layers, norm_num_groups=NORM_GROUPS,
            down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
            add_attention=attention, attention_head_dim=8,
            # one embedding more than classes: the null class that guidance contrasts with
            num_class_embeds=self.num_classes + 1 if self.num_classes else None,
        )
        self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False) if params.ema_decay > 0 else None
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=params.num_train_timesteps,
                                             beta_schedule=params.beta_schedule,
                                             prediction_type=params.prediction_type, clip_sample=True)

    # -- training -----------------------------------------------------------------------------
    def configure_optimizers(self):
        return torch.optim.AdamW(self.unet.parameters(), lr=self.params.lr, weight_decay=self.params.weight_decay)

    def diffusion_loss(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None,
                       drop: float = 0.0) -> torch.Tensor:
        """Noise-prediction loss of a batch in [0, 1], at random noise levels."""
        x = x * 2.0 - 1.0  # the model's own scale: data in [0, 1], diffusion in [-1, 1]
        n = x.shape[0]
        noise = torch.randn(x.shape, generator=generator).to(x)
        t = torch.randint(0, self.params.num_train_timesteps, (n,), generator=generator).to(x.device)
        labels = None
        if self.num_classes:
            labels = y.long()
            if drop > 0:
                dropped = torch.rand(n, generator=generator).to(x.device) < drop
                labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        noisy = self.noise_scheduler.add_noise(x, noise, t)
        pred = self.unet(noisy, t, class_labels=labels).sample
        target = noise if self.params.prediction_type == "epsilon" else \
            self.noise_scheduler.get_velocity(x, noise, t)
        return F.mse_loss(pred, target)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.diffusion_loss(x, y, drop=self.params.label_dropout)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self._update_ema()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        # fixed noise per batch: the validation loss moves only when the model does
        g = torch.Generator().manual_seed(batch_idx)
        self.log("val_loss", self.diffusion_loss(x, y, generator=g), batch_size=x.shape[0])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.unet_ema is None:
            return
        # warm start: early on the EMA follows closely, so short runs still sample well
        decay = min(self.params.ema_decay, (1 + self.global_step) / (10 + self.global_step))
        for ema_p, p in zip(self.unet_ema.parameters(), self.unet.parameters()):
            ema_p.lerp_(p, 1.0 - decay)

    # -- generation ---------------------------------------------------------------------------
    def make_scheduler(self, name: str, steps: int):
        try:
            cls = scheduler_class(name)
        except ValueError as exc:
            raise ConfigError("generate.scheduler", str(exc)) from None
        if steps > self.params.num_train_timesteps:
            raise ConfigError("generate.num_inference_steps",
                              f"at most num_train_timesteps ({self.params.num_train_timesteps}), got {steps}")
        compatible = {c.__name__ for c in self.noise_scheduler.compatibles} | {"DDPMScheduler"}
        if cls.__name__ not in compatible:
            raise ConfigError("generate.scheduler", f"{cls.__name__} cannot sample a DDPM-trained model; "
                                                    f"compatible: {', '.join(sorted(compatible))}")
        accepted = inspect.signature(cls.__init__).parameters
        # "trailing" starts sampling at the last (pure-noise) level, which few-step samplers
        # otherwise skip (grey, washed-out images); thresholding at 1 keeps a sampler's estimate
        # of the clean image inside the data's range [-1, 1], as DDPM's clip_sample does
        overrides = {k: v for k, v in SAMPLER_SETTINGS.items() if k in accepted}
        scheduler = cls.from_config(self.noise_scheduler.config, **overrides)
        scheduler.set_timesteps(steps)
        return scheduler

    def predict(self, net, x: torch.Tensor, t, labels: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
        """The U-Net's output, pushed away from the unconditional one by ``guidance_scale``."""
        if labels is None or guidance_scale == 1.0:
            return net(x, t, class_labels=labels).sample
        null = torch.full_like(labels, self.num_classes)
        if guidance_scale == 0.0:
            return net(x, t, class_labels=null).sample
        both = net(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    @torch.no_grad()
    def generate(self, n: int, seed: int = 0, num_inference_steps: int = 25, scheduler: str = "ddim",
                 guidance_scale: float = 2.0, label: Optional[int] = None, use_ema: bool = True,
                 batch_size: int = 16, start: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None) -> Content:
        """Samples ``start .. start+n-1``. Work is done in chunks aligned to multiples of
        ``batch_size`` and padded to full size, so a sample's bytes never depend on ``n``,
        ``start`` or how a sharded job split the range (convolution kernels differ by batch shape).
        ``progress(done, total)`` is called after every denoising step, for callers that show it."""
        if label is not None and (not self.num_classes or label >= self.num_classes):
            classes = self.num_classes or "no"
            raise ConfigError("generate.label", f"label {label} is not a class this model was trained on ({classes} classes)")
        self.make_scheduler(scheduler, num_inference_steps)  # bad options fail before any work
        net = self.unet_ema if (use_ema and self.unet_ema is not None) else self.unet
        was_training = net.training
        net.eval()
        shape = tuple(self.info["shape"])
        end = start + n
        first = (start // batch_size) * batch_size
        chunks = list(range(first, end, batch_size))
        items: list[Item] = []
        try:
            for c, lo in enumerate(chunks):
                sampler = self.make_scheduler(scheduler, num_inference_steps)  # multistep samplers keep state
                gens = [torch_generator(seed, i) for i in range(lo, lo + batch_size)]
                x = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(self.device)
                x = x * sampler.init_noise_sigma
                labels = None
                conditioned = self.num_classes and guidance_scale > 0
                if self.num_classes:
                    idx = torch.arange(lo, lo + batch_size)
                    labels = (torch.full_like(idx, label) if label is not None else idx % self.num_classes).to(self.device)
                for s, t in enumerate(sampler.timesteps):
                    out = self.predict(net, sampler.scale_model_input(x, t), t, labels, guidance_scale)
                    x = sampler.step(out, t, x, generator=gens).prev_sample
                    (progress or report_progress)(c * len(sampler.timesteps) + s + 1,
                                                  len(chunks) * len(sampler.timesteps))
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
