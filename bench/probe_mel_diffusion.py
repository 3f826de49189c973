"""Probe: train mel-diffusion on FSDD (configs/audio-fsdd.yaml, Griffin-Lim, audio-classifier
only) with overrides and report the honest metric, CPU seconds and load:
python bench/probe_mel_diffusion.py TAG key=value ...; runs go to $PROBE_OUT (default /tmp/meldiff/runs).
Rescore a finished run with other generation options: python bench/probe_mel_diffusion.py TAG --rescore generate.guidance_scale=3 ..."""
import json, os, resource, sys, time
from pathlib import Path
import torch, yaml
torch.set_num_threads(1)
from aigc_core import Pipeline


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime


def show(tag, name, m):
    per = " ".join(f"{k.rsplit('_',1)[1]}:{v:.2f}" for k, v in m.items() if k.startswith("accuracy_generated_"))
    print(f"[{tag}] {name}: acc {m['accuracy_generated']:.3f} floor {m['accuracy_real_floor']:.3f} "
          f"ratio {m['accuracy_generated']/m['accuracy_real_floor']:.3f} fd {m['fd_generated']:.2f}/{m['fd_real_floor']:.2f}"
          f" = {m['ratio_to_floor']:.2f} | {per}", flush=True)


tag, args = sys.argv[1], sys.argv[2:]
out = Path(os.environ.get("PROBE_OUT", "/tmp/meldiff/runs")) / tag
w0, c0, l0 = time.perf_counter(), cpu(), os.getloadavg()[0]
if args and args[0] == "--rescore":
    pipe = Pipeline.from_run_dir(out, args[1:])
    s = pipe.score(pipe.generate())
    show(tag, "rescored " + " ".join(args[1:]), s.get("audio-classifier", s))
else:
    cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "configs/audio-fsdd.yaml"))
    cfg["metrics"] = [{"name": "audio-classifier"}]
    cfg["generator"]["vocoder"] = None
    cfg["output"]["dir"] = str(out)
    pipe = Pipeline.from_config(cfg, ["train.progress_bar=false", *args])
    run = pipe.run(restart=True)
    man = json.loads((Path(run) / "manifest.json").read_text())
    print(f"[{tag}] overrides {args}; steps {man['training']['global_step']} train {man['training']['train_s']:.0f}s wall; "
          f"timings {man['timings']}", flush=True)
    show(tag, "as configured", man["metrics"]["audio-classifier"])
print(f"[{tag}] done: process CPU {cpu()-c0:.0f}s wall {time.perf_counter()-w0:.0f}s load {l0:.1f}->{os.getloadavg()[0]:.1f}", flush=True)
