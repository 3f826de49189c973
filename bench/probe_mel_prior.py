"""Probe: train mel-vae on FSDD (configs/audio-fsdd-vae.yaml, Griffin-Lim, audio-classifier only) with overrides, score it as configured and with the prior reset to N(0, I): python bench/probe_mel_prior.py TAG key=value ...; runs go to $PROBE_OUT (default /tmp/mel/runs)."""
import json, os, resource, sys, time
from pathlib import Path
import torch, yaml
torch.set_num_threads(1)
from aigc_core import Pipeline

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime

tag, overrides = sys.argv[1], sys.argv[2:]
cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "configs/audio-fsdd-vae.yaml"))
cfg["metrics"] = [{"name": "audio-classifier"}]
cfg["generator"]["vocoder"] = None
cfg["output"]["dir"] = os.environ.get("PROBE_OUT", "/tmp/mel/runs") + f"/{tag}"
pipe = Pipeline.from_config(cfg, ["train.progress_bar=false", *overrides])
w0, c0, l0 = time.perf_counter(), cpu(), os.getloadavg()[0]
run = pipe.run(restart=True)
man = json.loads((Path(run) / "manifest.json").read_text())
m = man["metrics"]["audio-classifier"]
def show(name, m):
    per = " ".join(f"{k.rsplit('_',1)[1]}:{v:.2f}" for k, v in m.items() if k.startswith("accuracy_generated_"))
    print(f"[{tag}] {name}: acc {m['accuracy_generated']:.3f} floor {m['accuracy_real_floor']:.3f} "
          f"ratio {m['accuracy_generated']/m['accuracy_real_floor']:.3f} fd {m['fd_generated']:.2f}/{m['fd_real_floor']:.2f}"
          f" = {m['ratio_to_floor']} | {per}", flush=True)
print(f"[{tag}] overrides {overrides}; steps {man['training']['global_step']} train {man['training']['train_s']:.0f}s wall; "
      f"process CPU so far {cpu()-c0:.0f}s; load {l0:.1f}->{os.getloadavg()[0]:.1f}", flush=True)
show("prior as configured", m)
p2 = Pipeline.from_run_dir(run)
g = p2.generator
g.prior_mean.zero_(); g.prior_scale.copy_(torch.eye(g.prior_scale.shape[-1]).repeat(g.prior_scale.shape[0], 1, 1))
s = p2.score(p2.generate()); show("prior N(0,I)", s.get("audio-classifier", s))
print(f"[{tag}] done: total CPU {cpu()-c0:.0f}s wall {time.perf_counter()-w0:.0f}s", flush=True)
