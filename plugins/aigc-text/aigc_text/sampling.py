"""The decoding loop: batched, left-padded, KV-cached, and seeded per sample.

Why not ``model.generate``: its sampling draws from one global random stream, so a sample would
change with the batch it happens to be in. Here each row draws its uniforms from its own
``sample_seed(seed, index)`` stream and samples by inverse CDF, so sample ``i`` is the same alone,
in any batch, on any process. The loop is also the streaming source: it yields after every token.

Past the model's context the window slides: the cache is dropped and the last three quarters
of the context are fed again, so long texts cost a re-encode every quarter context, not every token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


@dataclass
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 is greedy
    top_k: int = 0  # 0 is off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop_at_eos: bool = True


class Decoder:
    """Iterate ``steps()`` for one new token per row per step; set ``finished[i]`` to stop a row."""

    def __init__(self, model, prompts: Sequence[Sequence[int]], seeds: Sequence[int], sampling: Sampling,
                 eos_id: int, pad_id: int, context: int):
        self.model = model
        self.s = sampling
        self.eos_id = eos_id
        self.context = context
        rows = len(prompts)
        width = max(len(p) for p in prompts)
        self.ids = torch.full((rows, width), pad_id, dtype=torch.long)
        self.mask = torch.zeros((rows, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            self.ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
            self.mask[i, width - len(p):] = 1
        self.uniforms = torch.stack([
            torch.rand(max(1, sampling.max_new_tokens), generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
            for s in seeds
        ]).float()
        self.finished = torch.zeros(rows, dtype=torch.bool)
        self.new_tokens: list[list[int]] = [[] for _ in range(rows)]
        self.reason = ["length"] * rows
        self.seen = None
        if sampling.repetition_penalty != 1.0:
            vocab = model.get_output_embeddings().weight.shape[0]
            self.seen = torch.zeros((rows, vocab), dtype=torch.bool)
            for i, p in enumerate(prompts):
                self.seen[i, torch.tensor(list(p), dtype=torch.long)] = True

    def _forward(self, step: int, cache):
        device = self.model.device
        if cache is not None and self.cache_mask.shape[1] + 1 > self.context:
            cache = None  # slide the window
        if cache is None:
            keep = self.context if step == 0 else max(1, self.context - max(1, self.context // 4))
            inp, m = self.ids[:, -keep:], self.mask[:, -keep:]
            pos = (m.cumsum(1) - 1).clamp(min=0)
            out = self.model(input_ids=inp.to(device), attention_mask=m.to(device), position_ids=pos.to(device),
                             use_cache=True, logits_to_keep=1)
            self.cache_mask = m
            self.next_pos = m.sum(1)
        else:
            self.cache_mask = torch.cat([self.cache_mask, torch.ones((len(self.ids), 1), dtype=torch.long)], 1)
            out = self.model(input_ids=self.ids[:, -1:].to(device), cache=cache,
                             attention_mask=self.cache_mask.to(device),
                             position_ids=self.next_pos[:, None].to(device), use_cache=True)
            self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :].float().cpu(), out.cache

    def pick(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        s = self.s
        if self.seen is not None:
            penalised = torch.where(logits > 0, logits / s.repetition_penalty, logits * s.repetition_penalty)
            logits = torch.where(self.seen[:, : logits.shape[1]], penalised, logits)
        if s.temperature == 0.0:
            return logits.argmax(-1)
        logits = logits / s.temperature
        if s.top_k and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, -1)
        if s.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True, dim=-1)
            drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= s.top_p  # the first token always stays
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        cdf = probs.cumsum(-1)
        u = self.uniforms[:, step:step + 1] * cdf[:, -1:]
        return torch.searchsorted(cdf, u).squeeze(1).clamp(max=probs.shape[-1] - 1)

    @torch.inference_mode()
    def steps(self) -> Iterator[torch.Tensor]:
        cache = None
        for step in range(self.s.max_new_tokens):
            if bool(self.finished.all()):
                return
            logits, cache = self._forward(step, cache)
            token = self.pick(logits, step)
            token = torch.where(self.finished, torch.full_like(token, self.eos_id), token)
            for i in torch.nonzero(~self.finished).flatten().tolist():
                t = int(token[i])
                if self.s.stop_at_eos and t == self.eos_id:
                    self.finished[i] = True
                    self.reason[i] = "eos"
                else:
                    self.new_tokens[i].append(t)
            if self.seen is not None:
                self.seen[torch.arange(len(token)), token] = True
            self.ids = torch.cat([self.ids, token[:, None]], 1)
            self.mask = torch.cat([self.mask, torch.ones((len(token), 1), dtype=torch.long)], 1)
            yield token
