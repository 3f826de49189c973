"""``aigc check``, ``aigc run`` and ``aigc generate``: thin shells over ``Pipeline``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
                   help="discard an earlier run in the same directory instead of resuming or refusing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("generate", help="make new content from a trained run directory",
                       description="Load RUN_DIR's checkpoint (verified, tensors only) and write new content.")
    p.add_argument("run_dir", help="a directory written by 'aigc run'")
    p.add_argument("options", nargs="*", metavar="option=value",
                   help="generation options of the generator (see 'aigc plugins info NAME')")
    p.add_argument("-n", "--num-samples", type=int, default=None, help="how many items (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same bytes (default: the config's)")
    p.add_argument("--out", default=None, help="output directory (default: RUN_DIR/generated)")
    p.add_argument("--prompt", action="append", default=None, help="a prompt (text generators); repeatable")
    p.add_argument("--stream", action="store_true", help="print text as it is generated (text generators)")
    p.set_defaults(func=cmd_generate)


def cmd_check(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    pipe = Pipeline.from_config(args.config, args.overrides)
    parts = [f"data={pipe.data.name}", f"generator={pipe.gen.name}"]
    parts += [f"postprocess={p.name}" for p in pipe.postprocessors]
    parts += [f"metric={m.name}" for m in pipe.metrics]
    print(f"ok: {pipe.name} ({pipe.modality}): " + ", ".join(parts))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    pipe = Pipeline.from_config(args.config, args.overrides)
    run_dir = pipe.run(restart=args.restart)
    metrics = pipe.manifest().get("metrics") or {}
    for name, values in metrics.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) if isinstance(values, dict) else values
        print(f"{name}: {shown}", file=sys.stderr)
    print(run_dir)
    return 0


def parse_options(items: list[str]) -> dict:
    from omegaconf import OmegaConf

    from ..errors import UsageError

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
    from ..errors import UsageError
    from ..pipeline import Pipeline

    options = parse_options(args.options)
    if args.prompt:
        options["prompts"] = list(args.prompt)
    pipe = Pipeline.from_run_dir(args.run_dir)
    if args.stream:
        stream = getattr(pipe.generator, "stream", None)
        if stream is None:
            raise UsageError(f"generator {pipe.gen.name!r} does not stream; drop --stream")
        opts = pipe.validate_options({**_asdict(pipe.generate_options), **options})
        seed = args.seed if args.seed is not None else pipe.seed
        for piece in stream(seed=seed, **_asdict(opts)):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    content = pipe.generate(args.num_samples, seed=args.seed, **options)
    content = pipe.postprocess(content)
    out = Path(args.out) if args.out else Path(args.run_dir) / "generated"
    files = pipe.export(content, out)
    print(f"wrote {len(files)} files", file=sys.stderr)
    print(out)
    return 0


def _asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)
