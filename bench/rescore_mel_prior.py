"""Rescore a finished mel-vae run with its prior reset to N(0, I) (standard) or as fitted (class), at a metric temperature: python bench/rescore_mel_prior.py RUN_DIR standard|class TEMPERATURE."""
import os, sys, time, torch
torch.set_num_threads(1)
from aigc_core import Pipeline
run, prior, temp = sys.argv[1], sys.argv[2], float(sys.argv[3])
p = Pipeline.from_run_dir(run, [f"metrics.0.temperature={temp}"])
g = p.generator
if prior == "standard":
    g.prior_mean.zero_(); g.prior_scale.copy_(torch.eye(g.prior_scale.shape[-1]).repeat(g.prior_scale.shape[0], 1, 1))
t0 = time.process_time()
s = p.score(p.generate(temperature=temp))
m = s.get("audio-classifier", s)
per = " ".join(f"{k.rsplit('_',1)[1]}:{v:.2f}" for k, v in m.items() if k.startswith("accuracy_generated_"))
print(f"[{run} prior={prior} T={temp}] acc {m['accuracy_generated']:.3f} floor {m['accuracy_real_floor']:.3f} "
      f"ratio {m['accuracy_generated']/m['accuracy_real_floor']:.3f} fd {m['fd_generated']:.2f}/{m['fd_real_floor']:.2f} = {m['ratio_to_floor']} | {per} | cpu {time.process_time()-t0:.0f}s load {os.getloadavg()[0]:.1f}", flush=True)
