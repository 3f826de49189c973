"""Where a mel-vae run loses class fidelity: vocoder, reconstruction, or prior samples.

For a finished run, with the same classifier the audio-classifier metric uses (from the cache,
or trained), prints the accuracy on real held-out clips passed through the vocoder alone
(log-mel -> InverseMelScale -> Griffin-Lim), on their VAE reconstructions, and on samples
from the prior at several temperatures. The vocoder-only figure is the reference measured in
the same run: samples cannot be expected to beat it.

    AIGC_DATA_DIR=../shared/data .venv/bin/python bench/bench_audio_diagnose.py RUN_DIR [T ...]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    from aigc_core.generation.inference import generate_with
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    import numpy as np
    import torch

    from aigc_audio.metrics import AudioClassifierScore
    from aigc_core import MetricContext, Pipeline

    run_dir = Path(sys.argv[1])
    temperatures = [float(t) for t in sys.argv[2:]] or [0.0, 0.7, 1.0]
    pipe = Pipeline.from_run_dir(run_dir)
    source = pipe.data_source()
    metric = next((p for p in pipe.metrics if p.name == "audio-classifier"), None)
    scorer = metric.build() if metric else AudioClassifierScore()
    cache = Path(os.environ.get("AIGC_CACHE_DIR") or Path.home() / ".cache" / "aigc")
    net = scorer._classifier(MetricContext(pipe.generator, source, None, cache, pipe.seed))
    gen = pipe.generator
    test = source.split("test")
    n = min(200, len(test))
    waves, labels = test.waves[:n], test.labels[:n]
    with torch.no_grad():
        x = gen.encode_input(waves)
        mu, _ = gen.encoder(x, labels)
        checks = {"real clips": waves, "vocoder only": gen.to_wave(x),
                  "reconstructions": gen.to_wave(gen.decoder(mu, labels))}
    for name, w in checks.items():
        print(f"{name:>16}: accuracy {(net.predict(w)[1] == labels.numpy()).mean():.3f}  (n={n})")
    for t in temperatures:
        content = generate_with(gen, n, seed=pipe.seed + 1, temperature=t)
        w = torch.from_numpy(np.stack([i.data for i in content.items]))
        asked = np.array([i.meta["label"] for i in content.items])
        print(f"prior, T={t:<5g}: accuracy {(net.predict(w)[1] == asked).mean():.3f}  (n={n})")


if __name__ == "__main__":
    main()
