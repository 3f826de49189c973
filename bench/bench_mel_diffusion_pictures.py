"""Contact sheets of generated against real clips of one digit: a row of real held-out clips, then
a row per spectrogram-generator run (clips asked to be that digit, seed 0, the run's own
generation options plus any key=value given; generator.KEY=VALUE overrides the run's generator,
e.g. generator.vocoder=runs/vocoder-fsdd), one shared dB scale: what a person should look at
beside the classifier's figures.

    AIGC_DATA_DIR=../shared/data .venv/bin/python bench/bench_mel_diffusion_pictures.py OUT.png DIGIT N RUN_DIR [RUN_DIR ...] [key=value ...]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    import numpy as np
    from PIL import Image

    from aigc_audio.mel_base import split_tensors
    from aigc_core import Pipeline
    from aigc_core.generation.inference import generate_with
    from aigc_core.builtin.spectrograms import contact_sheet

    out, digit, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    runs = [a for a in sys.argv[4:] if "=" not in a]
    options = dict(a.split("=", 1) for a in sys.argv[4:] if "=" in a and not a.startswith("generator."))
    overrides = [a for a in sys.argv[4:] if a.startswith("generator.")]
    clips, titles = [], []
    for r, run_dir in enumerate(runs):
        pipe = Pipeline.from_run_dir(run_dir, overrides)
        gen = pipe.generator
        if r == 0:
            waves, labels = split_tensors(pipe.data_source().split("test"))
            real = waves[labels == (gen.classes.index(digit) if digit in gen.classes else int(digit))][:n]
            clips += [w.numpy().astype(np.float32) for w in real]
            titles += [f"real {digit} #{i}" for i in range(len(real))]
        given = pipe.generate_options
        opts = dict(given.model_dump() if hasattr(given, "model_dump") else given)
        opts.update({k: type(opts.get(k, v))(v) if opts.get(k) is not None else v for k, v in options.items()})
        opts = {k: v for k, v in opts.items() if k in gen.GenerateOptions.model_fields and k != "label"}
        content = generate_with(gen, n, seed=0, label=digit, **opts)
        clips += [np.asarray(i.data, np.float32) for i in content.items]
        titles += [f"{Path(run_dir).name} #{i}" for i in range(n)]
    image = contact_sheet(clips, gen.sample_rate, titles, f"digit {digit}: real held-out clips, then " + ", ".join(Path(r).name for r in runs), columns=n)
    Image.fromarray((image.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(out)
    print(out)


if __name__ == "__main__":
    main()
