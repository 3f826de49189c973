"""Offline scores for an audio generator, from a small classifier trained on clips it never saw.

Pretrained audio embeddings (VGGish, PANNs) need downloads and know nothing of spoken digits
at 8 kHz; a classifier trained on the data set's own clips is offline, fits any rate and class
set, and answers the question that matters for a conditional generator: does a clip asked to be
a "7" sound like a 7? It is trained on the **validation split**, which the generator never
learns from: a classifier trained on the generator's own training clips recognises what the
generator memorised and flatters it (issue 13: 84 % by the old metric, 57 % by an independent
classifier). Its penultimate layer is the embedding for the Fréchet distance. Scores are also
reported for real **test** clips, the floor a perfect generator would reach; the Fréchet
distances compare like with like: generated clips and one half of the test split against the
other half, the same number of clips on each side. The floor's real clips re-synthesised from
their own mels by the generator's vocoder (``resynthesis``) are the ceiling of any spectrogram
model with that vocoder: the part of the gap that is the vocoder's, not the model's. The classifier normalises each clip's
log-mel to zero mean and unit spread, so a loudness post-processor cannot move the scores.

``vocoder-fidelity`` measures the vocoder alone: held-out real clips re-synthesised from their
own mel spectrograms, compared with the originals (multi-resolution STFT distance and STOI),
for the generator's neural vocoder and for Griffin-Lim, in the same call.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torchaudio.transforms as T
from torch import nn

from aigc_core import ConfigError, MetricContext, Metric, cache_path, cached_model, data_identity, frechet_distance
from aigc_core import report_progress
from aigc_core import Field, Params

from .features import default_n_fft
from .mel_base import split_tensors


class AudioClassifierParams(Params):
    num_samples: int = Field(500, ge=10, description="at most this many clips on each side")
    embedding_dim: int = Field(64, ge=2, description="width of the classifier's embedding (the Fréchet space)")
    classifier_epochs: int = Field(12, ge=0, description="epochs of classifier training (cached per data set)")
    batch_size: int = Field(64, ge=1, description="batch size of classifier training and scoring")
    temperature: float = Field(1.0, description="passed to generate for the scored clips (generators with that option)")
    classifier_split: Literal["val", "train"] = Field("val", description="train the classifier here; \"train\" is the generator's own (flattering)")
    resynthesis: bool = Field(True, description=(
        "also score the floor's real clips re-synthesised from their own mels by the generator's vocoder: "
        "how much of the gap the vocoder alone leaves (spectrogram generators only)"))


class ClipClassifier(nn.Module):
    def __init__(self, sample_rate: int, num_classes: int, embedding_dim: int, n_mels: int = 64):
        super().__init__()
        n_fft = default_n_fft(sample_rate)
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels)
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(),
            nn.Linear(64 * 16, embedding_dim), nn.ReLU(),
        )
        self.head = nn.Linear(embedding_dim, max(num_classes, 1))

    def prepare(self, wave: torch.Tensor) -> torch.Tensor:
        mel = torch.log(self.mel(wave) + 1e-5)
        mean = mel.mean(dim=(1, 2), keepdim=True)
        std = mel.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
        return ((mel - mean) / std).unsqueeze(1)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(wave))

    @torch.no_grad()
    def predict(self, wave: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and predicted classes, in eval mode."""
        self.eval()
        feats, preds = [], []
        for chunk in torch.split(wave, batch_size):
            h = self.embed(chunk)
            feats.append(h)
            preds.append(self.head(h).argmax(1))
        return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def train_classifier(waves: torch.Tensor, labels: torch.Tensor, sample_rate: int, num_classes: int,
                     p: AudioClassifierParams, seed: int) -> ClipClassifier:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ClipClassifier(sample_rate, num_classes, p.embedding_dim)
    if num_classes < 2:
        return net  # nothing to learn: random features still compare distributions
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = max(1, p.classifier_epochs * math.ceil(len(labels) / p.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(p.classifier_epochs):
        order = torch.randperm(len(labels), generator=g)
        for idx in torch.split(order, p.batch_size):
            if len(idx) < 2:
                continue  # batch norm needs two clips
            wave = waves[idx]
            # a random shift of up to a tenth of the clip: onsets in generated clips drift too
            shift = int(torch.randint(-wave.shape[1] // 10, wave.shape[1] // 10 + 1, (1,), generator=g))
            wave = torch.roll(wave, shift, dims=1)
            loss = nn.functional.cross_entropy(net(wave), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            report_progress(sched.last_epoch, steps)  # the whole training: minutes on a CPU
    net.eval()
    return net


class AudioClassifierScore(Metric):
    Params = AudioClassifierParams

    def _classifier(self, ctx: MetricContext) -> ClipClassifier:
        """Trained on ``classifier_split`` once per data set and settings, cached (``aigc_core.cached_model``)."""
        source = ctx.data
        info = source.info
        path = cache_path(ctx.cache_dir, "audio-classifier", {
            **data_identity(source), "metric": {k: v for k, v in self.params.model_dump().items() if k != "temperature"},
            "info": {k: info[k] for k in ("sample_rate", "num_samples", "classes")}, "v": 2})

        def train() -> ClipClassifier:
            waves, labels = split_tensors(source.split(self.params.classifier_split))
            return train_classifier(waves, labels, info["sample_rate"], info["num_classes"], self.params, ctx.seed)

        net = cached_model(path, lambda: ClipClassifier(info["sample_rate"], info["num_classes"],
                                                        self.params.embedding_dim), train)
        return net.eval()

    def needs(self) -> dict[str, int]:
        """Half the test clips are scored against the other half, two a side at least; the
        classifier needs clips to learn from."""
        return {"test": 4, self.params.classifier_split: 2}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        self.require(ctx.data)
        info = ctx.data.info
        gen = ctx.generator
        gen_rate = int(getattr(gen, "sample_rate", 0) or gen.info.get("sample_rate", 0))
        if gen_rate != info["sample_rate"]:
            raise ConfigError("data.sample_rate", f"is {info['sample_rate']} Hz but the generator was trained "
                              f"at {gen_rate} Hz; score against data at the checkpoint's rate")
        net = self._classifier(ctx)
        test = ctx.data.split("test")
        half = len(test) // 2
        n = min(self.params.num_samples, half)
        # temperature is a VAE's option; a diffusion model has none and samples with its run's options
        extra = {"temperature": self.params.temperature} if "temperature" in gen.GenerateOptions.model_fields else {}
        generated = ctx.generate(n, seed=ctx.seed + 1, **extra)
        length = info["num_samples"]
        x_gen = torch.from_numpy(np.stack([_fit(np.asarray(i.data, np.float32), length) for i in generated.items]))
        asked = np.array([int(i.meta["label"]) for i in generated.items])
        feats_gen, pred_gen = net.predict(x_gen)
        test_waves, test_labels = split_tensors(test)
        feats_test, pred_test = net.predict(test_waves)
        # a fixed, label-balanced-by-chance halving of the test split: reference and floor sides
        order = torch.randperm(len(test_waves), generator=torch.Generator().manual_seed(ctx.seed)).numpy()
        reference, floor_side = order[:half][:n], order[half:2 * half][:n]
        acc_gen = float((pred_gen == asked).mean())
        acc_real = float((pred_test == test_labels.numpy()).mean())
        fd_gen = frechet_distance(feats_gen, feats_test[reference])
        fd_floor = frechet_distance(feats_test[floor_side], feats_test[reference])
        out = {
            "accuracy_generated": round(acc_gen, 4),
            "accuracy_real_floor": round(acc_real, 4),
            "accuracy_ratio_to_floor": round(acc_gen / acc_real, 4) if acc_real > 0 else float("inf"),
            "fd_generated": round(fd_gen, 4),
            "fd_real_floor": round(fd_floor, 4),
            "ratio_to_floor": round(fd_gen / fd_floor, 3) if fd_floor > 0 else float("inf"),
            "num_samples": n,
            "classifier_clips": len(split_tensors(ctx.data.split(self.params.classifier_split))[1]),
        }
        vocode, features = getattr(gen, "vocode", None), getattr(gen, "features", None)
        if self.params.resynthesis and callable(vocode) and features is not None:
            real = test_waves[floor_side]
            with torch.no_grad():
                feats_re, pred_re = net.predict(vocode(features.log_mel(real), real.shape[1]))
            truth = test_labels.numpy()[floor_side]
            acc_side = float((pred_test[floor_side] == truth).mean())
            fd_re = frechet_distance(feats_re, feats_test[reference])
            out.update({
                "accuracy_resynthesised": round(float((pred_re == truth).mean()), 4),
                "accuracy_resynthesised_ratio": round(float((pred_re == truth).mean()) / acc_side, 4) if acc_side else float("inf"),
                "fd_resynthesised": round(fd_re, 4),
                "resynthesised_ratio_to_floor": round(fd_re / fd_floor, 3) if fd_floor > 0 else float("inf"),
            })
        classes = [str(c) for c in (info.get("classes") or [])]
        for k in sorted(set(asked.tolist())):
            name = classes[k] if k < len(classes) else str(k)
            out[f"accuracy_generated_{name}"] = round(float((pred_gen[asked == k] == k).mean()), 4)
        return out


class VocoderFidelityParams(Params):
    num_clips: int = Field(100, ge=1, description="held-out clips re-synthesised (from the split below)")
    split: Literal["test", "val"] = Field("test", description="real clips neither the vocoder nor the generator trained on")
    stoi: bool = Field(True, description="also STOI (pystoi), over all clips joined end to end")


class VocoderFidelity(Metric):
    """Neural vocoder versus Griffin-Lim on the same held-out mels, with the same ruler."""

    Params = VocoderFidelityParams

    def needs(self) -> dict[str, int]:
        """Real clips to re-synthesise."""
        return {self.params.split: 1}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        from .stft_distance import stft_distance

        gen = ctx.generator
        features = getattr(gen, "features", None)
        if features is None or not hasattr(gen, "neural_vocoder"):
            raise ConfigError("metrics.vocoder-fidelity", f"needs a mel-spectrogram generator "
                              f"(mel-vae, mel-vocoder), not {type(gen).component_name or type(gen).__name__}")
        rate = int(ctx.data.info["sample_rate"])
        if rate != int(gen.sample_rate):
            raise ConfigError("data.sample_rate", f"is {rate} Hz but the generator was trained at {gen.sample_rate} Hz")
        self.require(ctx.data)
        waves, _ = split_tensors(ctx.data.split(self.params.split), limit=self.params.num_clips)
        with torch.no_grad():
            mel = features.log_mel(waves)
            candidates = {"griffin_lim": features.invert(mel, waves.shape[1])}
            net = gen.neural_vocoder()
            if net is not None:
                asked = getattr(gen.params, "mel_match_iters", None)  # the generator's, else the vocoder's
                match = net.mel_match_iters if asked is None else asked
                candidates = {"vocoder": net.vocode(mel, waves.shape[1], match), **candidates}
                if net.griffin_lim_iters or match:  # what the network alone makes, before any refinement
                    iters, net.griffin_lim_iters = net.griffin_lim_iters, 0
                    try:
                        candidates["vocoder_unrefined"] = net.vocode(mel, waves.shape[1], 0)
                    finally:
                        net.griffin_lim_iters = iters
            out: dict[str, float] = {}
            for name, wave in candidates.items():
                out[f"stft_distance_{name}"] = round(float(stft_distance(wave, waves, rate)), 4)
        if "vocoder" in candidates:
            out["ratio_vocoder_to_griffin_lim"] = round(out["stft_distance_vocoder"] / out["stft_distance_griffin_lim"], 4)
        if self.params.stoi:
            from pystoi import stoi

            clean = waves.numpy().reshape(-1).astype(np.float64)
            for name, wave in candidates.items():
                out[f"stoi_{name}"] = round(float(stoi(clean, wave.numpy().reshape(-1).astype(np.float64), rate)), 4)
        out["num_clips"] = len(waves)
        out["griffin_lim_iters"] = int(features.griffin_lim.n_iter)
        out["griffin_lim_mel_match_iters"] = int(features.mel_match_iters)
        if net is not None:
            out["vocoder_refinement_iters"] = int(net.griffin_lim_iters)
            out["vocoder_mel_match_iters"] = int(match)
        return out


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))
