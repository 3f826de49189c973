"""Class-conditional denoising diffusion over (C, H, W) tensors: the networks and the sampling of
``ddpm`` that know nothing of images, in plain torch and diffusers. PUBLIC API of aigc-diffusion:
other plugins (aigc-audio's ``mel-diffusion``) build on it, so a change here is a change for them too.

Why a module of functions and not a base class: each generator keeps its own modules (``unet``,
``unet_ema``, ``noise_scheduler``) under its own names, so its artifacts and checkpoints stay as
they are, and it decides itself how its data maps into the diffusion space [-1, 1].

Why no training here: a finished run samples with this module alone, so ``aigc generate`` never
imports Lightning. The loss, the min-SNR weights, the EMA step and the Lightning hooks that every
denoising generator shares are ``aigc_diffusion.training``.

* ``build_unet``: diffusers' ``UNet2DModel`` with one class embedding more than there are classes
  (the "null" class that classifier-free guidance contrasts with); ``patch > 1`` folds
  ``patch x patch`` pixels into channels first (space-to-depth), which cuts the cost of the
  full-resolution level by ``patch**2`` for large, smooth inputs such as spectrograms.
* ``ADAPTER_TARGETS``, ``ATTENTION_TARGETS``, ``unet_targets``: the U-Net's default LoRA
  layers, with attention only where a U-Net was built with it.
* ``noise_schedule``: the DDPM forward process a model is trained with; samplers are configured
  from it.
* ``make_sampler`` / ``scheduler_class``: any DDPM-compatible diffusers scheduler by short or
  class name, with one-line ``ConfigError``s naming ``generate.*``.
* ``sample_chunks``: the guided sampling loop in chunks aligned to ``batch_size`` and padded to
  full size; all randomness of sample ``i`` comes from ``torch_generator(seed, i)``, so a sample
  depends on ``(seed, i)`` alone, never on ``n``, ``start`` or a shard layout.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Callable, Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

from aigc_core import ConfigError, check_cancelled, report_progress, torch_generator

#: short names for the schedulers people mean; any diffusers scheduler class name works too
SCHEDULERS = {"ddim": "DDIMScheduler", "dpm-solver": "DPMSolverMultistepScheduler", "ddpm": "DDPMScheduler",
              "unipc": "UniPCMultistepScheduler"}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
NORM_GROUPS = 8
#: "trailing" starts sampling at the last (pure-noise) level, which few-step samplers otherwise
#: skip (grey, washed-out samples); thresholding at 1 keeps a sampler's estimate of the clean
#: sample inside the data's range [-1, 1], as DDPM's clip_sample does
SAMPLER_SETTINGS = {"timestep_spacing": "trailing", "thresholding": True, "sample_max_value": 1.0}


#: LoRA's default layers in a diffusers U-Net (peft target_modules: a module name or its dotted
#: suffix): both convolutions and the time-embedding projection of every resnet, which every
#: UNet2DModel has and where most of the weights and the look of the output are. Not
#: conv_in/conv_out, whose few channels (1-3 for images) leave a rank-8 adapter nothing to add,
#: nor the class embedding, a table of a few rows.
ADAPTER_TARGETS = ("conv1", "conv2", "time_emb_proj")
#: and the attention projections (diffusers' usual LoRA targets) where a level has attention:
#: aigc's debug U-Net has none, a published DDPM has them at its lower resolutions
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def unet_targets(net: nn.Module) -> tuple[str, ...]:
    """The default targets of this net: ``ADAPTER_TARGETS``, and ``ATTENTION_TARGETS`` it has
    (a default that names no layer would adapt nothing, and the adapter's check refuses it)."""
    names = [name for name, _ in net.named_modules()]
    return ADAPTER_TARGETS + tuple(t for t in ATTENTION_TARGETS if any(n == t or n.endswith("." + t) for n in names))


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


def side_multiple(levels: int, patch: int = 1) -> int:
    """What H and W must be divisible by: the U-Net halves them ``levels - 1`` times and must
    double back exactly, after folding ``patch x patch`` pixels into channels."""
    return patch * 2 ** (levels - 1)


class PatchedUNet(nn.Module):
    """A U-Net on ``patch x patch`` blocks of pixels folded into channels (pixel_unshuffle), then
    unfolded back: the same call and output as ``UNet2DModel``."""

    def __init__(self, unet: nn.Module, patch: int):
        super().__init__()
        self.unet = unet
        self.patch = patch

    def forward(self, x: torch.Tensor, t, class_labels=None):
        out = self.unet(F.pixel_unshuffle(x, self.patch), t, class_labels=class_labels).sample
        return SimpleNamespace(sample=F.pixel_shuffle(out, self.patch))


def build_unet(shape: tuple[int, int, int], widths: tuple[int, ...], layers_per_block: int, attention: bool,
               num_classes: int, patch: int = 1, film: bool = False) -> nn.Module:
    """A U-Net for (C, H, W) inputs; ``num_classes`` 0 is unconditional. The caller checks the
    sides against ``side_multiple`` and names its own config key. ``film``: the time and class
    embedding scales and shifts each resnet's normalised features (adaptive group norm) instead
    of only adding a bias per channel before a group norm that partly removes it again."""
    from diffusers import UNet2DModel

    channels, height, width = shape
    levels = len(widths)
    unet = UNet2DModel(
        sample_size=(height // patch, width // patch), in_channels=channels * patch * patch,
        out_channels=channels * patch * patch,
        block_out_channels=tuple(widths), layers_per_block=layers_per_block, norm_num_groups=NORM_GROUPS,
        down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
        add_attention=attention, attention_head_dim=8,
        resnet_time_scale_shift="scale_shift" if film else "default",
        # one embedding more than classes: the null class that guidance contrasts with
        num_class_embeds=num_classes + 1 if num_classes else None,
    )
    return PatchedUNet(unet, patch) if patch > 1 else unet


def noise_schedule(num_train_timesteps: int, beta_schedule: str, prediction_type: str):
    """The forward (training) process: diffusers' DDPMScheduler, samples clipped to [-1, 1]."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type=prediction_type, clip_sample=True)


def make_sampler(noise_scheduler, name: str, steps: int):
    """A sampler ``name`` set to ``steps`` steps, or a ConfigError naming the ``generate.*`` key."""
    try:
        cls = scheduler_class(name)
    except ValueError as exc:
        raise ConfigError("generate.scheduler", str(exc)) from None
    levels = noise_scheduler.config.num_train_timesteps
    if steps > levels:
        raise ConfigError("generate.num_inference_steps", f"at most num_train_timesteps ({levels}), got {steps}")
    compatible = {c.__name__ for c in noise_scheduler.compatibles} | {"DDPMScheduler"}
    if cls.__name__ not in compatible:
        raise ConfigError("generate.scheduler", f"{cls.__name__} cannot sample a DDPM-trained model; "
                                                f"compatible: {', '.join(sorted(compatible))}")
    accepted = inspect.signature(cls.__init__).parameters
    overrides = {k: v for k, v in SAMPLER_SETTINGS.items() if k in accepted}
    scheduler = cls.from_config(noise_scheduler.config, **overrides)
    scheduler.set_timesteps(steps)
    return scheduler


def guided(net: nn.Module, x: torch.Tensor, t, labels: torch.Tensor | None, null_label: int,
           guidance_scale: float) -> torch.Tensor:
    """The net's output, pushed away from the unconditional one by ``guidance_scale``."""
    if labels is None or guidance_scale == 1.0:
        return net(x, t, class_labels=labels).sample
    null = torch.full_like(labels, null_label)
    if guidance_scale == 0.0:
        return net(x, t, class_labels=null).sample
    both = net(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
    cond, uncond = both.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def chunk_starts(start: int, n: int, batch_size: int) -> list[int]:
    """First indices of the ``batch_size``-aligned chunks that cover ``start .. start+n-1``."""
    return list(range((start // batch_size) * batch_size, start + n, batch_size))


@torch.no_grad()
def sample_chunks(net: nn.Module, noise_scheduler, shape: tuple[int, ...], seed: int, start: int, n: int,
                  batch_size: int, scheduler: str, num_inference_steps: int, guidance_scale: float,
                  labels_of: Optional[Callable[[torch.Tensor], torch.Tensor]], null_label: int,
                  device=None, progress: Optional[Callable[[int, int], None]] = None
                  ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Yields ``(first index, samples in [-1, 1] as (batch_size, *shape), labels or None)`` per
    aligned chunk, padded to full size (convolution kernels differ by batch shape, so a sample's
    bytes would otherwise depend on ``n``); the caller keeps the indices it asked for.
    ``labels_of(indices)`` gives each index's class (None: unconditional net). ``progress(done,
    total)`` is called after every denoising step (default: the core's ``report_progress``)."""
    chunks = chunk_starts(start, n, batch_size)
    for c, lo in enumerate(chunks):
        sampler = make_sampler(noise_scheduler, scheduler, num_inference_steps)  # multistep samplers keep state
        gens = [torch_generator(seed, i) for i in range(lo, lo + batch_size)]
        x = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
        x = x * sampler.init_noise_sigma
        labels = labels_of(torch.arange(lo, lo + batch_size)).to(device) if labels_of is not None else None
        # deterministic samplers (UniPC, ...) take no generator: they draw no noise to seed
        noise = {"generator": gens} if "generator" in inspect.signature(sampler.step).parameters else {}
        for s, t in enumerate(sampler.timesteps):
            check_cancelled()  # per step: a server whose client left stops here, not after every step
            out = guided(net, sampler.scale_model_input(x, t), t, labels, null_label, guidance_scale)
            x = sampler.step(out, t, x, **noise).prev_sample
            (progress or report_progress)(c * len(sampler.timesteps) + s + 1, len(chunks) * len(sampler.timesteps))
        yield lo, x, labels
