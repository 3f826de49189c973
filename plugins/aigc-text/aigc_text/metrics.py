"""Text metrics: how well the model predicts held-out text, and whether it parrots its training text.

Perplexity per token depends on the tokenizer; nats per character and bits per byte divide the
same total loss by the text's characters or UTF-8 bytes, so models with different vocabularies
(or nanoGPT's character model) compare directly.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch.nn import functional as F

from aigc_core import DataError, Metric, MetricContext
from aigc_core import Field, Params

from .data import TokenBlocks, encode_stream


class LikelihoodParams(Params):
    split: Literal["val", "test"] = Field("val", description="held-out split to score")
    batch_size: int = Field(32, ge=1, description="windows scored together")
    max_chars: Optional[int] = Field(None, ge=1, description="score only the first this many characters (quick checks)")


def held_out_loss(generator, docs: list[str], batch_size: int = 32) -> dict[str, float]:
    """Total loss over ``docs`` in context-sized windows overlapping by one token."""
    tokens = encode_stream(generator.tokenizer, docs)
    blocks = TokenBlocks(tokens, generator.context)
    if not len(blocks):
        raise DataError(f"held-out text is shorter than one context of {generator.context} tokens")
    model = generator.model
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for lo in range(0, len(blocks), batch_size):
                batch = torch.stack([blocks[i] for i in range(lo, min(len(blocks), lo + batch_size))]).to(model.device)
                logits = model(input_ids=batch[:, :-1]).logits.float()
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
                total += float(loss)
                count += batch[:, 1:].numel()
    finally:
        model.train(was)
    # the characters and bytes the scored tokens stand for
    scored = generator.tokenizer.decode(tokens[1: count + 1].tolist())
    chars, nbytes = max(1, len(scored)), max(1, len(scored.encode("utf-8")))
    return {
        "nll_per_token": total / count,
        "perplexity": math.exp(total / count),
        "nats_per_char": total / chars,
        "bits_per_byte": total / math.log(2) / nbytes,
        "tokens": count,
        "chars": chars,
    }


def _first_chars(docs: list[str], limit: int) -> list[str]:
    out: list[str] = []
    for doc in docs:
        if limit <= 0:
            break
        out.append(doc[:limit])
        limit -= len(out[-1])
    return out


class TextLikelihood(Metric):
    Params = LikelihoodParams

    def needs(self) -> dict[str, int]:
        """Held-out text to score: one document at least."""
        return {self.params.split: 1}

    def compute(self, context: MetricContext) -> dict[str, float]:
        self.require(context.data)
        docs = list(context.data.split(self.params.split))
        if self.params.max_chars is not None:
            docs = _first_chars(docs, self.params.max_chars)
        if not docs:
            raise DataError(f"text-likelihood: the {self.params.split} split is empty; set data.{self.params.split}_fraction")
        result = held_out_loss(context.generator, docs, self.params.batch_size)
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in result.items()}


class MemorisationParams(Params):
    span: int = Field(50, ge=8, description="characters copied verbatim that count as memorised")


def copied_spans(texts: list[str], training: str, span: int) -> list[bool]:
    """For each text, whether some ``span``-character window of it occurs in ``training``.

    One pass over the training text against a set of the generated windows: linear in the
    training text, with no index of it kept in memory.
    """
    windows: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        for j in range(len(t) - span + 1):
            windows.setdefault(t[j:j + span], []).append(i)
    hit = [False] * len(texts)
    if not windows:
        return hit
    left = len(texts)
    for j in range(len(training) - span + 1):
        owners = windows.get(training[j:j + span])
        if owners:
            for i in owners:
                if not hit[i]:
                    hit[i] = True
                    left -= 1
            del windows[training[j:j + span]]
            if not left:
                break
    return hit


class Memorisation(Metric):
    Params = MemorisationParams

    def compute(self, context: MetricContext) -> dict[str, float]:
        texts = []
        for item in context.content.items:
            text = str(item.data)
            prompt = item.meta.get("prompt") or ""
            texts.append(text[len(prompt):] if prompt and text.startswith(prompt) else text)
        training = "\n".join(context.data.split("train"))
        hits = copied_spans(texts, training, self.params.span)
        return {"copied_share": round(sum(hits) / len(hits), 5) if hits else 0.0, "samples": len(hits),
                "span": self.params.span}
