"""A class-conditional denoising diffusion model of log-mel spectrograms.

Why: the VAE's log-mels are the blurred average of what a digit can sound like (no harmonic
lines, docs/audio.md), and a vocoder cannot put back what the spectrogram lacks. A diffusion
model learns to remove noise at every level, so its samples keep the fine structure of the
training spectrograms instead of averaging it away.

Waveform -> log-mel (the mel analysis every spectrogram generator here shares, ``MelGenerator``)
-> scaled into [-1, 1] by the training set's floor and loudest bin, frames padded with silence
to a side the U-Net takes -> aigc-diffusion's public ``denoiser`` (diffusers' UNet2DModel with a
class embedding; DDPM noise schedule for training; labels dropped to a null class for
classifier-free guidance; an EMA copy for sampling; DDIM / DPM-Solver sampling) -> cropped back
to the clip's frames -> a trained mel-vocoder (``generator.vocoder``) or Griffin-Lim.
``patch: 2`` folds 2 x 2 mel pixels into channels before the U-Net, a quarter of the
full-resolution cost, which is what a CPU budget of minutes affords at 64 x 64.

``MelDiffusion`` holds only what sampling needs, in plain torch, so a finished run generates
without Lightning; how it learns is ``aigc_audio.diffusion_training``.
"""

from __future__ import annotations

import copy
import math
import re
from typing import ClassVar, Literal, Optional

import torch
from torch import nn

from aigc_core import CheckpointError, ConfigError, Content, check_cancelled, report_progress
from aigc_core import Field, Params, field_validator

from aigc_diffusion import denoiser

from .features import LOG_FLOOR
from .mel_base import MelGenerator, MelParams

#: size -> (channels per U-Net level, resnet layers per level, self-attention in the middle block)
SIZES = {
    "debug": ((16, 32), 1, False),
    "small": ((32, 64, 64), 1, True),
    "base": ((64, 128, 256), 2, True),
}


class MelDiffusionParams(MelParams):
    size: Literal["debug", "small", "base"] = Field("small", description="preset U-Net; debug is for fast tests")
    base_channels: Optional[int] = Field(None, ge=denoiser.NORM_GROUPS, multiple_of=denoiser.NORM_GROUPS,
                                         description="channels of the first level (doubling per level); default from size")
    patch: Literal[1, 2, 4] = Field(2, description="fold patch x patch mel pixels into channels before the U-Net (cost / patch^2)")
    conditional: bool = Field(True, description="learn per class when the data has labels (needed for guidance)")
    film: bool = Field(True, description=(
        "the time and class embedding scale and shift each resnet's normalised features (adaptive group norm) "
        "instead of only adding a bias; runs trained before it existed need film: false"))
    label_dropout: float = Field(0.1, ge=0, lt=1, description="share of training labels replaced by the null class (classifier-free guidance)")
    num_train_timesteps: int = Field(1000, ge=2, description="noise levels of the forward process")
    beta_schedule: Literal[denoiser.BETA_SCHEDULES] = Field("squaredcos_cap_v2", description="noise schedule: linear, scaled_linear, squaredcos_cap_v2, sigmoid")
    prediction_type: Literal["epsilon", "v_prediction"] = Field("v_prediction", description=(
        "what the U-Net predicts; with epsilon, samples lost the spectrogram's mean level (docs/audio.md)"))
    snr_gamma: Optional[float] = Field(None, gt=0, description="min-SNR loss weighting (5 is usual): converges faster; off when unset")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="0 turns the EMA copy off")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")

    @property
    def widths(self) -> tuple[int, ...]:
        preset = SIZES[self.size][0]
        if self.base_channels is None:
            return preset
        return tuple(self.base_channels * 2 ** i for i in range(len(preset)))


class MelDiffusionOptions(Params):
    num_inference_steps: int = Field(20, ge=1, description="denoising steps: fewer is faster, more is finer")
    scheduler: str = Field("dpm-solver", description="sampler: ddim, dpm-solver, unipc, ddpm, or a diffusers scheduler class name")
    guidance_scale: float = Field(2.0, ge=0, description="classifier-free guidance: 0 unconditional, 1 conditional, >1 stronger class")
    label: Optional[str] = Field(None, description="a class name or index; default: cycle through the classes")
    use_ema: bool = Field(True, description="sample with the EMA copy of the U-Net")
    batch_size: int = Field(16, ge=1, description="clips are denoised in aligned chunks of this size")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        denoiser.scheduler_class(name)
        return name


def voice_adapter_layers(unet: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An adapter's default layers, (LoRA, whole), for a voice: the full-resolution resnets (the first
    down block's, the last up block's), the input and output convolutions and the attention, where
    a voice's timbre and the clip's fine spectral shape are; the norms' gains and shifts and the
    digit embedding trained whole. #24 asks for an adapter within 3% of its base: the U-Net's
    usual targets (every resnet's convolutions and time projection) are 12.1% of the 4-speaker
    base at rank 8, these 2.9%, and the target speaker's share came out 0.44 against 0.49
    (docs/benchmarks.md, Personalisation)."""
    names = [name for name, _ in unet.named_modules()]
    ups = [int(m.group(1)) for n in names if (m := re.search(r"up_blocks\.(\d+)$", n))]
    outer = re.compile(rf"(down_blocks\.0|up_blocks\.{max(ups, default=-1)})\.resnets\.\d+\.conv[12]$")
    lora = ["conv_in", "conv_out"]
    lora += [re.search(r"(down|up)_blocks\.\d+\.resnets\.\d+\.conv[12]$", n).group(0) for n in names
             if outer.search(n)]
    lora += [t for t in denoiser.ATTENTION_TARGETS if any(n == t or n.endswith("." + t) for n in names)]
    whole = ["norm1", "norm2", "conv_norm_out"]
    if any(n == "class_embedding" or n.endswith(".class_embedding") for n in names):
        whole.append("class_embedding")
    return tuple(dict.fromkeys(lora)), tuple(whole)


class MelDiffusion(MelGenerator):
    generator_name = "mel-diffusion"
    Params = MelDiffusionParams
    GenerateOptions = MelDiffusionOptions
    training = "aigc_audio.diffusion_training:MelDiffusionTraining"
    #: LoRA's default layers: the U-Net's input and output convolutions at every size; an instance
    #: adds its outer resnets and attention, and trains its norms and digit embedding whole
    #: (``voice_adapter_layers``).
    adapter_targets: ClassVar[tuple[str, ...]] = ("conv_in", "conv_out")

    def __init__(self, params: MelDiffusionParams, info: dict):
        super().__init__(params, info)
        _, layers, attention = SIZES[params.size]
        step = self.frame_multiple_for(params)
        if params.n_mels % step:
            raise ConfigError("generator.n_mels", f"mel-diffusion size {params.size!r} with patch {params.patch} "
                                                  f"needs n_mels divisible by {step}, got {params.n_mels}")
        classes = int(info.get("num_classes") or 0)
        self.conditioned = classes if params.conditional and classes > 1 else 0
        self.shape = (1, params.n_mels, self.padded_frames)
        self.unet = denoiser.build_unet(self.shape, params.widths, layers, attention, self.conditioned, params.patch,
                                        film=params.film)
        self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False) if params.ema_decay > 0 else None
        self.noise_scheduler = denoiser.noise_schedule(params.num_train_timesteps, params.beta_schedule,
                                                       params.prediction_type)
        self.adapter_targets, self.adapter_whole = voice_adapter_layers(self.unet)

    def frame_multiple_for(self, params: MelDiffusionParams) -> int:
        return denoiser.side_multiple(len(SIZES[params.size][0]), params.patch)

    def normalisation(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Silence (the log floor) at -1 and the loudest training bin at +1: the range that
        diffusion's clipping and thresholding keep samples in."""
        lo, hi = math.log(LOG_FLOOR), float(log_mel.max())
        hi = max(hi, lo + 1.0)
        return torch.tensor([(hi + lo) / 2, (hi - lo) / 2])

    # -- generation ---------------------------------------------------------------------------
    def generate(self, n: int, seed: int, options: MelDiffusionOptions, start: int = 0) -> Content:
        """Clips ``start .. start+n-1``; a clip depends on ``seed`` and its index alone: the
        denoiser works in ``batch_size``-aligned chunks and each clip is vocoded on its own."""
        o = options
        fixed = o.label  # a class index: Inference resolved a name
        denoiser.make_sampler(self.noise_scheduler, o.scheduler, o.num_inference_steps)  # bad options fail first
        net = self.unet_ema if (o.use_ema and self.unet_ema is not None) else self.unet

        def labels_of(idx: torch.Tensor) -> torch.Tensor:
            return torch.full_like(idx, fixed) if fixed is not None else idx % self.num_classes

        def step_done(done: int, total: int) -> None:
            check_cancelled()  # a server that gave up on this request stops it here
            report_progress(done, total)

        items = []
        meta = {"num_inference_steps": o.num_inference_steps, "scheduler": o.scheduler}
        if self.conditioned and o.guidance_scale > 0:
            meta["guidance_scale"] = o.guidance_scale
        for lo, x, _ in denoiser.sample_chunks(
                net, self.noise_scheduler, self.shape, seed, start, n, o.batch_size, o.scheduler,
                o.num_inference_steps, o.guidance_scale, labels_of if self.conditioned else None, self.conditioned,
                self.device, step_done):
            labels = labels_of(torch.arange(lo, lo + o.batch_size))
            for j in range(o.batch_size):
                index = lo + j
                if start <= index < start + n:
                    wave = self.to_wave(x[j:j + 1].float().clamp(-1.0, 1.0))[0].cpu().numpy()
                    items.append(self.clip_item(wave, index, seed, int(labels[j]), **meta))
        return Content("audio", items)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_state(self) -> dict[str, torch.Tensor]:
        """What sampling needs: with EMA, its U-Net and not the live one (half the file)."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.unet_ema is not None:
            state = {k: v for k, v in state.items() if not k.startswith("unet.")}
        return state

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        if self.unet_ema is not None:
            state.update({"unet." + k[len("unet_ema."):]: v for k, v in list(state.items()) if k.startswith("unet_ema.")})
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint does not fit this mel-diffusion (size, patch, film, n_mels or classes differ): "
                                  f"{first}") from None
