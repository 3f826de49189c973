"""The ``stylegan`` generator: a style-based GAN's sampling network, with what people use one for.

This module is inference only (plain torch): the EMA copy of the generator with its tracked average
w, and ``generate`` with its options: truncation toward the average style, style mixing of two
seeds, a walk in W between two seeds (frames and an animation), and projection of a given image
into W+ with variations around it. What trains it (the discriminator, the losses, the augmentation
and its p) is ``aigc_gan.stylegan_training``, imported only by training.
"""

from __future__ import annotations

import io
from typing import ClassVar, Literal, Optional

import numpy as np
import torch

from aigc_core import ConfigError, Content, Generator, Item, check_cancelled, report_progress, sample_seed, torch_generator
from aigc_core import Field, FileContent, FileField, ParamError, Params, field_validator, model_validator

from . import ada
from .stylegan_net import SIZES, StyleGenerator, Widths, interpolate_styles, mix_styles, project

MAX_SEED = 2**63 - 1
#: the largest picture projection reads (pixels): anything bigger is refused before it is decoded
MAX_PROJECT_PIXELS = 4096 * 4096


class StyleGANParams(Params):
    size: Literal["debug", "small", "base"] = Field("small", description="preset widths: debug is for fast tests")
    z_dim: Optional[int] = Field(None, ge=1, description="latent width (default from size: 16 / 128 / 256)")
    w_dim: Optional[int] = Field(None, ge=1, description="style (W) width (default from size: 16 / 128 / 256)")
    mapping_layers: Optional[int] = Field(None, ge=1, description="layers of the mapping network z -> w (default 2 / 2 / 4)")
    channel_base: Optional[int] = Field(None, ge=1, description="channels at resolution r are channel_base / r, clamped (default 64 / 384 / 1024)")
    channel_max: Optional[int] = Field(None, ge=1, description="at most this many channels per layer (default 16 / 128 / 256)")
    mapping_lr_mul: float = Field(0.1, gt=0, le=1, description="the mapping network learns this much slower than the rest (StyleGAN: 0.01, too slow to learn the class in a CPU budget)")
    conditional: bool = Field(False, description="learn and sample per class (data labels): the class embedding joins z in the mapping network")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the generator that samples (0: the trained weights themselves)")
    w_avg_beta: float = Field(0.995, ge=0, lt=1, description="decay of the tracked average w that truncation pulls toward")
    lr_g: float = Field(0.0025, gt=0, description="generator learning rate (Adam)")
    # With equalised learning rates every weight is stored at N(0, 1) and Adam moves it by about lr a step:
    # at the generator's 0.0025 this small D followed G too slowly, and G learnt to draw one picture per
    # class whatever z was within a few hundred steps (docs/benchmarks.md, "Style-based GAN")
    lr_d: float = Field(0.02, gt=0, description="discriminator learning rate (Adam); 8x lr_g: at lr_g, D follows G too slowly and G draws one picture per class")
    beta1: float = Field(0.0, ge=0, lt=1, description="Adam beta1 (0 as in StyleGAN2)")
    beta2: float = Field(0.99, ge=0, lt=1, description="Adam beta2")
    r1_gamma: float = Field(1.0, ge=0, description="weight of the R1 penalty on D's gradient at real images (0: off)")
    r1_every: int = Field(16, ge=1, description="lazy R1: every this many steps, scaled up to match")
    mix_prob: float = Field(0.5, ge=0, le=1, description="style-mixing regularisation: share of batches drawn from two latents")
    # Without it, on MNIST at 32x32 the samples of a label drift to one picture: intra-class diversity
    # 0.68 -> 0.51 -> 0.41 of the real one at 250 / 500 / 750 iterations, and the same with augmentation,
    # noise inputs, lazy R1 or class-wise minibatch std taken away; with it 0.71 / 0.67 / 0.69
    # (bench/stylegan_trace.py; figures in docs/benchmarks.md, "Style-based GAN")
    diversity_weight: float = Field(1.0, ge=0, description="mode-seeking regularisation (Mao et al. 2019): pairs of samples of one class must differ in the image as much as in W; keeps a label's samples from drifting to one picture (0: off)")
    pl_weight: float = Field(0.0, ge=0, description="path-length regularisation weight (0: off; StyleGAN2 uses 2)")
    pl_every: int = Field(4, ge=1, description="lazy path-length regularisation: every this many steps")
    mbstd_group: int = Field(4, ge=0, description="minibatch standard deviation group size in D (0: off)")
    augment: Literal["ada", "fixed", "off"] = Field("ada", description="what D sees through: adaptive augmentation (p steered by r_t), a fixed p, or none")
    augment_p: float = Field(0.0, ge=0, le=1, description="the starting p (ada) or the p (fixed)")
    ada_target: float = Field(0.6, gt=0, lt=1, description="ada: the r_t = E[sign(D(real))] that p is steered to")
    ada_kimg: float = Field(100.0, gt=0, description="ada: thousands of real images for p to move by 1 (its speed)")
    ada_interval: int = Field(4, ge=1, description="ada: adjust p every this many discriminator steps")
    augment_ops: str = Field("blit,geom,color", description="transformation groups, comma-separated: blit (flip, quarter turns, integer shifts), geom (scale, rotate, stretch, shift), color, cutout")

    @field_validator("augment", mode="before")
    @classmethod
    def _off_is_not_a_bool(cls, value):
        # YAML 1.1, and so OmegaConf, reads a bare ``off`` (``augment: off``, ``generator.augment=off``) as false
        return "off" if value is False else value

    @field_validator("augment_ops")
    @classmethod
    def _known_ops(cls, text: str) -> str:
        ada.parse_ops(text)
        return text

    @property
    def widths(self) -> Widths:
        preset = SIZES[self.size]
        return Widths(
            z_dim=self.z_dim or preset.z_dim, w_dim=self.w_dim or preset.w_dim,
            mapping_layers=self.mapping_layers or preset.mapping_layers,
            base=self.channel_base or preset.base, lo=min(preset.lo, self.channel_max or preset.hi),
            hi=self.channel_max or preset.hi)


class StyleGANOptions(Params):
    label: Optional[int] = Field(None, ge=0, description="conditional models: the class of every sample (default: cycle through classes)")
    truncation: float = Field(1.0, gt=0, le=1, description="psi: pull each w toward the average style, (0, 1]; below 1 trades variety for typical-looking samples")
    mix: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="style mixing: a second seed; sample i takes its coarse layers from sample i of seed and its fine layers from sample i of this seed")
    mix_layer: Optional[int] = Field(None, ge=1, description="style mixing: the first layer taken from the second seed (1 .. depth-1; default: half the depth)")
    interpolate: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="a walk in W from sample i of seed to sample i of this seed: frames, a grid and an animation per walk")
    frames: int = Field(16, ge=2, le=256, description="interpolate: frames per walk")
    animation: Literal["gif", "webp"] = Field("gif", description="interpolate: the animation format of each walk (the exporter writes one per walk)")
    project: Optional[FileContent] = FileField(None, media_type="image/png", description=(
        "projection: fit this image (a path on the CLI and in Python, the file's bytes, base64, over HTTP); "
        "returns its reconstruction and n-1 variations around it"))
    project_steps: int = Field(200, ge=1, le=5000, description="projection: optimisation steps")
    variation_strength: float = Field(0.4, ge=0, le=4, description="projection: how far variations stray from the fitted w (in units of a random style's distance from the average)")
    batch_size: int = Field(64, ge=1, le=1024, description="samples are computed in aligned chunks of this size")

    @model_validator(mode="after")
    def _one_mode(self) -> "StyleGANOptions":
        modes = [k for k in ("mix", "interpolate", "project") if getattr(self, k) is not None]
        if len(modes) > 1:
            raise ParamError(modes[1], f"choose one of mix, interpolate and project (got {modes[0]} too)")
        if self.mix_layer is not None and self.mix is None:
            raise ParamError("mix_layer", "needs mix (the second seed)")
        return self


class StyleGAN(Generator):
    """Owns the sampling network (``G``, the EMA of what training updates, with its tracked w
    average). ``training`` names the LightningModule that trains it."""

    modality = "image"
    shards = True
    Params = StyleGANParams
    GenerateOptions = StyleGANOptions
    training = "aigc_gan.stylegan_training:StyleGANTraining"
    #: LoRA's default layers (peft's rule: a module named so, or whose name ends in ".pattern"): the
    #: affine layers that turn w into every convolution's styles, and the mapping network's first two
    #: layers (every preset has them). They are ``EqualLinear`` (weights scaled at run time), which
    #: a LoRA for ``nn.Linear`` would merge wrongly: see the plugin README, "Adapters".
    adapter_targets: ClassVar[tuple[str, ...]] = ("affine", "mapping.layers.0", "mapping.layers.1")

    def __init__(self, params: StyleGANParams, info: dict):
        super().__init__(params, info)
        channels, height, width = info["shape"]
        if height != width or height not in (8, 16, 32, 64):
            raise ConfigError("data.image_size", f"stylegan needs square images of 8, 16, 32 or 64 pixels, got {height}x{width}")
        self.shape = (int(channels), int(height), int(width))
        self.num_classes = int(info.get("num_classes") or 0) if params.conditional else 0
        self.G = StyleGenerator(channels, height, params.widths, self.num_classes, params.mapping_lr_mul)
        self.G.requires_grad_(False)  # the sampling copy: training updates its own and averages into this one

    @property
    def depth(self) -> int:
        """How many w the synthesis network reads (mix layers are 1 .. depth-1)."""
        return self.G.num_ws

    # -- per-sample randomness --------------------------------------------------------------------
    def draw(self, seed: int, indices: list[int], device=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Latents and noise maps of samples ``indices`` of ``seed``: each from (seed, index) alone."""
        zs, noises = [], []
        for i in indices:
            g = torch_generator(seed, i)
            zs.append(torch.randn(self.G.z_dim, generator=g))
            noises.append(self.G.synthesis.random_noise(1, generator=g))
        device = device or self.model_device()
        z = torch.stack(zs).to(device)
        noise = [torch.cat([n[k] for n in noises]).to(device) for k in range(len(noises[0]))] if noises else []
        return z, noise

    def model_device(self) -> torch.device:
        return self.G.synthesis.const.device

    def labels_of(self, indices: list[int], label: Optional[int]) -> Optional[torch.Tensor]:
        if not self.num_classes:
            return None
        return torch.tensor([label if label is not None else i % self.num_classes for i in indices],
                            device=self.model_device())

    @staticmethod
    def to_images(x: torch.Tensor) -> np.ndarray:
        return ((x.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).numpy().astype(np.float32)

    # -- generate ------------------------------------------------------------------------------
    def generate(self, n: int, seed: int, options: StyleGANOptions, start: int = 0) -> Content:
        """Samples ``start .. start+n-1`` (or, with ``mix``, their style mixes; with ``interpolate``,
        ``n`` walks; with ``project``, the reconstruction and ``n-1`` variations). Chunks are
        aligned to multiples of ``batch_size`` and padded, so a sample's bytes never depend on how
        a request was cut."""
        o = options
        if o.mix is not None:
            layer = self.depth // 2 if o.mix_layer is None else o.mix_layer
            if not 1 <= layer < self.depth:
                raise ConfigError("generate.mix_layer", f"must be in [1, {self.depth - 1}]: this {self.shape[1]}x{self.shape[2]} "
                                                        f"generator has depth {self.depth}, got {layer}")
        if (o.interpolate is not None or o.project is not None) and start:
            which = "interpolate" if o.interpolate is not None else "project"
            raise ConfigError(f"generate.{which}", "cannot be sharded (start > 0); generate it in one call")
        if o.project is not None:
            return self._projection(n, seed, o.project, o.project_steps, o.variation_strength, o.label, o.truncation)
        if o.interpolate is not None:
            return self._walks(n, seed, o.interpolate, o.frames, o.animation, o.label, o.truncation)
        return self._samples(n, seed, o.label, o.truncation, o.mix, layer if o.mix is not None else None,
                             o.batch_size, start)

    def _samples(self, n, seed, label, psi, mix, layer, batch_size, start) -> Content:
        items: list[Item] = []
        end = start + n
        rows_a, rows_b = [], []
        for lo in range((start // batch_size) * batch_size, end, batch_size):
            check_cancelled()  # a server that gave up on this request stops it here
            indices = list(range(lo, lo + batch_size))
            z, noise = self.draw(seed, indices)
            y = self.labels_of(indices, label)
            w = self.G.styles(z, y, psi)
            if mix is None:
                ws = self.G.broadcast(w)
            else:
                z_b, _ = self.draw(mix, indices)
                y_b = self.labels_of(indices, label)
                w_b = self.G.styles(z_b, y_b, psi)
                ws = mix_styles(w, w_b, layer, self.depth)
            images = self.to_images(self.G.synthesis(ws, noise))
            keep = [j for j in range(batch_size) if start <= lo + j < end]
            if mix is not None:
                rows_a.append(self.to_images(self.G.synthesis(self.G.broadcast(w), noise))[keep])
                rows_b.append(self.to_images(self.G.synthesis(self.G.broadcast(w_b), noise))[keep])
            for j in keep:
                index = lo + j
                meta = {"index": index, "seed": seed, "sample_seed": sample_seed(seed, index)}
                if y is not None:
                    meta["label"] = int(y[j])
                if psi != 1.0:
                    meta["truncation"] = psi
                if mix is not None:
                    meta.update({"mix": mix, "mix_layer": layer,
                                 "caption": f"layers 0-{layer - 1} from seed {seed}, {layer}-{self.depth - 1} from seed {mix}"})
                items.append(Item(images[j], meta))
        if mix is not None and items:
            from aigc_core import make_grid

            singles = [*np.concatenate(rows_a), *np.concatenate(rows_b), *(i.data for i in items)]
            columns = len(items)
            items.append(Item(make_grid(singles, nrow=columns), {
                "index": end, "seed": seed, "kind": "grid", "mix": mix, "mix_layer": layer,
                "caption": f"top: seed {seed} (coarse, layers 0-{layer - 1}); middle: seed {mix} "
                           f"(fine, {layer}-{self.depth - 1}); bottom: mixed"}))
        return Content("image", items)

    def _walks(self, n, seed, to_seed, frames, animation, label, psi) -> Content:
        from aigc_core import make_grid

        items, singles = [], []
        for r in range(n):
            check_cancelled()
            report_progress(r, n)
            z_a, noise = self.draw(seed, [r])
            z_b, _ = self.draw(to_seed, [r])
            y = self.labels_of([r], label)
            w_a, w_b = self.G.styles(z_a, y, psi)[0], self.G.styles(z_b, y, psi)[0]
            path = interpolate_styles(w_a, w_b, frames)  # noise held at sample r's: only the style moves
            images = self.to_images(self.G.synthesis(self.G.broadcast(path), [t.expand(frames, -1, -1, -1) for t in noise]))
            for k in range(frames):
                meta = {"index": r * frames + k, "seed": seed, "interpolate": to_seed, "walk": r, "frame": k,
                        "frames": frames, "animation": f"walk_{r:03d}", "animation_format": animation}
                if y is not None:
                    meta["label"] = int(y[0])
                if psi != 1.0:
                    meta["truncation"] = psi
                items.append(Item(images[k], meta))
                singles.append(images[k])
        report_progress(n, n)
        if items:
            items.append(Item(make_grid(singles, nrow=frames), {
                "index": n * frames, "seed": seed, "kind": "grid", "interpolate": to_seed,
                "caption": f"each row a walk in W from seed {seed} to seed {to_seed}"}))
        return Content("image", items)

    def _projection(self, n, seed, path, steps, strength, label, psi) -> Content:
        from aigc_core import make_grid

        target, notes = read_image(path, "generate.project", self.shape)
        if n == 0:
            return Content("image", [])
        recon, ws, error = self.project_images(target[None], steps, label)
        source = data_label(path)
        items = [Item(recon[0], {"index": 0, "seed": seed, "projection": "reconstruction", "projected": source,
                                 "mse": round(float(error[0]), 6),
                                 "project_steps": steps, **({"note": "; ".join(notes)} if notes else {})})]
        if n > 1:
            z, noise = self.draw(seed, list(range(1, n)))
            y = self.labels_of(list(range(1, n)), label)
            w = self.G.styles(z, y, psi)
            centre = self.G.mapping.centre(y if self.num_classes else None, w.shape[0])
            varied = ws + strength * (w - centre)[:, None]
            images = self.to_images(self.G.synthesis(varied, self._zero_noise(n - 1)))
            for k in range(n - 1):
                items.append(Item(images[k], {"index": k + 1, "seed": seed, "projection": "variation", "projected": source,
                                              "variation_strength": strength}))
        singles = [target.numpy().astype(np.float32) * 0.5 + 0.5, *(i.data for i in items)]
        items.append(Item(make_grid(singles, nrow=min(n + 1, 10)), {
            "index": n, "seed": seed, "kind": "grid",
            "caption": "the image given, its reconstruction, then variations around it"}))
        return Content("image", items)

    def _zero_noise(self, n: int) -> list[torch.Tensor]:
        return [torch.zeros(n, *s, device=self.model_device()) for s in self.G.synthesis.noise_shapes()]

    def project_images(self, target: torch.Tensor, steps: int = 200, label: Optional[int] = None):
        """Fit W+ to ``target`` (N, C, H, W) in [-1, 1] with zero noise; returns the reconstructions
        (numpy, [0, 1]), the ws and the per-image pixel errors. Starts from the average w (of
        ``label``'s class when given, else the mean over classes)."""
        target = target.to(self.model_device())
        if self.num_classes and label is not None:
            start = self.G.mapping.w_avg[label][None]
        else:
            start = self.G.mapping.w_avg.mean(0, keepdim=True)
        start = start.expand(target.shape[0], -1)
        ws, error = project(self.G, target, start, steps=steps, noise=self._zero_noise(target.shape[0]),
                            on_step=lambda done, total: (check_cancelled(), report_progress(done, total)))
        with torch.no_grad():
            recon = self.to_images(self.G.synthesis(ws, self._zero_noise(target.shape[0])))
        return recon, ws, error

    # -- artifacts ----------------------------------------------------------------------------------
    def artifact_state(self) -> dict[str, torch.Tensor]:
        """The sampling network and its tracked average w: nothing of D or the augmentation."""
        return {f"G.{k}": v.detach().cpu().contiguous() for k, v in self.G.state_dict().items()}

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        from aigc_core import CheckpointError

        g_state = {k[2:]: v for k, v in state.items() if k.startswith("G.")}
        if not g_state or len(g_state) != len(state):
            raise CheckpointError("checkpoint is not a stylegan generator (no 'G.' tensors)")
        try:
            self.G.load_state_dict(g_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint does not fit this stylegan: {str(exc).strip().splitlines()[0]}") from None


def data_label(data: bytes) -> str:
    """How an image given as an option is named in metadata: its path, else its content's hash."""
    return (data if isinstance(data, FileContent) else FileContent(bytes(data))).label


def read_image(data: bytes, key: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[str]]:
    """A projection target (an option's ``FileContent``: the reading of a path, if any, was done by
    the options, never here) as a (C, H, W) tensor in [-1, 1] of the model's shape, with notes on
    what was changed to get there (mode converted, size resized). The size is checked before the
    pixels are decoded, so a small file that claims a huge image costs nothing. Anything that is
    not a readable image is one line naming ``key``."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    where = f"{data.source}: " if isinstance(data, FileContent) and data.source else ""
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is refused below, undecoded
            img = Image.open(io.BytesIO(bytes(data)))
        with img:
            w, h = img.size
            if w * h > MAX_PROJECT_PIXELS:
                raise ConfigError(key, f"{where}{w}x{h} pixels is too large to project (at most {MAX_PROJECT_PIXELS})")
            img.load()
            want = "L" if shape[0] == 1 else "RGB"
            if img.mode != want:
                notes.append(f"converted from mode {img.mode} to {want}")
                img = img.convert(want)
            if (h, w) != tuple(shape[1:]):
                notes.append(f"resized from {w}x{h} to {shape[2]}x{shape[1]}")
                img = img.resize((shape[2], shape[1]), Image.Resampling.LANCZOS)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except Image.DecompressionBombError:
        raise ConfigError(key, f"{where}an image of more pixels than PIL decodes") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):  # PIL's errors for a broken file
        raise ConfigError(key, f"{where}not a readable image") from None
    arr = arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1))
    return torch.from_numpy(arr * 2.0 - 1.0), notes
