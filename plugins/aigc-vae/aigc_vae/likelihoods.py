"""Per-image log-likelihoods log p(x | z) of the decoder's output, summed over pixels, in nats.

The decoder emits one tensor per image, ``out``: logits for the Bernoulli and continuous
Bernoulli, pre-sigmoid means for the Gaussian. Keeping every likelihood on logits avoids
computing log(sigmoid) of saturated values.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LIKELIHOODS = ("bernoulli", "gaussian", "continuous-bernoulli")
_SMALL = 1e-3  # below this |logit| the closed forms lose precision; use their Taylor series


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019).

    With lambda = sigmoid(l), C = l / tanh(l / 2): an even function, 2 at l = 0.
    """
    a = logits.abs()
    safe = a.clamp(min=_SMALL)
    exact = torch.log(safe) - torch.log(torch.tanh(safe / 2))
    taylor = math.log(2.0) + a.square() / 12
    return torch.where(a < _SMALL, taylor, exact)


def cb_mean(logits: torch.Tensor) -> torch.Tensor:
    """The mean of a continuous Bernoulli: what an image from it looks like on average."""
    safe = torch.where(logits.abs() < _SMALL, torch.full_like(logits, _SMALL), logits)
    exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
    return torch.where(logits.abs() < _SMALL, 0.5 + logits / 12, exact).clamp(0.0, 1.0)


def log_prob(kind: str, out: torch.Tensor, x: torch.Tensor, log_std: torch.Tensor | None = None) -> torch.Tensor:
    if kind == "bernoulli":
        return bernoulli_log_prob(out, x)
    if kind == "continuous-bernoulli":
        return bernoulli_log_prob(out, x) + cb_log_norm(out).flatten(1).sum(1)
    if kind == "gaussian":
        mean = torch.sigmoid(out)
        log_std = log_std.expand_as(mean)
        z = (x - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    raise ValueError(f"unknown likelihood {kind!r}")


def mean_image(kind: str, out: torch.Tensor) -> torch.Tensor:
    """What the decoder expects the image to be, in [0, 1]."""
    if kind == "continuous-bernoulli":
        return cb_mean(out)
    return torch.sigmoid(out)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, in nats."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((z - mu).square() * torch.exp(-logvar) + logvar + math.log(2 * math.pi))).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (z.square() + math.log(2 * math.pi))).sum(-1)
