"""Per-sample seeds.

Every generated sample draws its randomness from ``sample_seed(run_seed, index)`` alone, so a
sample is the same whether it is made alone, in a batch, or on another process of a sharded run.
"""

from __future__ import annotations

import hashlib

_MASK63 = (1 << 63) - 1


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` of a run seeded with ``seed`` (stable across versions)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def torch_generator(seed: int, index: int = 0, device: str = "cpu"):
    """A ``torch.Generator`` seeded for one sample."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(sample_seed(seed, index))
    return g


def sample_normal(n: int, width: int, seed: int, start: int = 0):
    """Rows ``start .. start+n-1`` of standard normal noise (``n x width``), row i drawn from
    ``sample_seed(seed, i)`` alone: batch size, ``n`` and sharding cannot change a sample's latent."""
    import torch

    out = torch.empty(n, width)
    g = torch.Generator()
    for i in range(n):
        g.manual_seed(sample_seed(seed, start + i))
        out[i] = torch.randn(width, generator=g)
    return out


#: Generation seeds (``generate.seed``, ``aigc generate --seed``, the server's ``seed``).
MAX_SEED = 2**63 - 1
#: The run's top-level ``seed``: Lightning's ``seed_everything`` takes 32 bits.
MAX_TRAIN_SEED = 2**32 - 1
