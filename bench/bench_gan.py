"""Training throughput of the DCGAN through aigc against a plain PyTorch loop of the same model.

Also the cost of checkpointing while training (``--checkpoint-cost``): the same aigc fit at the
default checkpoint interval against checkpointing off (only the final checkpoint), alternated,
with the throughput ratio and the share of training time that the checkpoints themselves took
(measured inside the run, so the machine's load does not blur it).

Both sides train the same networks (sizes from the same config) on the same tensors with the same
batch size, optimisers and losses, for the same number of epochs, alternating runs so machine
noise hits both. aigc's side is the whole `Pipeline.fit` (Lightning Trainer, logging, checkpoints,
artifact) with the data already loaded. Prints images/s for each and the ratio (goal >= 0.95).

    .venv/bin/python bench/bench_gan.py [--epochs 10] [--repeats 3] [--checkpoint-cost]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from aigc_core import Pipeline

CONFIG = {
    "name": "bench-gan",
    "seed": 0,
    "data": {"source": "sklearn-digits", "image_size": 32, "batch_size": 64},
    "generator": {"name": "dcgan", "size": "small", "conditional": True},
    # validation off: the plain loop has none, and this compares training throughput
    "train": {"accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 0, "log_every_n_steps": 10,
              "limit_val_batches": 0},
    "metrics": [],
}


CHECKPOINTS_OFF = ["train.checkpoint_every_n_epochs=0", "train.checkpoint_every_n_steps=0",
                   "train.checkpoint_every_minutes=0"]


def run_aigc(epochs: int, out: Path, overrides: tuple = ()) -> tuple[float, int]:
    seconds, images, _ = fit_aigc(epochs, out, overrides)
    return seconds, images


def fit_aigc(epochs: int, out: Path, overrides: tuple = ()) -> tuple[float, int, dict]:
    pipe = Pipeline.from_config({**CONFIG, "output": {"dir": str(out)}}, [f"train.max_epochs={epochs}", *overrides])
    images = len(pipe.data_source().split("train")) * epochs  # data loaded before the clock starts
    start = time.perf_counter()
    pipe.fit(restart=True)
    return time.perf_counter() - start, images, pipe.manifest()["training"]


def checkpoint_cost(epochs: int, repeats: int, tmp: Path) -> None:
    """Checkpointing at the defaults and at every epoch against none, alternated.

    Prints wall-clock throughput ratios and, robust to the machine's load, the share of training
    time spent inside the checkpoints (serialising, hashing, writing, fsync) measured in the run.
    """
    settings = {"off": CHECKPOINTS_OFF, "default": (), "every epoch": ("train.checkpoint_every_n_epochs=1",)}
    rates: dict = {name: [] for name in settings}
    shares: dict = {name: [] for name in settings}
    written: dict = {}
    for r in range(repeats):
        for name, overrides in settings.items():
            seconds, images, training = fit_aigc(epochs, tmp / f"ckpt-{r}-{name.replace(' ', '-')}", overrides)
            rates[name].append(images / seconds)
            shares[name].append(training["checkpoint_s"] / training["train_s"])
            written[name] = training["checkpoints_written"]
            print(f"repeat {r}: checkpoints {name}: {rates[name][-1]:.1f} img/s ({written[name]} written, "
                  f"{training['checkpoint_s']:.2f} s of {training['train_s']:.2f} s training)", flush=True)
    off = statistics.median(rates["off"])
    for name in ("default", "every epoch"):
        rate = statistics.median(rates[name])
        print(f"checkpoints {name} ({written[name]} in {epochs} epochs, the final one included): {rate:.1f} img/s "
              f"against {off:.1f} img/s with only the final one: ratio {rate / off:.3f}; time inside checkpoints "
              f"{100 * statistics.median(shares[name]):.1f}% of training (off: "
              f"{100 * statistics.median(shares['off']):.1f}%)")


def run_plain(epochs: int) -> tuple[float, int]:
    pipe = Pipeline.from_config({**CONFIG, "output": {"dir": "unused"}})
    source = pipe.data_source()
    torch.manual_seed(0)
    model = pipe.gen.cls(pipe.gen.params, source.info)  # same networks, used as plain modules
    p = pipe.gen.params
    G, D = model.G, model.D
    opt_g = torch.optim.Adam(G.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2))
    loader = torch.utils.data.DataLoader(source.split("train"), batch_size=64, shuffle=True)
    images = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x = x * 2 - 1
            n = x.shape[0]
            z = torch.randn(n, p.latent)
            fake = G(z, y)
            loss_d = F.binary_cross_entropy_with_logits(D(x, y), torch.ones(n)) + \
                F.binary_cross_entropy_with_logits(D(fake.detach(), y), torch.zeros(n))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(D(fake, y), torch.ones(n))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            with torch.no_grad():
                for e, q in zip(model.G_ema.parameters(), G.parameters()):
                    e.lerp_(q, 1 - p.ema_decay)
            images += n
    return time.perf_counter() - start, images


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-cost", action="store_true", help="measure checkpointing against none instead")
    args = parser.parse_args()
    aigc_rates, plain_rates = [], []
    if args.checkpoint_cost:
        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory() as tmp:
            fit_aigc(1, Path(tmp) / "warm-up")
            checkpoint_cost(args.epochs, args.repeats, Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_plain(1)  # warm-up: first-call kernel selection and imports
        for r in range(args.repeats):
            seconds, images = run_plain(args.epochs)
            plain_rates.append(images / seconds)
            seconds, images = run_aigc(args.epochs, Path(tmp) / f"run{r}")
            aigc_rates.append(images / seconds)
            print(f"repeat {r}: plain {plain_rates[-1]:.1f} img/s, aigc {aigc_rates[-1]:.1f} img/s")
    a, b = statistics.median(aigc_rates), statistics.median(plain_rates)
    print(f"aigc {a:.1f} img/s, plain PyTorch {b:.1f} img/s, ratio aigc/plain = {a / b:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
