"""Generation speed of aigc's text decoding against ``model.generate`` on the same model and prompts.

Both sample (temperature 1, no top-k/top-p) exactly --tokens new tokens per row on the same
left-padded prompts; rounds alternate between the two so a busy machine slows both alike.
Prints tokens per second and the ratio aigc / transformers (goal: at least 0.95), once for a
single prompt and once for a batch of prompts of different lengths.

    .venv/bin/python bench/bench_text_generate.py [--tokens 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

PROMPTS = ["The ", "A list of numbers", "When the interpreter starts, it", "Exceptions",
           "The with statement is used to wrap the execution of a block", "Names refer to objects.",
           "In", "Operator precedence"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="small")
    args = ap.parse_args()

    from pydoc_data.topics import topics

    from aigc_core.store.config import build_params
    from aigc_text.model import CausalLM
    from aigc_text.tokenizer import train_bpe

    torch.manual_seed(0)
    tok = train_bpe([topics[k] for k in sorted(topics)], 2048)
    params = build_params(CausalLM.Params, {"size": args.size, "context": 256}, "generator")
    gen = CausalLM(params, {"modality": "text"}, tokenizer=tok).eval()
    model = gen.model
    print(f"model: {args.size}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"vocab {len(tok)}, torch threads {torch.get_num_threads()}, {args.tokens} new tokens per row")

    for label, prompts in (("single prompt", PROMPTS[:1]), (f"batch of {len(PROMPTS)}", PROMPTS)):
        encoded = gen.encode_prompts(prompts)
        width = max(map(len, encoded))
        ids = torch.full((len(encoded), width), tok.eos_token_id)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encoded):
            ids[i, width - len(e):] = torch.tensor(e)
            mask[i, width - len(e):] = 1

        def ours() -> int:
            from aigc_core.generation.inference import generate_with
            content = generate_with(gen, len(prompts), seed=0, prompts=prompts, max_new_tokens=args.tokens,
                                   batch_size=len(prompts))
            return max(i.meta["new_tokens"] for i in content.items)

        def theirs() -> int:
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                     top_p=1.0, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                     pad_token_id=tok.eos_token_id)
            return out.shape[1] - width

        ours(), theirs()  # warm up
        times = {"aigc": [], "transformers": []}
        for _ in range(args.rounds):
            for name, fn in (("aigc", ours), ("transformers", theirs)):
                t0 = time.perf_counter()
                steps = fn()
                times[name].append(time.perf_counter() - t0)
                if name == "transformers":
                    assert steps == args.tokens, steps
        rate = {k: len(prompts) * args.tokens / statistics.median(v) for k, v in times.items()}
        print(f"{label}: aigc {rate['aigc']:.0f} tok/s, model.generate {rate['transformers']:.0f} tok/s, "
              f"ratio {rate['aigc'] / rate['transformers']:.3f} (median of {args.rounds})")


if __name__ == "__main__":
    main()
