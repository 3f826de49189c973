"""Image quality per unit of compute: `aigc run`'s DCGAN against plain PyTorch loops.

Three trainings, each for the same CPU-time budget (``time.process_time`` of its own process,
one torch thread, so the machine's other load cannot favour a side), scored by the same metrics
(Fréchet distance, precision, recall, intra-class diversity, each with its real floor) against
held-out images in the same run:

* ``aigc``: the config's generator trained by `Pipeline.fit` (Lightning, logging, checkpoints,
  previews all included in its budget); a callback stops it when the budget is spent.
* ``plain``: the same generator and discriminator networks and the same algorithm (loss, R1,
  augmentation, EMA, learning rates) in a hand-written loop: what the framework costs.
* ``textbook``: the DCGAN paper's networks and optimiser (Radford et al. 2016: transposed convs
  with batch norm and ReLU, a strided-conv discriminator with LeakyReLU 0.2, Adam lr 2e-4,
  beta1 0.5, N(0, 0.02) init, z of 100 dims, unconditional): the reference a user would write.

    AIGC_DATA_DIR=../shared/data nice -n 10 .venv/bin/python bench/bench_gan_quality.py \\
        --config configs/gan-mnist.yaml --budget 300

Prints one line per side and the ratios (goals on MNIST, 300 s: Fréchet <= 0.5 x textbook,
recall >= 0.6 x its real floor). The sides run in parallel processes; each saves the 2,000 samples
the metrics would draw, and the main process scores them all against real features computed once
(generated vs the held-out val split, floor: MNIST's test file vs val; nobody trained on either).
``--deadline-min`` also stops every side after that many wall-clock minutes, for a loaded machine
where the CPU budget would not be reached in time: the CPU seconds each side got are printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

SIDES = ("aigc", "plain", "textbook")
_DEADLINE = float("inf")  # wall-clock time (time.time()) after which every side stops, spent or not


def spent(start: float, budget: float) -> bool:
    """A side's CPU-time budget is used up (or the run's wall-clock deadline has passed)."""
    return time.process_time() - start >= budget or time.time() >= _DEADLINE


def _pipeline(config: str, overrides: list[str], out: Path):
    from aigc_core import Pipeline

    return Pipeline.from_config(config, [*overrides, f"output.dir={out}", "train.progress_bar=false",
                                         "train.max_epochs=100000"])


class _Sampler:
    """A plain network behind the ``generate`` interface the metrics call."""

    training = False

    def __init__(self, net, latent: int, num_classes: int):
        self.net, self.latent, self.num_classes = net, latent, num_classes

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def generate(self, n, seed=0, **_):
        import numpy as np
        import torch

        from aigc_core import Content, Item

        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent, generator=g)
        y = torch.arange(n) % self.num_classes if self.num_classes else None
        self.net.eval()
        with torch.no_grad():
            x = torch.cat([self.net(zc, None if y is None else yc) for zc, yc in
                           zip(torch.split(z, 256), torch.split(y if y is not None else z, 256))])
        images = ((x + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
        return Content("image", [Item(images[i], {"index": i, **({"label": int(y[i])} if y is not None else {})})
                                 for i in range(n)])


def _classifier(pipe):
    """The metrics' own cached classifier (trained once, in the main process, before the sides start)."""
    import torch

    from aigc_core.contract.base import MetricContext
    from aigc_core.builtin.frechet import cached_classifier

    torch.set_num_threads(1)
    cache = Path(os.environ.get("AIGC_CACHE_DIR") or Path.home() / ".cache" / "aigc")
    part = next(p for p in pipe.metrics if p.name == "frechet")
    params = part.build().params
    return cached_classifier(MetricContext(None, pipe.data_source(), None, cache, pipe.seed), params)[0], params


def save_samples(pipe, generator, path: Path, n: int) -> None:
    """The samples the metrics would draw (``generated_images``: seed + 1, eval mode), kept for scoring."""
    import numpy as np

    from aigc_core import Content
    from aigc_core.contract.base import MetricContext
    from aigc_core.builtin.frechet import generated_images

    ctx = MetricContext(generator, pipe.data_source(), Content("image", []), Path("."), pipe.seed)
    x, y = generated_images(ctx, n)
    np.savez(path, images=x.numpy(), labels=(y.numpy() if y is not None else np.zeros(0, np.int64)))


def score_all(pipe, classifier, paths: dict[str, Path], k: int = 3) -> dict[str, dict]:
    """Every side scored the way the ``frechet`` and ``image-diversity`` metrics score a run, against
    real features computed once: generated vs the held-out val split, floor = MNIST test vs val."""
    import numpy as np
    import torch

    from aigc_core.builtin.frechet import tensors
    from aigc_core.builtin.image_diversity import _mean, intra_class_ratios, manifold_scores
    from aigc_core.helpers.frechet import frechet_distance

    net, params = classifier
    source = pipe.data_source()
    x_val, y_val = tensors(source.split("val"))
    x_test, y_test = tensors(source.split("test"))
    n = min(params.num_samples, len(x_val), len(x_test))
    f_val = torch.from_numpy(net.features(x_val[:n]))
    f_test = torch.from_numpy(net.features(x_test[:n]))
    y_val, y_test = y_val[:n], y_test[:n]
    floor = manifold_scores(f_val, f_test, k)
    floor_fd = frechet_distance(f_test.numpy(), f_val.numpy())
    floor_icd = _mean(intra_class_ratios(f_test, y_test, f_val, y_val).values())
    out = {}
    for side, path in paths.items():
        saved = np.load(path)
        f_gen = torch.from_numpy(net.features(torch.from_numpy(saved["images"][:n])))
        y_gen = torch.from_numpy(saved["labels"][:n]) if len(saved["labels"]) else None
        if y_gen is None:  # unconditional: the classes as the classifier sees them (as image-diversity does)
            with torch.no_grad():
                y_gen = net.head(f_gen).argmax(1)
        m = manifold_scores(f_val, f_gen, k)
        out[side] = {
            "fd_generated": round(frechet_distance(f_gen.numpy(), f_val.numpy()), 3),
            "fd_real_floor": round(floor_fd, 3),
            "precision": round(m["precision"], 4), "recall": round(m["recall"], 4),
            "recall_real_floor": round(floor["recall"], 4),
            "coverage": round(m["coverage"], 4), "coverage_real_floor": round(floor["coverage"], 4),
            "intra_class_diversity": round(_mean(intra_class_ratios(f_gen, y_gen, f_val, y_val).values()), 4),
            "intra_class_diversity_real_floor": round(floor_icd, 4),
            "num_samples": n,
        }
    return out


def train_aigc(pipe, budget: float) -> tuple[object, int]:
    import pytorch_lightning as pl

    import aigc_core.train.training as training

    class CPUBudget(pl.Callback):
        def on_train_start(self, trainer, module):
            self.start = time.process_time()

        def on_train_batch_end(self, trainer, *args):
            if spent(self.start, budget):
                trainer.should_stop = True

    real_trainer = training.pl.Trainer

    def trainer_with_budget(*args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), CPUBudget()]
        return real_trainer(*args, **kwargs)

    training.pl.Trainer = trainer_with_budget  # the bench's only change to the aigc path
    try:
        generator = pipe.fit(restart=True)
    finally:
        training.pl.Trainer = real_trainer
    # Lightning counts each of a GAN's two optimiser steps as a global step: report iterations
    steps = getattr(generator, "iteration", None)
    return generator, int(steps if steps is not None else pipe.manifest()["training"]["global_step"])


def train_plain(pipe, budget: float) -> tuple[object, int]:
    """The same networks and algorithm as aigc-gan's DCGAN, in a loop a user would write."""
    import torch

    torch.manual_seed(pipe.seed)
    source = pipe.data_source()
    model = pipe.gen.cls(pipe.gen.params, source.info)
    p = model.params
    G, D, ema = model.G, model.D, model.G_ema
    opt_g = torch.optim.Adam(G.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2))
    loader = torch.utils.data.DataLoader(source.split("train"), batch_size=source.params.batch_size, shuffle=True)
    steps, start = 0, time.process_time()
    while not spent(start, budget):
        for x, y in loader:
            x = x * 2 - 1
            y = y if model.num_classes else None
            fake = G(torch.randn(x.shape[0], p.latent), y)
            r1 = p.r1_gamma > 0 and steps % p.r1_every == 0
            xr = x.requires_grad_(True) if r1 else x
            d_real = D(model.d_view(xr), y)
            loss_d = model.d_loss(d_real, D(model.d_view(fake.detach()), y))
            if r1:
                (grad,) = torch.autograd.grad(d_real.sum(), xr, create_graph=True)
                loss_d = loss_d + 0.5 * p.r1_gamma * p.r1_every * grad.pow(2).flatten(1).sum(1).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = model.g_loss(D(model.d_view(fake), y))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            steps += 1
            if ema is not None:
                with torch.no_grad():
                    decay = min(p.ema_decay, steps / (steps + 9))
                    for e, q in zip(ema.parameters(), G.parameters()):
                        e.lerp_(q, 1 - decay)
                    for e, q in zip(ema.buffers(), G.buffers()):
                        e.copy_(q)
            if spent(start, budget):
                break
    return model, steps


def textbook_nets(channels: int, size: int, nz: int = 100, ngf: int = 64, ndf: int = 64):
    """The DCGAN paper's architecture, scaled to ``size`` (32: three up/down-sampling stages)."""
    from torch import nn

    levels = {16: 2, 32: 3, 64: 4}[size]
    g_layers = [nn.ConvTranspose2d(nz, ngf * 2 ** (levels - 1), 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 2 ** (levels - 1)), nn.ReLU(True)]
    for i in range(levels - 1, 0, -1):
        g_layers += [nn.ConvTranspose2d(ngf * 2 ** i, ngf * 2 ** (i - 1), 4, 2, 1, bias=False),
                     nn.BatchNorm2d(ngf * 2 ** (i - 1)), nn.ReLU(True)]
    g_layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh()]
    d_layers = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for i in range(levels - 1):
        d_layers += [nn.Conv2d(ndf * 2 ** i, ndf * 2 ** (i + 1), 4, 2, 1, bias=False),
                     nn.BatchNorm2d(ndf * 2 ** (i + 1)), nn.LeakyReLU(0.2, True)]
    d_layers += [nn.Conv2d(ndf * 2 ** (levels - 1), 1, 4, 1, 0, bias=False), nn.Flatten()]

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(*g_layers)

        def forward(self, z, y=None):
            return self.net(z[:, :, None, None])

    def init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    g, d = G(), nn.Sequential(*d_layers)
    g.apply(init), d.apply(init)
    return g, d


def train_textbook(pipe, budget: float) -> tuple[object, int]:
    import torch
    from torch.nn import functional as F

    torch.manual_seed(pipe.seed)
    source = pipe.data_source()
    channels, size, _ = source.info["shape"]
    G, D = textbook_nets(channels, size)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(source.split("train"), batch_size=128, shuffle=True)
    steps, start = 0, time.process_time()
    while not spent(start, budget):
        for x, _ in loader:
            x = x * 2 - 1
            n = x.shape[0]
            fake = G(torch.randn(n, 100))
            loss_d = F.binary_cross_entropy_with_logits(D(x).squeeze(1), torch.ones(n)) + \
                F.binary_cross_entropy_with_logits(D(fake.detach()).squeeze(1), torch.zeros(n))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(D(fake).squeeze(1), torch.ones(n))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            steps += 1
            if spent(start, budget):
                break
    return _Sampler(G, 100, 0), steps


def run_side(side: str, config: str, overrides: list[str], budget: float, out: str, num_samples: int,
             deadline: float, queue) -> None:
    from aigc_core.generation.inference import generate_with
    import torch

    torch.set_num_threads(1)
    global _DEADLINE
    _DEADLINE = deadline
    pipe = _pipeline(config, overrides, Path(out) / side)
    pipe.data_source()  # loading the data is not training
    cpu0, wall0 = time.process_time(), time.perf_counter()
    generator, steps = {"aigc": train_aigc, "plain": train_plain, "textbook": train_textbook}[side](pipe, budget)
    result = {"side": side, "steps": steps, "train_cpu_s": round(time.process_time() - cpu0, 1),
              "train_wall_s": round(time.perf_counter() - wall0, 1)}
    save_samples(pipe, generator, Path(out) / f"{side}_samples.npz", num_samples)
    from aigc_core.helpers.imaging import make_grid, to_uint8_hwc
    from PIL import Image

    items = generate_with(generator, 100, seed=1).items
    Image.fromarray(to_uint8_hwc(make_grid([i.data for i in items], nrow=10, padding=2)).squeeze()).save(
        Path(out) / f"{side}_grid.png")
    queue.put(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/gan-mnist.yaml")
    parser.add_argument("--budget", type=float, default=300.0, help="CPU seconds of training per side")
    parser.add_argument("--deadline-min", type=float, default=0.0,
                        help="also stop every side this many wall-clock minutes after the start (0: none); "
                             "the CPU seconds each side got are printed")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--out", default=None, help="keep runs, samples and grids here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="config overrides for the aigc and plain sides")
    args = parser.parse_args()
    sides = [s for s in args.sides.split(",") if s]
    deadline = time.time() + 60 * args.deadline_min if args.deadline_min > 0 else float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        pipe = _pipeline(args.config, args.overrides, out / "classifier")
        classifier = _classifier(pipe)  # trained here once (or read from the cache) before the sides share it
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=run_side, args=(s, args.config, args.overrides, args.budget, str(out),
                                                    classifier[1].num_samples, deadline, queue)) for s in sides]
        for p in procs:
            p.start()
        results = {}
        for _ in procs:
            r = queue.get()
            results[r["side"]] = r
        for p in procs:
            p.join()
        for side, scores in score_all(pipe, classifier, {s: out / f"{s}_samples.npz" for s in sides}).items():
            results[side].update(scores)
    load = os.getloadavg()
    print(f"budget: {args.budget:g} s of CPU time (time.process_time) per side, 1 torch thread each, "
          f"sides in parallel; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} cores")
    keys = ("steps", "train_cpu_s", "train_wall_s", "fd_generated", "fd_real_floor", "precision", "recall",
            "recall_real_floor", "coverage", "intra_class_diversity", "intra_class_diversity_real_floor")
    for side in sides:
        r = results[side]
        print(f"{side:9s} " + " ".join(f"{k}={r.get(k)}" for k in keys))
    for side in sides:
        r = results[side]
        print(f"{side:9s} Frechet / real floor = {r['fd_generated'] / r['fd_real_floor']:.2f}; "
              f"recall / real floor = {r['recall'] / r['recall_real_floor']:.3f}")
    if "aigc" in results and "textbook" in results:
        a, t = results["aigc"], results["textbook"]
        print(f"Frechet aigc / textbook = {a['fd_generated'] / t['fd_generated']:.3f} (goal <= 0.5); "
              f"recall aigc / real floor = {a['recall'] / a['recall_real_floor']:.3f} (goal >= 0.6)")
    if "aigc" in results and "plain" in results:
        a, p = results["aigc"], results["plain"]
        print(f"Frechet aigc / plain same-networks loop = {a['fd_generated'] / p['fd_generated']:.3f}; "
              f"steps aigc / plain = {a['steps'] / max(p['steps'], 1):.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
