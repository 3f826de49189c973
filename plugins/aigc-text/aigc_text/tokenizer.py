"""Tokenizers and where pretrained weights come from.

A tokenizer trained here is byte-level BPE (any UTF-8 text, nothing unknown), wrapped as a
``PreTrainedTokenizerFast`` so the run directory is a standard Hugging Face model directory.
A vocabulary of 257 is plain bytes plus the end-of-text token: character-level for ASCII text.

Hub ids are resolved with the network only when it is there: offline, ``from_pretrained`` would
retry for tens of seconds before failing, so we detect offline first and pass
``local_files_only``; a model not in the local cache then fails at once with a clear message.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Iterable

from aigc_core import ConfigError

EOS = "<|endoftext|>"
HUB_HOST = ("huggingface.co", 443)
PROBE_TIMEOUT_S = 1.5


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


def hub_offline() -> bool:
    """True when the hub cannot be reached: HF_HUB_OFFLINE, or no connection within a moment."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    result: list[bool] = []

    def probe() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            with socket.create_connection(HUB_HOST, timeout=PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(PROBE_TIMEOUT_S + 0.5)
    return not (result and result[0])


def resolve(ref: str, key: str) -> tuple[str, dict]:
    """A local directory, or a hub id with the loading flags offline needs; errors name ``key``."""
    p = Path(ref).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ConfigError(key, f"{p}: not a model directory (no config.json)")
        return str(p), {}
    if p.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise ConfigError(key, f"{p}: no such model directory")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref, "config.json")
        if not isinstance(cached, str):
            raise ConfigError(
                key, f"{ref!r} is not a local directory and the Hugging Face hub cannot be reached "
                     "(offline) and it is not in the local cache; give a local model directory"
            )
        return ref, {"local_files_only": True}
    return ref, {}


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
