"""Per-sample seeds: a sample's randomness depends on (seed, index) alone."""

from __future__ import annotations

import torch

from aigc_core import sample_normal, sample_seed, torch_generator


def test_a_latent_row_is_the_same_alone_in_a_batch_or_in_a_shard():
    batch = sample_normal(6, 3, seed=7)
    assert batch.shape == (6, 3)
    assert torch.equal(sample_normal(2, 3, seed=7, start=4), batch[4:])
    assert torch.equal(batch[5], torch.randn(3, generator=torch_generator(7, 5)))
    assert not torch.equal(batch[0], batch[1]) and not torch.equal(sample_normal(1, 3, seed=8)[0], batch[0])
    assert sample_seed(7, 5) != sample_seed(5, 7)
