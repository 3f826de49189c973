"""Tokenizers.

A tokenizer trained here is byte-level BPE (any UTF-8 text, nothing unknown), wrapped as a
``PreTrainedTokenizerFast`` so the run directory is a standard Hugging Face model directory.
A vocabulary of 257 is plain bytes plus the end-of-text token: character-level for ASCII text.
Where a pretrained base comes from (a folder, a hub id, offline) is ``aigc_core.resolve_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from aigc_core import ConfigError

EOS = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on ``texts``; deterministic for the same texts and size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok)


def wrap(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    fast.padding_side = "left"  # batched prompts: the newest token of every row is in the last column
    return fast


def load_tokenizer(path: str | Path, key: str, **kwargs):
    from transformers import AutoTokenizer

    try:
        # never the directory's own Python (auto_map): a run or hub folder is data, not code
        tok = AutoTokenizer.from_pretrained(str(path), **{**kwargs, "trust_remote_code": False})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(key, f"{path}: not a tokenizer directory ({_first(exc)})") from None
    if tok.eos_token is None:
        raise ConfigError(key, f"{path}: the tokenizer has no end-of-text token")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
