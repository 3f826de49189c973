"""Log-mel features and their inversion back to sound, all in torchaudio.

The model only ever sees log-mel spectrograms; turning one back into a waveform is a fixed,
parameter-free step (least-squares inverse of the mel filter bank, then Griffin-Lim phase
recovery, then optionally ``match_log_mel``), so the same settings must be used for analysis
and synthesis: they live here, once.
"""

from __future__ import annotations

import math

import torch
import torchaudio.transforms as T
from torch import nn

LOG_FLOOR = 1e-5  # power floor before the log: quieter than any real recording's noise
MATCH_LR = 1e-3  # Adam's step on the samples: larger overshoots in the quiet frames (docs/benchmarks.md)
WARMUP = 20


def match_log_mel(wave: torch.Tensor, log_mel: torch.Tensor, analyse, iters: int, lr: float = MATCH_LR) -> torch.Tensor:
    """``iters`` Adam steps on the samples of each clip, toward a clip whose own log-mel is ``log_mel``.

    Why: any inversion of a mel spectrogram (least squares and Griffin-Lim, or a small network)
    leaves a clip whose mel is not the one asked for: hiss in the pauses, smeared onsets. In the
    log domain those errors are large, and they are what a listener and a classifier hear as
    "re-synthesised". The analysis is differentiable, so the samples can be fitted to it directly.
    One clip at a time, so a clip's bytes do not depend on how a run is batched or sharded.
    """
    if iters <= 0 or len(wave) == 0:
        return wave
    out = []
    with torch.inference_mode(False), torch.enable_grad():  # generation may run under inference mode
        for i in range(len(wave)):
            target = log_mel[i:i + 1].clone()
            w = wave[i:i + 1].clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            for step in range(iters):
                # a linear warm-up: Adam's first steps are full-size whatever the gradient, and
                # full-size steps on every sample spray noise over the quiet bins
                opt.param_groups[0]["lr"] = lr * min(1.0, (step + 1) / WARMUP)
                loss = (analyse(w) - target).abs().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            out.append(w.detach())
    return torch.cat(out)


def default_n_fft(sample_rate: int) -> int:
    """About 64 ms of signal, a power of two: 512 at 8 kHz, 1024 at 16 kHz.

    Long enough that every one of 64 mel bands holds an FFT bin (the least-squares inverse needs
    a full-rank filter bank) and, with a quarter-window hop, few enough frames to train on a CPU.
    """
    return 2 ** int(round(math.log2(0.064 * sample_rate)))


class MelFeatures(nn.Module):
    def __init__(self, sample_rate: int, n_mels: int, n_fft: int, hop_length: int, griffin_lim_iters: int = 32,
                 mel_match_iters: int = 0):
        super().__init__()
        self.mel_match_iters = mel_match_iters
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                    n_mels=n_mels, power=2.0, center=True)
        rank = int(torch.linalg.matrix_rank(self.mel.mel_scale.fb))
        if rank < n_mels:
            raise ValueError(f"n_mels: {n_mels} mel bands over {n_fft // 2 + 1} FFT bins leave {n_mels - rank} "
                             f"without a bin of their own; lower n_mels or raise n_fft")
        self.inverse_mel = T.InverseMelScale(n_stft=n_fft // 2 + 1, n_mels=n_mels, sample_rate=sample_rate,
                                             driver="gels")
        # rand_init=False: phase starts from zero, so a spectrogram always inverts to the same bytes
        self.griffin_lim = T.GriffinLim(n_fft=n_fft, hop_length=hop_length, power=2.0,
                                        n_iter=griffin_lim_iters, rand_init=False)

    def frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames), natural log of mel power."""
        return torch.log(self.mel(wave) + LOG_FLOOR)

    @torch.no_grad()
    def invert(self, log_mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """(B, n_mels, frames) log-mel -> (B, num_samples) waveform."""
        power = (torch.exp(log_mel) - LOG_FLOOR).clamp_min(0.0)
        linear = self.inverse_mel(power).clamp_min(0.0)  # least squares can undershoot zero
        self.griffin_lim.length = num_samples
        return match_log_mel(self.griffin_lim(linear), log_mel, self.log_mel, self.mel_match_iters)
