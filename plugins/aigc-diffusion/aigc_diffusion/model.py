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
from typing import ClassVar, Literal, Optional

import numpy as np
import torch

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, sample_seed
from aigc_core import Field, Params, field_validator, hub_offline_mode, pretrained_record, resolve_pretrained

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


BASE_KEY = "generator.base"
#: what marks a diffusers folder: a pipeline's index, or a bare model's config
DIFFUSERS_MARKERS = ("model_index.json", "config.json")
#: what a base fixes and this config may therefore not set
ARCHITECTURE_KEYS = ("size", "base_channels", "patch", "film")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json(path) -> dict:
    import json

    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(BASE_KEY, f"{path.parent}: not a diffusers model folder (no {path.name})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(BASE_KEY, f"{path}: unreadable ({first_line(exc)})") from None
    if not isinstance(value, dict):
        raise ConfigError(BASE_KEY, f"{path}: not a JSON object")
    return value


def _diffusers_folder(base: str):
    """The local folder of ``base``: itself, or a hub id's snapshot (configs first, then only
    the U-Net's safetensors: nothing else is fetched, no pickle and no code)."""
    from pathlib import Path

    ref, kwargs = resolve_pretrained(base, BASE_KEY, DIFFUSERS_MARKERS)
    if not kwargs and Path(ref).is_dir():
        return Path(ref)
    from huggingface_hub import snapshot_download

    try:
        with hub_offline_mode(bool(kwargs)):  # from the cache: nothing may reach for the hub
            folder = Path(snapshot_download(ref, allow_patterns=["*.json"], **kwargs))
            weights = "unet/*.safetensors" if (folder / "model_index.json").is_file() else "*.safetensors"
            return Path(snapshot_download(ref, allow_patterns=["*.json", weights], **kwargs))
    except Exception as exc:  # the hub's many error types (not found, gated, offline): all one line
        raise ConfigError(BASE_KEY, f"{ref!r}: cannot fetch it from the Hugging Face hub ({first_line(exc)})") from None


def base_classes(config) -> int:
    """Classes of a base U-Net: aigc's conditional nets have one embedding more (the null class)."""
    embeds = config.get("num_class_embeds")
    return int(embeds) - 1 if embeds else 0


def _base_shape(config: dict) -> list[int]:
    size = config.get("sample_size")
    height, width = (size if isinstance(size, (list, tuple)) else (size, size))
    return [int(config.get("out_channels") or 0), int(height), int(width)]


def _check_base_fits(base: str, config: dict, info: dict, params: DDPMParams) -> None:
    """The base must make the data's images: its channels, its size, its classes (or none)."""
    channels, height, width = (int(v) for v in info["shape"])
    if config.get("in_channels") != channels or config.get("out_channels") != channels:
        raise ConfigError(BASE_KEY, f"{base}: its U-Net makes {config.get('out_channels')}-channel images, the data "
                                    f"has {channels} channel(s)")
    size = config.get("sample_size")
    side = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    if side != (height, width):
        raise ConfigError(BASE_KEY, f"{base}: its U-Net was trained on {side[0]}x{side[1]} images, the data gives "
                                    f"{height}x{width} (set data.image_size to {side[0]})")
    if config.get("class_embed_type") is not None:
        raise ConfigError(BASE_KEY, f"{base}: class_embed_type {config['class_embed_type']!r} is not a class table; "
                                    "ddpm takes unconditional or class-conditional (num_class_embeds) U-Nets")
    classes = base_classes(config)
    data_classes = int(info.get("num_classes") or 0)
    if classes and not (params.conditional and data_classes == classes):
        raise ConfigError(BASE_KEY, f"{base}: a U-Net conditioned on {classes} classes (+ the null class), but the "
                                    f"data has {data_classes or 'no'} classes" +
                                    ("" if params.conditional else " (generator.conditional is false)"))
    for key in ARCHITECTURE_KEYS:
        if key in params.model_fields_set:
            raise ConfigError(f"generator.{key}", "the base's U-Net is used as it is; drop this key "
                                                  f"(generator.base is {base})")


def _check_scheduler_class(base: str, name: str) -> None:
    """The base's scheduler must describe a DDPM forward process (DDIM, PNDM... do): another kind
    (score SDE, flow matching) read as DDPM would be a different noise schedule without a word."""
    from diffusers import DDPMScheduler

    compatible = {c.__name__ for c in DDPMScheduler().compatibles} | {"DDPMScheduler"}
    if name not in compatible:
        raise ConfigError(BASE_KEY, f"{base}: its scheduler is a {name}, not a DDPM noise schedule; ddpm starts from "
                                    "DDPM-trained U-Nets")


def _check_schedule(base: str, config: dict, params: DDPMParams) -> None:
    """A key this config sets must agree with the schedule the base was trained with."""
    for key in ("num_train_timesteps", "beta_schedule", "prediction_type"):
        if key in params.model_fields_set and key in config and getattr(params, key) != config[key]:
            raise ConfigError(f"generator.{key}", f"{getattr(params, key)!r}, but the base was trained with "
                                                  f"{config[key]!r} (generator.base is {base}); drop this key")


class DDPM(Generator):
    modality = "image"
    shards = True
    Params = DDPMParams
    GenerateOptions = DDPMOptions
    training = "aigc_diffusion.training:DDPMTraining"
    #: LoRA's default layers: the resnets' convolutions and time projections, which every U-Net
    #: has (``denoiser.ADAPTER_TARGETS``); an instance adds the attention projections where its
    #: U-Net has attention (``denoiser.unet_targets``).
    adapter_targets: ClassVar[tuple[str, ...]] = denoiser.ADAPTER_TARGETS

    def __init__(self, params: DDPMParams, info: dict, unet=None):
        """``info["unet_config"]`` (and ``"scheduler_config"``), set by ``load_base``, make the
        U-Net and noise schedule of a pretrained base instead of the preset ``size``; they travel
        in ``model.json``, so a run fine-tuned from such a base loads its own artifact as is."""
        super().__init__(params, info)
        channels, height, width = info["shape"]
        native = info.get("unet_config")
        if native is not None:
            self.num_classes = base_classes(native)
            if unet is None:
                from diffusers import UNet2DModel

                unet = UNet2DModel.from_config(native)
            self.unet = unet
        else:
            step = denoiser.side_multiple(unet_levels(params.size), params.patch)
            if height % step or width % step:
                patched = f" with patch {params.patch}" if params.patch > 1 else ""
                raise ConfigError("data.image_size", f"ddpm size {params.size!r}{patched} needs image sides divisible by {step}, "
                                                     f"got {height}x{width}")
            classes = int(info.get("num_classes") or 0)
            self.num_classes = classes if params.conditional and classes > 1 else 0
            _, layers, attention = SIZES[params.size]
            self.unet = denoiser.build_unet((channels, height, width), params.channels, layers, attention,
                                            self.num_classes, params.patch, film=params.film)
        self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False) if params.ema_decay > 0 else None
        if info.get("scheduler_config") is not None:
            from diffusers import DDPMScheduler

            self.noise_scheduler = DDPMScheduler.from_config(info["scheduler_config"])
        else:
            self.noise_scheduler = denoiser.noise_schedule(params.num_train_timesteps, params.beta_schedule,
                                                           params.prediction_type)
        self.adapter_targets = denoiser.unet_targets(self.unet)

    # -- a pretrained base ---------------------------------------------------------------------
    @classmethod
    def load_base(cls, base: str, params: DDPMParams, info: dict | None) -> "DDPM":
        """``generator.base``: a diffusers pipeline folder (``model_index.json``, ``unet/``,
        ``scheduler/``, as ``DDPMPipeline.save_pretrained`` writes), a bare ``UNet2DModel`` folder
        or a hub id of either. The U-Net and its noise schedule come from the base (a bare U-Net
        takes the schedule from this config's keys); the data must have its image size and
        channels. Safetensors only; nothing from the folder runs (only the U-Net and scheduler
        classes named here are built, never the pipeline's own). An unconditional base stays
        unconditional: its samples ignore the data's labels (no guidance), because a class
        embedding added fresh would start as noise the frozen base never saw; a class-conditional
        one must have aigc's layout, one embedding per class plus the null class. ``info`` None
        (loading a finished personalised run): the base's own size, channels and classes."""
        folder = _diffusers_folder(base)
        unet_dir = folder / "unet" if (folder / "model_index.json").is_file() else folder
        config = _read_json(unet_dir / "config.json")
        if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise ConfigError(BASE_KEY, f"{base}: holds a {config['_class_name']}; ddpm starts from a UNet2DModel "
                                        "(pixel-space, unconditional or class-conditional)")
        if not any(unet_dir.glob("*.safetensors")):
            raise ConfigError(BASE_KEY, f"{base}: no safetensors weights in {unet_dir.name}/ (aigc never loads pickled "
                                        ".bin checkpoints; convert them with save_pretrained(safe_serialization=True))")
        if info is None:  # a finished personalised run: the base says what it makes
            info = {"shape": _base_shape(config), "num_classes": base_classes(config)}
        _check_base_fits(base, config, info, params)
        scheduler_config = None
        if (folder / "scheduler" / "scheduler_config.json").is_file():
            raw = _read_json(folder / "scheduler" / "scheduler_config.json")
            _check_scheduler_class(base, raw.get("_class_name", "DDPMScheduler"))
            scheduler_config = {k: v for k, v in raw.items() if not k.startswith("_")}
            _check_schedule(base, scheduler_config, params)
        from diffusers import UNet2DModel

        try:  # a plain model class from its config: no pipeline, no custom code, tensors only
            unet = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, local_files_only=True)
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            raise ConfigError(BASE_KEY, f"{base}: cannot load its U-Net ({first_line(exc)})") from None
        unet_config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
        info = {**info, "unet_config": unet_config, "scheduler_config": scheduler_config}
        if scheduler_config is None:  # a bare U-Net: the schedule this config names
            info["scheduler_config"] = {k: v for k, v in dict(denoiser.noise_schedule(
                params.num_train_timesteps, params.beta_schedule, params.prediction_type).config).items()
                if not k.startswith("_")}
        model = cls(params, info, unet=unet.train())
        return model

    @classmethod
    def base_record(cls, base: str) -> dict:
        """The base's weights (sha256 of its safetensors) or, for a hub id, its cached revision."""
        return pretrained_record(base, markers=DIFFUSERS_MARKERS)

    # -- generation ---------------------------------------------------------------------------
    def make_scheduler(self, name: str, steps: int):
        return denoiser.make_sampler(self.noise_scheduler, name, steps)

    def generate(self, n: int, seed: int, options: DDPMOptions, start: int = 0) -> Content:
        """Samples ``start .. start+n-1``; a sample's bytes depend on ``seed`` and its index alone
        (``denoiser.sample_chunks``), which reports every denoising step (``report_progress``)."""
        o = options
        label, scheduler, steps, batch_size = o.label, o.scheduler, o.num_inference_steps, o.batch_size
        self.make_scheduler(scheduler, steps)  # bad options fail before any work
        net = self.unet_ema if (o.use_ema and self.unet_ema is not None) else self.unet
        end = start + n
        conditioned = self.num_classes and o.guidance_scale > 0
        labels_of = None
        if self.num_classes:
            labels_of = (lambda idx: torch.full_like(idx, label)) if label is not None else (lambda idx: idx % self.num_classes)
        items: list[Item] = []
        for lo, x, labels in denoiser.sample_chunks(
                net, self.noise_scheduler, tuple(self.info["shape"]), seed, start, n, batch_size, scheduler,
                steps, o.guidance_scale, labels_of, self.num_classes, self.device, None):
            images = ((x.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).numpy()
            for j in range(batch_size):
                index = lo + j
                if not start <= index < end:
                    continue
                meta = {"index": index, "seed": seed, "sample_seed": sample_seed(seed, index),
                        "num_inference_steps": steps, "scheduler": scheduler}
                if conditioned:
                    meta["label"] = int(labels[j])
                    meta["guidance_scale"] = o.guidance_scale
                items.append(Item(images[j].astype(np.float32), meta))
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
