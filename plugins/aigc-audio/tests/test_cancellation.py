"""Each audio generator stops at its next ``check_cancelled()`` once a server gave up on the
request (issue 29, item 3): between batches in mel-vae, between denoising steps in mel-diffusion,
between clips in the mel-vocoder. Untrained debug models suffice: what is tested is where the
checks are, not what the models make."""

from __future__ import annotations

import pytest

from aigc_core import Cancelled, cancellation, get_registry
from aigc_core.store.config import build_params
from aigc_core.testing import CancelAfter

from aigc_audio.diffusion import MelDiffusion
from aigc_audio.model import MelVAE
from aigc_audio.vocoder import MelVocoder
from aigc_core.testing import generate


@pytest.fixture(scope="module")
def notes():
    SynthNotes = get_registry().get("data_source", "synth-notes", "data.source").load()
    source = SynthNotes(build_params(SynthNotes.Params, {"limit": 16, "batch_size": 8, "duration": 0.25,
                                                        "sample_rate": 8000}, "data"), seed=0)
    source.setup("fit")
    return source


def _build(cls, notes, tmp_path, **params):
    return cls.build(build_params(cls.Params, {"size": "debug", **params}, "generator"), notes, tmp_path)


def _stops_at(generate, checks: int) -> int:
    token = CancelAfter(checks)
    with cancellation(token), pytest.raises(Cancelled):
        generate()
    return token.seen


def test_mel_vae_stops_between_batches(notes, tmp_path):
    gen = _build(MelVAE, notes, tmp_path, griffin_lim_iters=2)
    assert _stops_at(lambda: generate(gen, 6, seed=0, batch_size=2), 2) == 2  # three batches: stopped at the second
    assert len(generate(gen, 6, seed=0, batch_size=2).items) == 6  # no token: unaffected


def test_mel_diffusion_stops_between_denoising_steps(notes, tmp_path):
    gen = _build(MelDiffusion, notes, tmp_path, griffin_lim_iters=2)
    assert _stops_at(lambda: generate(gen, 2, seed=0, num_inference_steps=6, batch_size=2), 3) == 3  # of six


def test_mel_vocoder_stops_between_clips(notes, tmp_path):
    gen = _build(MelVocoder, notes, tmp_path, segment_frames=8)
    assert _stops_at(lambda: generate(gen, 4, seed=0, data_source=notes), 2) == 2  # at the second of four clips
    assert len(generate(gen, 4, seed=0, data_source=notes).items) == 4
