"""``aigc check``, ``aigc run`` and ``aigc generate``: thin shells over ``Pipeline``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..contract import progress

QUIET_HELP = ("no progress on stderr (by default each long phase shows what runs, done/total and the time "
              "left: a live line on a terminal, plain lines in a log; AIGC_PROGRESS=plain|rich|off chooses)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate a pipeline config without training or reading data",
                       description="Validate every component name, parameter and modality match of CONFIG.")
    p.add_argument("config", help="pipeline YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="OmegaConf dotlist overrides")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="train, generate, post-process, export and score; prints the run directory",
                       description="Run the pipeline of CONFIG. Running it again resumes from the last checkpoint.")
    p.add_argument("config", help="pipeline YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="OmegaConf dotlist overrides")
    p.add_argument("--restart", action="store_true",
                   help="discard an earlier run in the same directory instead of resuming or refusing "
                        "(removes only the files that run's manifest lists)")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("generate", help="make new content from a trained run directory",
                       description="Load RUN_DIR's checkpoint (verified, tensors only) and write new content.")
    p.add_argument("run_dir", help="a directory written by 'aigc run'")
    p.add_argument("options", nargs="*", metavar="option=value",
                   help="generation options of the generator (see 'aigc plugins info NAME')")
    p.add_argument("-n", "--num-samples", type=int, default=None, help="how many items (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same bytes (default: the config's)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/generated); must be new, empty "
                   "or written by an earlier 'aigc generate'")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a --out that holds other files: files named as aigc's outputs are replaced, "
                        "nothing else is touched")
    p.add_argument("--prompt", action="append", default=None, help="a prompt (text generators); repeatable")
    p.add_argument("--stream", action="store_true", help="print text as it is generated (text generators)")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    shard = p.add_argument_group("sharded generation (any of these turns it on; see docs/distributed.md)")
    shard.add_argument("--devices", type=int, default=None, metavar="K",
                       help="processes (or GPUs) per node for Lightning's predict loop; output goes in resumable shards")
    shard.add_argument("--num-nodes", type=int, default=None, metavar="M", help="nodes (with torchrun or SLURM)")
    shard.add_argument("--accelerator", default=None, help="cpu, gpu or auto (default: cpu)")
    shard.add_argument("--shard-size", type=int, default=None, metavar="S",
                       help="samples per shard (default: 1000); the same for 1 or K processes, so the same bytes")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="write a run in another form (--merge: an adapter folded into its base)",
                       description="Write RUN_DIR as a standalone run at OUT. --merge folds a personalised run's "
                                   "adapter into its base's weights: OUT loads and serves without the base.")
    p.add_argument("run_dir", help="a personalised run directory (generator.adapter)")
    p.add_argument("out", help="a new or empty directory for the standalone run")
    p.add_argument("--merge", action="store_true", required=True,
                   help="fold the adapter into the base's weights (the only export there is today)")
    p.set_defaults(func=cmd_export)


def cmd_check(args: argparse.Namespace) -> int:
    from ..orchestration.pipeline import Pipeline

    from ..store.rundir import RunDir

    pipe = Pipeline.from_config(args.config, args.overrides).check()
    RunDir(pipe.run_dir).refuse_unless_writable()  # what 'aigc run' would refuse about output.dir, read-only
    parts = [f"data={pipe.data.name}", f"generator={pipe.gen.name}"]
    parts += [f"postprocess={p.name}" for p in pipe.postprocessors]
    parts += [f"metric={m.name}" for m in pipe.metrics]
    print(f"ok: {pipe.name} ({pipe.modality}): " + ", ".join(parts))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..helpers.ranks import launcher_rank

    # the other processes of a distributed run stay quiet: one process shows the progress
    with progress.showing("off" if args.quiet or launcher_rank() != 0 else "auto"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..contract.errors import Interrupted
    from ..orchestration.pipeline import Pipeline
    from ..helpers.ranks import launcher_rank

    pipe = Pipeline.from_config(args.config, args.overrides)
    try:
        run_dir = pipe.run(restart=args.restart)
    except Interrupted as exc:
        if launcher_rank() == 0:  # one line, from one process
            again = shlex.join(["aigc", "run", args.config, *args.overrides])  # without --restart: it resumes
            print(f"aigc: {exc.summary}; resume with: {again}", file=sys.stderr)
        return exc.exit_code
    if not pipe.is_global_zero:  # the other processes of a distributed run stay quiet
        return 0
    metrics = pipe.manifest().get("metrics") or {}
    for name, values in metrics.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) if isinstance(values, dict) else values
        print(f"{name}: {shown}", file=sys.stderr)
    print(run_dir)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..orchestration.run import Run

    out = Run.load(args.run_dir).export_merged(args.out)
    print(out)
    return 0


def parse_options(items: list[str]) -> dict:
    from omegaconf import OmegaConf

    from ..contract.errors import UsageError

    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"generation option {item!r}: expected option=value")
        key, _, value = item.partition("=")
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]))["v"]
        except Exception:
            parsed = value
        out[key.strip()] = parsed
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    from ..helpers.ranks import launcher_rank
    from ..helpers.waiting import passive_waits

    passive_waits()  # before torch is imported: small tensor work on a busy machine must not spin

    with progress.showing("off" if args.quiet or args.stream or launcher_rank() != 0 else "auto"):
        return _generate(args)


def _generate(args: argparse.Namespace) -> int:
    from ..helpers.collector import held_off_while_loading

    with held_off_while_loading():  # imports and the model's objects: see aigc_core.helpers.collector
        from ..generation.inference import check_seed
        from ..orchestration.run import Run
        from ..store.rundir import OutputDir, RunDir

        options = parse_options(args.options)
        if args.prompt:
            options["prompts"] = list(args.prompt)
        if args.seed is not None:
            check_seed(args.seed, "--seed")
        inference = Run.load(args.run_dir).inference
    if args.stream:
        if not inference.streams:
            from ..contract.errors import UsageError

            raise UsageError(f"generator {inference.generator_name!r} does not stream; drop --stream")
        for piece in inference.stream(args.seed, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    out = Path(args.out) if args.out else RunDir(args.run_dir).generated_dir
    if any(v is not None for v in (args.devices, args.num_nodes, args.accelerator, args.shard_size)):
        return _generate_sharded(inference, args, options, out)
    target = OutputDir(out)
    target.check(args.overwrite)  # before any work: a refusal costs nothing
    content, files = inference(args.num_samples, args.seed, out=out, **options)
    target.remove_stale(files)
    target.record(files)
    print(f"wrote {len(files)} files", file=sys.stderr)
    print(out)
    return 0


def _generate_sharded(inference, args: argparse.Namespace, options: dict, out: Path) -> int:
    from ..train.sharding import DEFAULT_SHARD_SIZE, generate_sharded

    n = args.num_samples if args.num_samples is not None else inference.num_samples
    summary = generate_sharded(inference, n, out, seed=args.seed, options=options, devices=args.devices or 1,
                               num_nodes=args.num_nodes or 1, accelerator=args.accelerator or "cpu",
                               shard_size=args.shard_size or DEFAULT_SHARD_SIZE, overwrite=args.overwrite)
    if summary["rank"] != 0:  # the other processes of the job stay quiet
        return 0
    skipped = f", {summary['skipped']} already done" if summary["skipped"] else ""
    print(f"wrote {summary['shards']} shards{skipped}", file=sys.stderr)
    print(out)
    return 0
