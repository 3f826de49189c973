"""Personalisation side by side: the base, from scratch, full fine-tuning and a LoRA adapter, in one run.

    AIGC_DATA_DIR=../shared/data nice -n 10 python bench/bench_personalise.py --case digits --base runs/gan-mnist
    ... --case voice --base runs/voice-4spk
    ... --case text --base runs/text-shakespeare

Each case is one of the personalisation configs (``configs/personalise-{digits,voice,text}.yaml``):
a trained base and a few examples of a target it never saw. Four models are compared on target
data the adaptation never read, in the same process, so the ratios printed at the end are not
at the mercy of another day's load:

- ``base``: the base as it is (the adapter run's generator with its adapter off, which is checked
  to give the base run's own bytes);
- ``scratch``: the base's architecture trained from nothing on the same examples, for the CPU time
  the adapter took (what a user without a base could do with the same budget);
- ``full``: the base with every weight trained (``generator.adapter: null``), the same steps;
- ``adapter``: the config as written (LoRA on the frozen base).

Training budgets are CPU time (``time.process_time`` from before the data is read to the end of
``fit``, one torch thread), not wall time, because the machine is shared: ``--budget-cpu-min``
caps every arm (the issue's target for an adaptation is 3 CPU-minutes), the config's
``max_steps`` ends the adapter and full fine-tuning earlier if it comes first, and from-scratch
training gets exactly the adapter's CPU time. The config's own ``max_minutes`` (wall time) is
dropped for that reason.

Quality, each on held-out target data:

- digits: Fréchet distance to scikit-learn digits the adaptation never read (every image but its
  100, matched by content), in the feature space of the image ``frechet`` metric's classifier
  (``aigc_core.builtin.frechet``) trained on a third of those held-out digits; the distance
  between the other two thirds is the real floor. The adaptation's training images themselves,
  repeated to as many, are scored too: what a model that copied its examples perfectly would
  reach, which a model that only learnt the examples cannot beat.
- voice: a speaker classifier and a digit classifier (the ``audio-classifier`` metric's network)
  trained on real clips of all five speakers, none of the 50 the adaptation read; the share of
  generated clips assigned to the target speaker, and the share whose asked digit is recognised,
  against the same classifiers on held-out real clips of that speaker (the floors).
- text: held-out cross-entropy per character (``aigc_text.metrics.held_out_loss``: per character,
  so models with different tokenizers compare) on Python documentation topics after the ones
  the adaptation read.

The distance ratios (lower is better: Fréchet distance; 1 - target-speaker share; nats per
character) answer the issue's targets: adapter within 10% of full fine-tuning, at least 2x closer
than from scratch. For voice the 10% target is read on the share itself (adapter share >= 0.9x
the full fine-tune's). Cost: adapter tensors against the base model's, adaptation CPU time, and
the base's bytes with the adapter off. Grids, spectrogram sheets and text samples of every arm
go to ``--out``: look at them.

A lever is tried with ``--set KEY=VALUE`` (the case's config changed for every arm, e.g.
``--set generator.lr_g=0.002``), ``--steps`` (adapter and full fine-tuning) and ``--arms adapter``
(the adapter alone against the base, for a quick look). Lightning, peft and the backend's training
module are imported before the first arm's clock starts, so the first does not pay for them.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("adapter", "full", "scratch")  # trained, in this order: scratch needs the adapter's CPU time
SHOWN = ("base", "scratch", "full", "adapter")
CASES = {
    "digits": {"config": "configs/personalise-digits.yaml", "base": "runs/gan-mnist"},
    "voice": {"config": "configs/personalise-voice.yaml", "base": "runs/voice-4spk"},
    "text": {"config": "configs/personalise-text.yaml", "base": "runs/text-shakespeare"},
}


# -- training ---------------------------------------------------------------------------------------
def cpu_budget(seconds: float, start: float):
    """A Lightning callback that stops training once this process has spent ``seconds`` of CPU
    time since ``start`` (``time.process_time``); checked after every batch."""
    from pytorch_lightning.callbacks import Callback

    class CpuBudget(Callback):
        def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
            if time.process_time() - start >= seconds:
                trainer.should_stop = True

    return CpuBudget()


def warm_up(generator: str) -> None:
    """Import what training imports (Lightning, peft, the backend's training module) before the
    first arm is timed: the first would otherwise pay seconds of imports the others do not."""
    import importlib

    import peft  # noqa: F401
    import pytorch_lightning  # noqa: F401

    from aigc_core import get_registry
    from aigc_core.train import training  # noqa: F401

    target = get_registry().get("generator", generator, "generator.name").load().training
    if isinstance(target, str):
        importlib.import_module(target.partition(":")[0])


def load_yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def arm_config(config: dict, arm: str, base: Path, out: Path, steps: int | None) -> dict:
    """The case's config for one arm: the base named absolutely, no wall-time budget, no metrics
    (scored here, on data the config's own splits do not hold)."""
    raw = copy.deepcopy(config)
    raw["name"] = f"{config['name']}-{arm}"
    raw["output"] = {"dir": str(out / arm)}
    raw["metrics"] = []
    train = raw.setdefault("train", {})
    for key in ("max_minutes", "max_time"):
        train.pop(key, None)
    train.update(progress_bar=False, sample_every_n_epochs=0)
    if steps is not None:
        train["max_steps"] = steps
    gen = raw["generator"]
    if arm == "scratch":
        # the base's architecture and settings, with what the case's config changes, and no weights
        inherited = dict(load_yaml(base / "config.yaml")["generator"])
        inherited.update({k: v for k, v in gen.items() if k not in ("base", "adapter")})
        raw["generator"] = inherited
        train.update(max_steps=-1, max_epochs=1_000_000)  # the CPU budget alone ends it
    else:
        gen["base"] = str(base)
        if arm == "full":
            gen["adapter"] = None
    return raw


def train_arm(config: dict, budget_s: float) -> tuple:
    """(pipeline, CPU seconds, optimiser steps) of one arm trained under ``budget_s`` CPU seconds."""
    from aigc_core import Pipeline

    pipe = Pipeline.from_config(config)
    start = time.process_time()
    pipe.fit(restart=True, callbacks=[cpu_budget(budget_s, start)])
    spent = time.process_time() - start
    return pipe, spent, pipe.manifest().get("training", {}).get("global_step")


# -- shared helpers ---------------------------------------------------------------------------------
def digest_rows(data) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(row.numpy()).tobytes()).hexdigest() for row in data]


def fingerprint(data) -> str:
    """One hash of a tensor's rows: the scoring classifiers are cached under what they trained on."""
    return hashlib.sha256("".join(digest_rows(data)).encode()).hexdigest()


def read_by_adaptation(source) -> set[str]:
    """Content hashes of everything the adaptation's data source read (every split)."""
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        seen.update(digest_rows(source.split(split).data))
    return seen


def thirds(n: int, seed: int) -> tuple:
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = n // 3
    return order[:n - 2 * k], order[n - 2 * k:n - k], order[n - k:]


def item_bytes(content) -> list[bytes]:
    return [item.data.encode() if isinstance(item.data, str) else np.ascontiguousarray(item.data).tobytes()
            for item in content.items]


def parameter_share(base_run, adapter_pipe) -> tuple[int, int]:
    """(adapter tensors, base model tensors), both counted in what the runs save for sampling."""
    from aigc_core.generation.adapters import adapter_state, parameter_count

    base = parameter_count(base_run.generator.artifact_state())
    return parameter_count(adapter_state(adapter_pipe.generator)), base


def same_bytes(base_run, adapter_run, n: int, **options) -> tuple[bool, bool]:
    """(base bytes with the adapter off == the base run's own, adapter on differs from them)."""
    from aigc_core.generation.adapters import disabled

    options = adapter_run.inference.options(options).model_dump()  # the case's generate options, for the base run too
    own = item_bytes(base_run.generate(n, seed=7, **options))
    with disabled(adapter_run.generator):
        off = item_bytes(adapter_run.generate(n, seed=7, **options))
    on = item_bytes(adapter_run.generate(n, seed=7, **options))
    return off == own, on != own


# -- digits -----------------------------------------------------------------------------------------
def score_digits(arms: dict, adapt_source, args, out: Path) -> dict:
    import torch

    from aigc_core import Pipeline, cache_path, cached_model, make_grid, png_bytes
    from aigc_core.builtin.frechet import ClassifierParams, FeatureNet, train_classifier
    from aigc_core.helpers.frechet import frechet_distance

    params = adapt_source.params
    everything = Pipeline.from_config({"name": "all-digits", "data": {
        "source": "sklearn-digits", "image_size": params.image_size, "val_fraction": 0.0, "test_fraction": 0.0},
        "generator": {"name": "dcgan"}}).data_source().split("train")
    seen = read_by_adaptation(adapt_source)
    keep = torch.tensor([h not in seen for h in digest_rows(everything.data)])
    x, y = everything.data[keep], everything.labels[keep]
    fit_idx, ref_idx, floor_idx = thirds(len(y), args.seed)
    p = ClassifierParams(classifier_epochs=args.classifier_epochs)
    path = cache_path(out.parent / "cache", "bench-personalise-digits", {
        "images": fingerprint(x[fit_idx]), "classifier": p.model_dump(), "seed": args.seed})
    net = cached_model(path, lambda: FeatureNet(1, 10, p.feature_dim),
                       lambda: train_classifier(x[fit_idx], y[fit_idx], 10, p, args.seed)).eval()
    with torch.no_grad():
        accuracy = float((net(x[floor_idx]).argmax(1) == y[floor_idx]).float().mean())
    ref = net.features(x[ref_idx])
    n = min(len(ref_idx), len(floor_idx), args.samples)
    rows = {"floor": {"fd": frechet_distance(net.features(x[floor_idx][:n]), ref[:n])}}
    # what a model that copies its examples perfectly would score: the training images, repeated
    examples = adapt_source.split("train").data
    copies = examples.repeat((n + len(examples) - 1) // len(examples), 1, 1, 1)[:n]
    rows["examples"] = {"fd": frechet_distance(net.features(copies), ref[:n])}
    print(f"held out: {len(y)} digits the adaptation never read ({len(seen)} it did); classifier on "
          f"{len(fit_idx)}, accuracy {accuracy:.3f} on {len(floor_idx)} others; Fréchet on {n} a side", flush=True)
    for arm, (inference, scope) in arms.items():
        with scope():
            content = inference.generate(n, seed=args.seed + 1)
        images = torch.from_numpy(np.stack([np.asarray(i.data, np.float32) for i in content.items]))
        rows[arm] = {"fd": frechet_distance(net.features(images), ref[:n])}
        grid = make_grid([np.asarray(i.data) for i in content.items[:100]], nrow=10)
        (out / f"grid-{arm}.png").write_bytes(png_bytes(grid))
    real = make_grid([x[floor_idx][i].numpy() for i in range(100)], nrow=10)
    (out / "grid-real-held-out.png").write_bytes(png_bytes(real))
    return {arm: {"distance": r["fd"], "fd": round(r["fd"], 3)} for arm, r in rows.items()}


# -- voice ------------------------------------------------------------------------------------------
def score_voice(arms: dict, adapt_source, args, out: Path) -> dict:
    import torch

    from aigc_audio.metrics import AudioClassifierParams, ClipClassifier, train_classifier
    from aigc_core import Content, Pipeline, cache_path, cached_model, png_bytes
    from aigc_core.builtin.spectrograms import contact_sheet

    p = adapt_source.params
    # every clip of every speaker, labelled "<digit>_<speaker>"; what the adaptation read is taken out
    everything_source = Pipeline.from_config({"name": "all-voices", "data": {
        "source": "audio-folder", "path": p.path, "labels": "pattern", "label_pattern": r"^(?P<label>\d_[a-z]+)_",
        "sample_rate": p.sample_rate, "duration": p.duration, "peak_normalise": p.peak_normalise,
        "val_fraction": 0.0, "test_fraction": 0.0}, "generator": {"name": "mel-diffusion"}}).data_source()
    everything = everything_source.split("train")
    names = [everything_source.classes[int(k)] for k in everything.labels]
    digit = torch.tensor([int(name.split("_")[0]) for name in names])
    speakers = sorted({name.split("_", 1)[1] for name in names})
    speaker = torch.tensor([speakers.index(name.split("_", 1)[1]) for name in names])
    seen = read_by_adaptation(adapt_source)
    unseen = torch.tensor([h not in seen for h in digest_rows(everything.data)])
    # the target: the speaker of the clips the adaptation read
    (target,) = {name.split("_", 1)[1] for name, new in zip(names, unseen.tolist()) if not new}
    # per speaker: half of its unseen clips train the classifiers, the other half measure the floors
    g = torch.Generator().manual_seed(args.seed)
    fit_idx, test_idx = [], []
    for s in range(len(speakers)):
        mine = torch.nonzero(unseen & (speaker == s)).flatten()
        mine = mine[torch.randperm(len(mine), generator=g)]
        fit_idx.append(mine[: len(mine) // 2])
        test_idx.append(mine[len(mine) // 2:])
    fit_idx, test_idx = torch.cat(fit_idx), torch.cat(test_idx)
    waves = everything.data
    theo = speakers.index(target)
    cp = AudioClassifierParams(classifier_epochs=args.classifier_epochs)
    rate = p.sample_rate
    nets = {}
    for what, labels, k in (("speaker", speaker, len(speakers)), ("digit", digit, 10)):
        path = cache_path(out.parent / "cache", "bench-personalise-voice", {
            "what": what, "clips": fingerprint(waves[fit_idx]),
            "epochs": cp.classifier_epochs, "seed": args.seed})
        nets[what] = cached_model(path, lambda k=k: ClipClassifier(rate, k, cp.embedding_dim),
                                  lambda labels=labels, k=k: train_classifier(waves[fit_idx], labels[fit_idx], rate, k,
                                                                              cp, args.seed)).eval()
    held = test_idx[speaker[test_idx] == theo]
    _, pred_spk = nets["speaker"].predict(waves[test_idx])
    _, pred_theo = nets["speaker"].predict(waves[held])
    _, pred_dig = nets["digit"].predict(waves[held])
    rows = {"floor": {"share": float((pred_theo == theo).mean()), "digit": float((pred_dig == digit[held].numpy()).mean())}}
    print(f"classifiers on {len(fit_idx)} real clips of {', '.join(speakers)} (none the adaptation read); "
          f"speaker accuracy {float((pred_spk == speaker[test_idx].numpy()).mean()):.3f} on {len(test_idx)} others; "
          f"on {len(held)} held-out {target} clips: {rows['floor']['share']:.3f} his, digit {rows['floor']['digit']:.3f}",
          flush=True)
    n = args.samples
    for arm, (inference, scope) in arms.items():
        t0 = time.process_time()
        with scope():
            content = inference.generate(n, seed=args.seed + 1)
        clips = torch.from_numpy(np.stack([_fit(np.asarray(i.data, np.float32), waves.shape[1]) for i in content.items]))
        asked = np.array([int(i.meta["label"]) for i in content.items])
        _, who = nets["speaker"].predict(clips)
        _, said = nets["digit"].predict(clips)
        rows[arm] = {"share": float((who == theo).mean()), "digit": float((said == asked).mean())}
        print(f"  {arm}: {n} clips in {(time.process_time() - t0) / 60:.2f} CPU-min; speakers "
              + ", ".join(f"{s} {float((who == i).mean()):.2f}" for i, s in enumerate(speakers)), flush=True)
        first = range(min(10, len(asked)))
        sheet = contact_sheet([clips[i].numpy() for i in first], rate, [f"asked {asked[i]}, heard {said[i]}, "
                                                                        f"{speakers[who[i]]}" for i in first],
                              f"{arm}: generated clips", columns=5)
        (out / f"spectrograms-{arm}.png").write_bytes(png_bytes(sheet))
        inference.export(Content(content.modality, content.items[:10]), out / f"wav-{arm}")
    real = [int(i) for i in held[:10]]
    sheet = contact_sheet([waves[i].numpy() for i in real], rate, [f"real {digit[i]}" for i in real],
                          f"held-out {target} (real)", columns=5)
    (out / "spectrograms-real-held-out.png").write_bytes(png_bytes(sheet))
    floor_digit = rows["floor"]["digit"]
    return {arm: {"distance": 1.0 - r["share"], "target_share": round(r["share"], 3), "digit": round(r["digit"], 3),
                  "digit_vs_floor": round(r["digit"] / floor_digit, 3) if floor_digit else float("nan")}
            for arm, r in rows.items()}


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))


# -- text -------------------------------------------------------------------------------------------
def score_text(arms: dict, adapt_source, args, out: Path) -> dict:
    from aigc_core import Pipeline
    from aigc_text.metrics import held_out_loss

    p = adapt_source.params
    if p.limit is None:
        sys.exit("bench_personalise: the text case needs data.limit (the topics after it are held out)")
    topics = Pipeline.from_config({"name": "all-topics", "data": {"source": "python-docs", "val_fraction": 0.0},
                                   "generator": {"name": "causal-lm"}}).data_source().documents()
    docs, left = [], args.text_chars
    for doc in [d for d in topics if d][p.limit:]:
        if left <= 0:
            break
        docs.append(doc[:left])
        left -= len(docs[-1])
    read = "".join(adapt_source.split(s).text for s in ("train", "val", "test"))
    print(f"held out: {sum(map(len, docs))} characters of {len(docs)} Python documentation topics after the "
          f"{p.limit} the adaptation's data comes from ({len(read)} characters read)", flush=True)
    rows = {}
    for arm, (inference, scope) in arms.items():
        with scope():
            loss = held_out_loss(inference.generator, docs)
            content = inference.generate(args.text_samples, seed=args.seed + 1)
        rows[arm] = {"distance": loss["nats_per_char"], "nats_per_char": round(loss["nats_per_char"], 4),
                     "nll_per_token": round(loss["nll_per_token"], 4)}
        text = "\n\n----\n\n".join(str(i.data) for i in content.items)
        (out / f"samples-{arm}.txt").write_text(text)
        print(f"  {arm}: {loss['nats_per_char']:.3f} nats/char; sample: {str(content.items[0].data)[:160]!r}",
              flush=True)
    return rows


SCORERS = {"digits": score_digits, "voice": score_voice, "text": score_text}
CHECK_OPTIONS = {"digits": {}, "voice": {"num_inference_steps": 4}, "text": {"max_new_tokens": 24}}


# -- the run ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--base", default=None, help="the base run (default: the config's, runs/...)")
    parser.add_argument("--config", default=None, help="the case's config (default: configs/personalise-CASE.yaml)")
    parser.add_argument("--budget-cpu-min", type=float, default=3.0,
                        help="CPU minutes each arm may train (from-scratch: the adapter's, at most this)")
    parser.add_argument("--steps", type=int, default=None, help="max_steps of adapter and full (default: the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of the case's config for every arm (generator.adapter.rank=16)")
    parser.add_argument("--samples", type=int, default=None,
                        help="generated images (default 500) or clips (default 50) per arm")
    parser.add_argument("--classifier-epochs", type=int, default=None,
                        help="epochs of the scoring classifiers (default: 20 images, 12 clips)")
    parser.add_argument("--text-chars", type=int, default=30000, help="held-out characters of the text case")
    parser.add_argument("--text-samples", type=int, default=4, help="texts generated per arm, to read")
    parser.add_argument("--arms", default=",".join(ARMS), help="which to train (the base is always shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed, so CPU time compares)")
    parser.add_argument("--out", default="/tmp/bench-personalise")
    args = parser.parse_args()
    case = CASES[args.case]
    args.samples = args.samples or (50 if args.case == "voice" else 500)
    args.classifier_epochs = args.classifier_epochs or (12 if args.case == "voice" else 20)
    if args.case == "voice" and not os.environ.get("AIGC_DATA_DIR"):
        sys.exit("bench_personalise: set AIGC_DATA_DIR to the directory holding fsdd/recordings")

    import torch
    from omegaconf import OmegaConf

    from aigc_core import Run

    torch.set_num_threads(args.threads)
    base = Path(args.base or ROOT / case["base"]).absolute()
    config_path = Path(args.config or ROOT / case["config"])
    config = load_yaml(config_path)
    if args.set:
        merged = OmegaConf.merge(OmegaConf.create(config), OmegaConf.from_dotlist(args.set))
        config = OmegaConf.to_container(merged, resolve=False)
    out = Path(args.out) / args.case
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget_cpu_min * 60
    chosen = [a for a in args.arms.split(",") if a]
    if "adapter" not in chosen:
        sys.exit("bench_personalise: --arms must include adapter (the others are measured against it)")

    warm_up(config["generator"]["name"])
    trained, rows = {}, {}
    for arm in [a for a in ARMS if a in chosen]:
        limit = min(budget, rows["adapter"]["cpu_s"]) if arm == "scratch" else budget
        pipe, spent, steps = train_arm(arm_config(config, arm, base, out, args.steps), limit)
        trained[arm] = pipe
        rows[arm] = {"cpu_s": spent, "steps": steps}
        print(f"{arm}: {steps} steps in {spent / 60:.2f} CPU-min", flush=True)

    base_run = Run.load(base)
    adapter_run = Run.load(out / "adapter")  # loaded as a user would: the base verified, the adapter attached
    from aigc_core.generation.adapters import disabled

    arms = {"base": (adapter_run.inference, lambda: disabled(adapter_run.generator))}
    for arm in ("scratch", "full"):
        if arm in trained:
            arms[arm] = (trained[arm].inference, _nothing)
    arms["adapter"] = (adapter_run.inference, _nothing)
    quality = SCORERS[args.case](arms, trained["adapter"].data_source(), args, out)

    adapter_n, base_n = parameter_share(base_run, adapter_run.pipeline)
    off_same, on_differs = same_bytes(base_run, adapter_run, 4 if args.case != "voice" else 2, **CHECK_OPTIONS[args.case])

    print(f"\n{args.case}: {config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path}, "
          f"base {base}, {args.threads} torch thread(s), budget {args.budget_cpu_min:g} CPU-min an arm")
    extra = [k for k in next(iter(quality.values())) if k != "distance"]
    print("| arm | steps | train CPU-min | " + " | ".join(extra) + " |")
    print("|---|---:|---:|" + "---:|" * len(extra))
    for arm in ("floor", "examples", *SHOWN):
        if arm not in quality:
            continue
        r = rows.get(arm, {})
        cells = " | ".join(f"{quality[arm][k]:.4g}" for k in extra)
        steps = r.get("steps", "")
        cpu = f"{r['cpu_s'] / 60:.2f}" if "cpu_s" in r else ""
        name = {"floor": "real held-out (floor)", "examples": "the training examples, repeated"}.get(arm, arm)
        print(f"| {name} | {steps} | {cpu} | {cells} |")
    d = {arm: q["distance"] for arm, q in quality.items()}
    if "full" in d:
        if args.case == "voice":
            share = quality["adapter"]["target_share"] / max(quality["full"]["target_share"], 1e-9)
            print(f"adapter vs full fine-tune: target-speaker share {share:.3f}x  (target >= 0.9)")
        else:
            print(f"adapter vs full fine-tune: distance {d['adapter'] / d['full']:.3f}x  (target <= 1.1)")
    if "scratch" in d:
        print(f"from-scratch vs adapter: distance {d['scratch'] / max(d['adapter'], 1e-9):.3f}x  (target >= 2)")
        if "examples" in d:  # the 2x target against what copying the examples perfectly would score
            print(f"a perfect copy of the training examples scores {d['examples']:.4g}; 2x closer than from "
                  f"scratch needs {d['scratch'] / 2:.4g}")
    print(f"base (no adaptation) vs adapter: distance {d['base'] / max(d['adapter'], 1e-9):.3f}x")
    if args.case == "voice":
        print(f"adapter's digit recognised at {quality['adapter']['digit_vs_floor']:.3f}x the real floor (target >= 0.9)")
    print(f"adapter tensors {adapter_n:,} / base model {base_n:,} = {adapter_n / base_n:.2%}  (target <= 3%)")
    print(f"adaptation CPU time {rows['adapter']['cpu_s'] / 60:.2f} min  (target <= 3)")
    print(f"adapter off gives the base run's bytes: {off_same}; adapter on changes them: {on_differs}")
    summary = {"case": args.case, "base": str(base), "rows": rows, "quality": quality, "adapter_parameters": adapter_n,
               "base_parameters": base_n, "adapter_off_same_bytes": off_same, "adapter_on_differs": on_differs}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"pictures, samples and summary.json: {out}")


class _nothing:
    """A context manager that changes nothing (the arms with no adapter to switch off)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


if __name__ == "__main__":
    main()
