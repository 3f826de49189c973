"""A convolutional VAE in plain torch: its networks, its likelihoods and its sampling.

The model's own methods are the public API (``encode``, ``decode``, ``reconstruct``,
``sample``, ``interpolate``, ``traverse``); ``generate`` maps its ``mode`` option onto them and
wraps the result as ``Content``. Images enter and leave in [0, 1]; binarising them is this
model's preprocessing, done in ``prepare`` so that training, validation and metrics agree.
The ELBO and the importance-sampled likelihood stay here because the ``vae-likelihood`` metric
scores finished runs with them; only the optimiser, the KL warm-up and the Lightning hooks live
in ``training.py``, so a finished run loads and generates without Lightning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional

import numpy as np
import torch
from torch import nn

from aigc_core import CheckpointError, ConfigError, Content, Generator, Item, UsageError, check_cancelled, sample_normal, sample_seed
from aigc_core import Field, FileContent, FileField, ParamError, Params, model_validator, preset

from . import likelihoods as lk
from .nets import Decoder, Encoder

#: size -> (conv widths, latent dim, hidden units)
SIZES = {"debug": ([8, 16], 4, 32), "small": ([32, 64], 16, 256), "base": ([32, 64, 128], 32, 512)}
#: the seed of the fixed binarisation of held-out images, so val/test scores compare across runs
EVAL_BINARIZE_SEED = 1234


class VAEParams(Params):
    size: Literal["debug", "small", "base"] = Field("small", description="preset sizes; debug is for fast tests")
    latent_dim: Optional[int] = Field(None, ge=1, description="default from size: 4 / 16 / 32")
    channels: Optional[list[Annotated[int, Field(ge=1)]]] = Field(None, min_length=1, description="conv widths, one stride-2 level each; default from size")
    hidden_dim: Optional[int] = Field(None, ge=1, description="fully connected units; default from size: 32 / 256 / 512")
    likelihood: Literal["bernoulli", "gaussian", "continuous-bernoulli"] = Field("bernoulli", description="decoder likelihood: bernoulli (binary data), gaussian, or continuous-bernoulli")
    binarize: Literal["none", "dynamic", "threshold"] = Field("none", description="bernoulli only; dynamic: resample every batch")
    gaussian_std: Optional[float] = Field(None, gt=0, description="gaussian only; None learns one std for all pixels")
    beta: float = Field(1.0, ge=0, description="weight of the KL term (beta-VAE)")
    kl_warmup_steps: int = Field(0, ge=0, description="ramp beta linearly from 0 over this many optimiser steps")
    conditional: bool = Field(False, description="CVAE: encoder and decoder see the class label")
    lr: float = Field(1e-3, gt=0, description="learning rate (Adam)")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")

    @model_validator(mode="after")
    def _likelihood_settings(self) -> "VAEParams":
        if self.binarize != "none" and self.likelihood != "bernoulli":
            raise ParamError("binarize", f"binarised data needs likelihood 'bernoulli', not {self.likelihood!r}")
        if self.gaussian_std is not None and self.likelihood != "gaussian":
            raise ParamError("gaussian_std", "only used with likelihood 'gaussian'")
        return self

    @property
    def widths(self) -> list[int]:
        return list(self.channels or SIZES[self.size][0])

    latent = preset("latent_dim", SIZES, 1)
    hidden = preset("hidden_dim", SIZES, 2)


class VAEOptions(Params):
    mode: Literal["samples", "reconstructions", "interpolation", "traversal"] = Field("samples", description="samples, reconstructions of held-out images, an interpolation grid, or a traversal grid")
    label: Optional[int] = Field(None, ge=0, description="conditional models: the class of every item (default: cycle through classes)")
    temperature: float = Field(1.0, gt=0, description="scale of the prior's std when sampling latents")
    steps: int = Field(8, ge=2, description="interpolation and traversal: images per row")
    a: Optional[FileContent] = FileField(None, media_type="image/png", description=(
        "interpolation from this image (PNG..., the model's shape) instead of random latents: a path on the CLI "
        "and in Python, the file's bytes (base64) over HTTP"))
    b: Optional[FileContent] = FileField(None, media_type="image/png", description="interpolation: the image to end at (with a)")
    dim: int = Field(0, ge=0, description="traversal: the latent dimension that varies")
    span: float = Field(3.0, gt=0, description="traversal: from -span to +span prior standard deviations")
    split: Literal["test", "val", "train"] = Field("test", description="reconstructions: the images to reconstruct")
    batch_size: int = Field(64, ge=1, description="samples are decoded in blocks of this size; the same size gives the same bytes")

    @model_validator(mode="after")
    def _both_ends(self) -> "VAEOptions":
        if (self.a is None) != (self.b is None):
            raise ParamError("b" if self.b is None else "a", "give both a and b (two image files), or neither")
        return self


def fixed_binarize(x: torch.Tensor, seed: int, offset: int = 0) -> torch.Tensor:
    """Stochastic binarisation that depends on (seed, position) only: held-out scores are stable."""
    out = torch.empty_like(x)
    g = torch.Generator()
    for i in range(x.shape[0]):
        g.manual_seed(sample_seed(seed, offset + i))
        out[i] = (torch.rand(x.shape[1:], generator=g) < x[i].cpu()).to(x.dtype)
    return out


class VAE(Generator):
    modality = "image"
    Params = VAEParams
    GenerateOptions = VAEOptions
    #: Asks the pipeline to pass ``data_source`` (a callable returning the set-up source) to
    #: ``generate``: reconstructions need held-out images.
    shards = True
    reads_data = True
    training = "aigc_vae.training:VAETraining"
    #: LoRA's default layers (peft target_modules: a module name or its dotted suffix): the
    #: decoder's fully connected layers and its first transposed convolution, which make the
    #: images, and the encoder's fully connected layers, so the posterior follows the new data
    #: (the ELBO trains both). Not the first encoder conv nor the last decoder conv: their 1-3
    #: image channels leave a low-rank update nothing to add. All exist at every size.
    adapter_targets: ClassVar[tuple[str, ...]] = ("encoder.fc.0", "encoder.out", "decoder.fc.0", "decoder.fc.2",
                                                  "decoder.convs.0")

    def __init__(self, params: VAEParams, info: dict):
        super().__init__(params, info)
        shape = info.get("shape")
        if info.get("modality", "image") != "image" or not shape or len(shape) != 3:
            raise ConfigError("data.source", f"vae needs images (C x H x W), the data source gives {shape!r}")
        self.shape = tuple(int(s) for s in shape)
        channels, height, width = self.shape
        depth = len(params.widths)
        if min(height, width) < 2 ** depth:
            raise ConfigError("generator.channels",
                              f"{depth} stride-2 levels need images of at least {2 ** depth} pixels a side, "
                              f"got {height}x{width}")
        self.num_classes = 0
        if params.conditional:
            self.num_classes = int(info.get("num_classes") or 0)
            if self.num_classes < 2:
                raise ConfigError("generator.conditional", "the data source has no class labels to condition on")
        self.encoder = Encoder(channels, height, width, params.widths, params.hidden, params.latent, self.num_classes)
        self.decoder = Decoder(channels, height, width, params.widths, params.hidden, params.latent, self.num_classes)
        if params.likelihood == "gaussian":
            std = params.gaussian_std or 0.1
            self.log_std = nn.Parameter(torch.tensor(math.log(std)), requires_grad=params.gaussian_std is None)
        else:
            self.log_std = None

    # -- preprocessing ----------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, train: bool, offset: int = 0) -> torch.Tensor:
        """Images in [0, 1] as the likelihood sees them: binarised when the params say so."""
        mode = self.params.binarize
        if mode == "dynamic":
            return torch.bernoulli(x) if train else fixed_binarize(x, EVAL_BINARIZE_SEED, offset)
        if mode == "threshold":
            return (x > 0.5).to(x.dtype)
        return x

    def _labels(self, y: Any) -> torch.Tensor | None:
        return y.to(self.device) if self.num_classes and y is not None else None

    # -- the model's own API -------------------------------------------------------------------
    def _as_batch(self, x: Any, what: str = "image") -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x, np.float32) if not torch.is_tensor(x) else x).float()
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4 or tuple(t.shape[1:]) != self.shape:
            got = "x".join(map(str, t.shape[1:] if t.dim() == 4 else t.shape))
            raise UsageError(f"{what}: shape {got}, but this model takes {'x'.join(map(str, self.shape))} (C x H x W)")
        return t.to(self.device)

    def encode(self, x: Any, y: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | x): its mean and log-variance, for images in [0, 1]."""
        return self.encoder(self._as_batch(x), self._labels(y))

    def decode_logits(self, z: torch.Tensor, y: Any = None) -> torch.Tensor:
        return self.decoder(z.to(self.device), self._labels(y))

    def decode(self, z: torch.Tensor, y: Any = None) -> torch.Tensor:
        """The expected image for latents z, in [0, 1]."""
        return lk.mean_image(self.params.likelihood, self.decode_logits(z, y))

    @torch.no_grad()
    def reconstruct(self, x: Any, y: Any = None) -> torch.Tensor:
        """Decode the posterior mean: deterministic, the usual picture of what the model kept."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    def latents(self, n: int, seed: int, start: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """Latent i depends on (seed, i) alone: batch size and sharding cannot change a sample."""
        return (sample_normal(n, self.params.latent, seed, start) * temperature).to(self.device)

    def _class_labels(self, n: int, start: int, label: Optional[int]) -> torch.Tensor | None:
        """Rows ``start .. start+n-1``'s classes: ``label`` (checked by ``Inference`` against
        ``num_classes``) or, unset, cycling through the classes; None for a model without classes."""
        if not self.num_classes:
            return None
        idx = torch.arange(start, start + n)
        return (torch.full_like(idx, label) if label is not None else idx % self.num_classes).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, label: Optional[int] = None, temperature: float = 1.0,
               start: int = 0) -> torch.Tensor:
        """n images from the prior; image i depends on (seed, start + i) alone."""
        y = self._class_labels(n, start, label)
        return self.decode(self.latents(n, seed, start, temperature), y)

    @torch.no_grad()
    def interpolate(self, a: Any, b: Any, steps: int = 8, label: Optional[int] = None) -> torch.Tensor:
        """Images along the straight line between the posterior means of images a and b."""
        if steps < 2:
            raise UsageError(f"steps: must be at least 2, got {steps}")
        xa, xb = self._as_batch(a, "image a"), self._as_batch(b, "image b")
        y = self._class_labels(1, 0, label)
        za, _ = self.encoder(xa, y)
        zb, _ = self.encoder(xb, y)
        t = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        z = za * (1 - t) + zb * t
        return self.decode(z, None if y is None else y.expand(steps))

    @torch.no_grad()
    def traverse(self, dim: int, steps: int = 8, span: float = 3.0, base: torch.Tensor | None = None,
                 label: Optional[int] = None) -> torch.Tensor:
        """Images that vary latent ``dim`` from -span to +span, the other dimensions held at ``base``."""
        if not 0 <= dim < self.params.latent:
            raise ConfigError("generate.dim", f"latent dimension {dim} does not exist (latent_dim is {self.params.latent})")
        base = torch.zeros(self.params.latent, device=self.device) if base is None else base.to(self.device)
        z = base.reshape(1, -1).repeat(steps, 1)
        z[:, dim] = torch.linspace(-span, span, steps, device=self.device)
        y = self._class_labels(1, 0, label)
        return self.decode(z, None if y is None else y.expand(steps))

    # -- the likelihood: the training objective, and what the vae-likelihood metric scores -----
    def elbo_terms(self, x: torch.Tensor, y: Any = None, generator: torch.Generator | None = None):
        """Per-image log p(x | z) (one z from q) and KL(q || p), both in nats."""
        mu, logvar = self.encoder(x, self._labels(y))
        eps = torch.randn(mu.shape, generator=generator, device=mu.device) if generator is not None \
            else torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        out = self.decoder(z, self._labels(y))
        rec = lk.log_prob(self.params.likelihood, out, x, self.log_std)
        return rec, lk.gaussian_kl(mu, logvar)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, y: Any = None, k: int = 200,
                       generator: torch.Generator | None = None, chunk: int = 4096) -> torch.Tensor:
        """Importance-sampled log p(x) per image with k samples from q (Burda et al., 2016), nats.

        ``x`` must already be prepared (binarised when the model binarises).
        """
        x = x.to(self.device)
        labels = self._labels(y)
        mu, logvar = self.encoder(x, labels)
        per = max(1, chunk // k)
        out = []
        for lo in range(0, x.shape[0], per):
            xs, m, lv = x[lo:lo + per], mu[lo:lo + per], logvar[lo:lo + per]
            b = xs.shape[0]
            eps = torch.randn((k, b, m.shape[1]), generator=generator).to(self.device)
            z = m + torch.exp(0.5 * lv) * eps  # k, b, latent
            ys = None if labels is None else labels[lo:lo + per].repeat(k)
            logits = self.decoder(z.reshape(k * b, -1), ys)
            rec = lk.log_prob(self.params.likelihood, logits, xs.repeat(k, 1, 1, 1), self.log_std).view(k, b)
            log_w = rec + lk.log_standard_normal(z) - lk.log_normal(z, m, lv)
            out.append(torch.logsumexp(log_w, 0) - math.log(k))
        return torch.cat(out)

    # -- generation ---------------------------------------------------------------------------
    def generate(self, n: int, seed: int, options: VAEOptions, data_source: Any = None, start: int = 0) -> Content:
        """``n`` items of ``options.mode``: samples, reconstructions (side by side with the original),
        or for interpolation and traversal ``n`` rows of ``steps`` images plus one grid of them."""
        o = options
        if o.mode == "samples":
            return self._samples(n, seed, o.label, o.temperature, o.batch_size, start)
        if o.mode == "reconstructions":
            return self._reconstructions(n, seed, o.split, o.batch_size, data_source)
        if o.mode == "interpolation":
            return self._interpolation(n, seed, o.steps, o.a, o.b, o.label)
        return self._traversal(n, seed, o.steps, o.dim, o.span, o.label, o.temperature)

    def _samples(self, n, seed, label, temperature, batch_size, start) -> Content:
        """Decoded in blocks of ``batch_size`` rows aligned to absolute indices and padded to full
        size: a matrix product's rounding depends on its shape, so sample i comes out bit for bit
        the same however the request was cut (n, start, or another process's shard)."""
        items = []
        end = start + n
        for block in range(start - start % batch_size, end, batch_size):
            check_cancelled()  # a server that gave up on this request stops it here
            z = self.latents(batch_size, seed, block, temperature)
            y = self._class_labels(batch_size, block, label)
            images = self.decode(z, y).float().cpu().numpy()
            for i in range(max(start, block), min(end, block + batch_size)):
                meta = {"index": i, "seed": seed, "sample_seed": sample_seed(seed, i), "mode": "samples"}
                if y is not None:
                    meta["label"] = int(y[i - block])
                items.append(Item(images[i - block].astype(np.float32), meta))
        return Content("image", items)

    def _reconstructions(self, n, seed, split, batch_size, data_source) -> Content:
        if data_source is None:
            raise UsageError("reconstructions need held-out images: pass data_source (the pipeline does this)")
        source = data_source() if callable(data_source) else data_source
        dataset = source.split(split)
        n = min(n, len(dataset))
        items = []
        for lo in range(0, n, batch_size):
            check_cancelled()
            pairs = [dataset[i] for i in range(lo, min(n, lo + batch_size))]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs]).float()
            y = torch.as_tensor([int(p[1]) for p in pairs])
            self._as_batch(x, f"data split {split!r}")
            x_in = self.prepare(x, train=False, offset=lo)
            recon = self.reconstruct(x_in, y).float().cpu()
            for j in range(x.shape[0]):
                side = torch.cat([x_in[j].cpu(), recon[j]], dim=2).numpy().astype(np.float32)
                items.append(Item(side, {"index": lo + j, "seed": seed, "mode": "reconstructions",
                                         "split": split, "split_index": lo + j, "label": int(y[j])}))
        return Content("image", items)

    def _grid(self, rows: list[torch.Tensor], seed: int, mode: str, extra: list[dict]) -> Content:
        from aigc_core import make_grid

        items, frames = [], []
        for r, row in enumerate(rows):
            for c, image in enumerate(row.float().cpu().numpy()):
                frames.append(image.astype(np.float32))
                items.append(Item(frames[-1], {"index": len(items), "seed": seed, "mode": mode, "row": r,
                                               "column": c, **extra[r]}))
        if rows:
            grid = make_grid(frames, nrow=rows[0].shape[0])
            items.append(Item(grid, {"index": len(items), "seed": seed, "mode": mode, "kind": "grid",
                                     "rows": len(rows), "columns": int(rows[0].shape[0])}))
        return Content("image", items)

    def _interpolation(self, n, seed, steps, a, b, label) -> Content:
        if a is not None:
            xa, xb = read_image(a, "generate.a", self.shape), read_image(b, "generate.b", self.shape)
            return self._grid([self.interpolate(xa, xb, steps, label)], seed, "interpolation",
                              [{"from": _label(a), "to": _label(b)}])
        rows = []
        t = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        for r in range(n):
            check_cancelled()  # per row
            ends = self.latents(2, seed, 2 * r)
            y = self._class_labels(1, r, label)
            z = ends[0] * (1 - t) + ends[1] * t
            rows.append(self.decode(z, None if y is None else y.expand(steps)))
        return self._grid(rows, seed, "interpolation", [{"from_index": 2 * r, "to_index": 2 * r + 1} for r in range(n)])

    def _traversal(self, n, seed, steps, dim, span, label, temperature) -> Content:
        def row_label(r: int) -> Optional[int]:
            return label if label is not None or not self.num_classes else r % self.num_classes

        rows = []
        for r in range(n):
            check_cancelled()  # per row
            rows.append(self.traverse(dim, steps, span, self.latents(1, seed, r, temperature)[0], row_label(r)))
        return self._grid(rows, seed, "traversal", [{"dim": dim, "span": span} for _ in range(n)])

    # -- artifacts ------------------------------------------------------------------------------
    def save_artifact(self, directory: Path) -> list[Path]:
        files = super().save_artifact(directory)
        meta = Path(directory) / "model.json"
        data = json.loads(meta.read_text())
        data.update({"generator": "vae", "params": self.params.model_dump()})
        meta.write_text(json.dumps(data, indent=2, default=str))
        return files

    @classmethod
    def load_artifact(cls, directory: Path, params: Any, info: dict | None = None) -> "VAE":
        meta = Path(directory) / "model.json"
        if meta.is_file():
            try:
                kind = json.loads(meta.read_text()).get("generator")
            except (ValueError, AttributeError):
                kind = None
            if kind != "vae":
                raise CheckpointError(f"{meta}: not a vae checkpoint (written by {kind or 'another generator'})")
        return super().load_artifact(directory, params, info)


def _label(data: bytes) -> str:
    return data.label if isinstance(data, FileContent) else FileContent(data).label


def read_image(data: bytes, key: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """An image file's bytes (an option's ``FileContent``: the reading of a path, if any, was done
    by the options, never here) as a CHW float tensor in [0, 1], refused unless it has the model's
    shape. The size is checked before the pixels are decoded, so a small file that claims a huge
    image costs nothing."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    where = f"{data.source}: " if isinstance(data, FileContent) and data.source else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is refused below, undecoded
            img = Image.open(io.BytesIO(data))
        with img:
            if img.mode not in ("L", "RGB"):
                raise ConfigError(key, f"{where}{img.mode} image; the model takes "
                                       f"{'grey (L)' if shape[0] == 1 else 'RGB'} images")
            got = (1 if img.mode == "L" else 3, img.height, img.width)
            if got != tuple(shape):
                raise ConfigError(key, f"{where}image of shape {'x'.join(map(str, got))}, but the model takes "
                                       f"{'x'.join(map(str, shape))} (C x H x W)")
            img.load()
            arr = np.asarray(img)
    except Image.DecompressionBombError:
        raise ConfigError(key, f"{where}an image of more pixels than PIL decodes; the model takes "
                               f"{'x'.join(map(str, shape))} (C x H x W)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):  # PIL's errors for a broken file
        raise ConfigError(key, f"{where}not a readable image") from None
    arr = arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1))
    return torch.from_numpy(arr.astype(np.float32) / 255.0)
