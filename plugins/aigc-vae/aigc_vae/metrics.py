"""``vae-likelihood``: how well a trained vae explains held-out images, in nats per image.

* ``elbo`` -- the evidence lower bound with one posterior sample per image;
* ``nll`` -- importance-sampled negative log-likelihood with ``k`` samples (Burda et al., 2016),
  the figure published VAE results quote (k=200 in pythae's benchmark);
* ``recon_nll`` / ``recon_mse`` -- reconstruction error of the decoded posterior mean.

Images are prepared as the model trains on them (binarised once with a fixed seed for a
dynamically binarised model), so the numbers compare across runs and with published ones.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Optional

import torch

from aigc_core import AigcError, Metric, MetricContext
from aigc_core import Field, Params

from .likelihoods import log_prob, mean_image


class VAELikelihoodParams(Params):
    k: int = Field(200, ge=1, description="importance samples per image for the NLL")
    split: Literal["test", "val"] = Field("test", description="held-out split to score")
    num_images: Optional[int] = Field(None, ge=1, description="score at most this many held-out images (all by default)")
    batch_size: int = Field(256, ge=1, description="images scored together")


class VAELikelihood(Metric):
    Params = VAELikelihoodParams

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        model = ctx.generator
        if not hasattr(model, "log_likelihood") or not hasattr(model, "elbo_terms"):
            raise AigcError(f"metric vae-likelihood scores vae generators only, not {type(model).__name__}")
        p = self.params
        dataset = ctx.data.split(p.split)
        n = len(dataset) if p.num_images is None else min(p.num_images, len(dataset))
        if n < 1:
            raise AigcError(f"metric vae-likelihood: the {p.split} split is empty")
        g = torch.Generator().manual_seed(int(ctx.seed))
        sums = {"elbo": 0.0, "nll": 0.0, "nll_sq": 0.0, "kl": 0.0, "recon_nll": 0.0, "recon_mse": 0.0}
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        try:
            with torch.no_grad():
                for lo in range(0, n, p.batch_size):
                    idx = range(lo, min(n, lo + p.batch_size))
                    pairs = [dataset[i] for i in idx]
                    x = torch.stack([torch.as_tensor(a) for a, _ in pairs]).float()
                    y = torch.as_tensor([int(b) for _, b in pairs])
                    x = model.prepare(x, train=False, offset=lo).to(model.device)
                    rec, kl = model.elbo_terms(x, y, generator=g)
                    sums["elbo"] += float((rec - kl).sum())
                    sums["kl"] += float(kl.sum())
                    log_px = model.log_likelihood(x, y, k=p.k, generator=g)
                    sums["nll"] += float(-log_px.sum())
                    sums["nll_sq"] += float(log_px.square().sum())
                    mu, _ = model.encode(x, y)
                    out = model.decode_logits(mu, y)
                    sums["recon_nll"] += float(-log_prob(model.params.likelihood, out, x, model.log_std).sum())
                    mean = mean_image(model.params.likelihood, out)
                    sums["recon_mse"] += float((mean - x).square().flatten(1).mean(1).sum())
        finally:
            model.train(was_training)
        nll = sums["nll"] / n
        var = max(0.0, sums["nll_sq"] / n - nll * nll)
        return {
            "nll_nats": round(nll, 4),
            "nll_stderr": round(math.sqrt(var / n), 4),
            "elbo_nats": round(sums["elbo"] / n, 4),
            "kl_nats": round(sums["kl"] / n, 4),
            "recon_nll_nats": round(sums["recon_nll"] / n, 4),
            "recon_mse": round(sums["recon_mse"] / n, 6),
            "k": p.k,
            "num_images": n,
            "split": p.split,
            "seconds": round(time.perf_counter() - started, 2),
        }
