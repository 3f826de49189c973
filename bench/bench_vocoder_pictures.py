"""Spectrograms of held-out clips, real / Griffin-Lim / a mel-vocoder run (refined and, when the
run refines, its network alone), one row per clip on one shared dB scale, with each clip's
STFT distance to the real one in its title: what a person should look at beside the figures.

    AIGC_DATA_DIR=../shared/data .venv/bin/python bench/bench_vocoder_pictures.py RUN_DIR OUT.png [N]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    import numpy as np
    import torch
    from PIL import Image

    from aigc_audio.model import split_tensors
    from aigc_audio.stft_distance import stft_distance
    from aigc_core import Pipeline
    from aigc_core.builtin.spectrograms import contact_sheet

    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    pipe = Pipeline.from_run_dir(run_dir)
    gen = pipe.generator
    waves, labels = split_tensors(pipe.data_source().split("test"), limit=n)
    net = gen.neural_vocoder()
    rate = gen.sample_rate
    with torch.no_grad():
        mel = gen.features.log_mel(waves)
        columns = {"real": waves, "Griffin-Lim": gen.features.invert(mel, waves.shape[1]),
                   f"vocoder ({net.griffin_lim_iters} GL iters)": net.vocode(mel, waves.shape[1])}
        if net.griffin_lim_iters:
            iters, net.griffin_lim_iters = net.griffin_lim_iters, 0
            columns["vocoder network alone"] = net.vocode(mel, waves.shape[1])
            net.griffin_lim_iters = iters
    clips, titles = [], []
    for i in range(len(waves)):
        for name, batch in columns.items():
            d = "" if name == "real" else f", d={float(stft_distance(batch[i:i + 1], waves[i:i + 1], rate)):.2f}"
            clips.append(batch[i].numpy().astype(np.float32))
            titles.append(f"digit {int(labels[i])}: {name}{d}")
    image = contact_sheet(clips, rate, titles, f"held-out clips, {run_dir.name}", columns=len(columns))
    Image.fromarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(out)  # (3, H, W) floats in [0, 1]
    print(out)


if __name__ == "__main__":
    main()
