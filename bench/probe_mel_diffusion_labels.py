"""Does the label move a trained mel-diffusion's clips? Class and time embedding norms, then the rms spread of
samples across labels (same seed) against across seeds (same label), in diffusion space, DPM-Solver 10 steps:
python bench/probe_mel_diffusion_labels.py RUN_DIR [GUIDANCE ...] (figures: "Round four" of the old notebook,
`git show d04d114:docs/benchmarks.md`)."""
import sys, torch
torch.set_num_threads(1)
from aigc_core import Pipeline
from aigc_diffusion import denoiser
run = sys.argv[1]
pipe = Pipeline.from_run_dir(run)
gen = pipe.generator
net = gen.unet_ema if gen.unet_ema is not None else gen.unet
net.eval()
u = net.unet if hasattr(net, "unet") else net
ce = u.class_embedding.weight.detach()
print("classes", gen.conditioned, "num_classes", gen.num_classes, "class emb rows", ce.shape)
t = torch.tensor([10, 250, 500, 750, 990])
temb = u.time_embedding(u.time_proj(t))
print("time emb norm per t", temb.norm(dim=1).round(decimals=2).tolist())
print("class emb norms", ce.norm(dim=1).round(decimals=2).tolist())
d = ce[:-1] - ce[:-1].mean(0)
print("class emb spread (norm of deviation from mean)", d.norm(dim=1).mean().item(), " null - mean", (ce[-1] - ce[:-1].mean(0)).norm().item())
seeds, labels = 6, list(range(gen.conditioned))
for g in [float(a) for a in sys.argv[2:]] or [1.0, 2.0]:
    xs = torch.zeros(len(labels), seeds, *gen.shape)
    for li, L in enumerate(labels):
        for lo, x, _ in denoiser.sample_chunks(net, gen.noise_scheduler, gen.shape, 0, 0, seeds, seeds, "dpm-solver", 10, g,
                                               lambda idx: torch.full_like(idx, L), gen.conditioned, None, lambda a, b: None):
            xs[li] = x[:seeds]
    across_labels = (xs - xs.mean(0, keepdim=True)).pow(2).mean().sqrt().item()
    across_noise = (xs - xs.mean(1, keepdim=True)).pow(2).mean().sqrt().item()
    print(f"guidance {g}: rms spread across labels (same seed) {across_labels:.3f}, across seeds (same label) {across_noise:.3f}, ratio {across_labels/across_noise:.2f}")
