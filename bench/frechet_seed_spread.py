"""How much a finished run's metrics move with the generation seed alone.

    OMP_NUM_THREADS=1 python bench/frechet_seed_spread.py RUN_DIR [--offsets 100,200] [override ...]

Metrics such as ``frechet`` draw their samples with one seed (``seed + 1``), so one score mixes the
model's quality with the luck of that draw. This re-scores the run's metrics with the generation
seed shifted by each offset (0 is the run's own draw), keeping the data split and the classifier,
and prints every score and the mean and spread per number. Overrides (``generate.guidance_scale=2``)
change the options the metrics sample with. Compare two runs offset by offset: the same offset gives
both the same starting noise and labels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. generate.num_inference_steps=25")
    parser.add_argument("--offsets", default="0,100,200,300,400", help="comma-separated shifts of the generation seed")
    args = parser.parse_args()

    import torch

    from aigc_core import Content, Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.from_run_dir(args.run_dir, args.overrides)
    inference = pipe.inference
    generate = inference.generate
    scores: dict[str, list[float]] = {}
    for offset in [int(o) for o in args.offsets.split(",")]:
        def shifted(n=None, seed=None, _offset=offset, **options):
            return generate(n, None if seed is None else seed + _offset, **options)

        inference.generate = shifted
        t0 = time.process_time()
        results = pipe.score(Content("image", []))
        flat = {f"{m}.{k}": v for m, values in results.items() for k, v in values.items() if isinstance(v, float)}
        for key, value in flat.items():
            scores.setdefault(key, []).append(value)
        print(f"offset {offset}: " + ", ".join(f"{k}={v:.4g}" for k, v in flat.items())
              + f" ({time.process_time() - t0:.1f} CPU-s)", flush=True)
    for key, values in scores.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{key}: mean {statistics.mean(values):.4g}, sd {spread:.3g}, min {min(values):.4g}, max {max(values):.4g}")


if __name__ == "__main__":
    main()
