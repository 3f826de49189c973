"""A transformers causal language model as an aigc generator.

From scratch: a GPT-2 architecture sized from the config and a byte-level BPE tokenizer trained
on the training split. Or ``generator.base:`` a transformers model directory or hub id (with its
tokenizer), to fine-tune or adapt (``load_base``; ``pretrained:`` is its old name, still read).
The artifact is the plain Hugging Face layout, so ``AutoModelForCausalLM.from_pretrained`` and
every other tool load ``RUN_DIR/model`` as is.

This module is what sampling needs (the transformers model, the tokenizer, the decoding loop) and
imports no Lightning: the loss, the optimiser and its schedule, and the tokenised training data
are in ``training.py``, which only ``aigc run`` imports.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated, ClassVar, Iterator, Literal, Optional

import torch

from aigc_core import AigcError, CheckpointError, ConfigError, Content, Generator, Item, check_cancelled, sample_seed
from aigc_core import Field, ParamError, Params, model_validator, preset
from aigc_core import hub_offline_mode, pretrained_record, resolve_pretrained

from .sampling import Decoder, Sampling
from .tokenizer import load_tokenizer, train_bpe

# layers, heads, width, context
SIZES = {"debug": (2, 2, 32, 64), "small": (4, 4, 128, 128), "base": (6, 6, 384, 256)}
TOKENIZER_DIR = "tokenizer"
#: LoRA targets of pretrained bases of other families (peft's names for them), tried in order when
#: a base has none of GPT-2's: Llama, Mistral, Qwen, OPT, Phi...; GPT-NeoX, Falcon, Bloom
OTHER_TARGETS = (("q_proj", "k_proj", "v_proj", "o_proj"), ("query_key_value",))
#: The output layer (hidden state to a logit per token), adapted besides the body's projections
#: when the model has one under this name (GPT-2, Llama and most others do)
OUTPUT_LAYER = "lm_head"


class CausalLMParams(Params):
    size: Literal["debug", "small", "base"] = Field("small", description="preset sizes; debug is for fast tests")
    n_layer: Optional[int] = Field(None, ge=1, description="transformer blocks (default from size)")
    n_head: Optional[int] = Field(None, ge=1, description="attention heads (default from size)")
    n_embd: Optional[int] = Field(None, ge=1, description="embedding width (default from size)")
    context: Optional[int] = Field(None, ge=1, description="tokens the model sees at once")
    vocab_size: int = Field(2048, ge=257, le=1_000_000, description="of the trained BPE tokenizer; 257 is bytes plus end-of-text")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout in attention and MLP")
    pretrained: Optional[str] = Field(None, description="the old name of generator.base (a transformers model directory or hub id); still read")
    tokenizer: Optional[str] = Field(None, description="a tokenizer directory to use instead of training one")
    tokenizer_max_chars: int = Field(20_000_000, ge=1, description="BPE is trained on at most this much of the training split")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    min_lr: float = Field(1e-4, ge=0, description="learning rate at the end of the cosine schedule")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up steps")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule after warm-up")
    weight_decay: float = Field(0.1, description="AdamW weight decay")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1")
    beta2: float = Field(0.99, ge=0, lt=1, description="AdamW beta2")

    @model_validator(mode="after")
    def _consistent(self) -> "CausalLMParams":
        if self.width % self.heads:
            raise ParamError("n_embd", f"{self.width} is not divisible by n_head {self.heads}")
        if self.min_lr > self.lr:
            raise ParamError("min_lr", f"must be at most lr ({self.lr})")
        return self

    layers = preset("n_layer", SIZES, 0)
    heads = preset("n_head", SIZES, 1)
    width = preset("n_embd", SIZES, 2)
    block = preset("context", SIZES, 3)


class TextOptions(Params):
    prompts: list[str] = Field([], description="texts to continue (the CLI's --prompt); empty: unconditional")
    max_new_tokens: int = Field(128, ge=1, description="tokens generated per sample")
    temperature: float = Field(1.0, ge=0, description="0 is greedy")
    top_k: int = Field(0, ge=0, description="0 is off")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: keep the smallest set of tokens with this much probability, in (0, 1]")
    repetition_penalty: float = Field(1.0, gt=0, description="divide the logits of tokens already present (1: off)")
    num_return_sequences: Optional[int] = Field(None, ge=1, description="per prompt; unset: n samples cycling through the prompts")
    stop: list[Annotated[str, Field(min_length=1)]] = Field([], description="cut the text before the first of these")
    batch_size: int = Field(16, ge=1, description="rows decoded together")
    stream_timeout: float = Field(60.0, gt=0, description="seconds without a token before streaming gives up")


def _gpt2(params: CausalLMParams, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=params.block, n_embd=params.width, n_layer=params.layers,
        n_head=params.heads, resid_pdrop=params.dropout, embd_pdrop=params.dropout, attn_pdrop=params.dropout,
        bos_token_id=eos, eos_token_id=eos,
    )  # no pad id: training windows contain end-of-text between documents, and nothing is padded there
    return GPT2LMHeadModel(config)


def _quiet_transformers() -> None:
    """Progress bars for loading or writing one small shard are noise in the CLI's output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _context_of(model) -> int:
    cfg = model.config
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def _has(names: list[str], layer: str) -> bool:
    return any(n == layer or n.endswith("." + layer) for n in names)


def _targets_of(model, default: tuple[str, ...]) -> tuple[str, ...]:
    """GPT-2's projections, or those of the first other family the model has (a pretrained base
    need not be a GPT-2, and a default that names no layer of it adapts nothing), and the output
    layer if there is one."""
    names = [name for name, _ in model.named_modules()]
    body = tuple(t for t in default if t != OUTPUT_LAYER)
    for family in (body, *OTHER_TARGETS):
        present = tuple(t for t in family if _has(names, t))
        if present:
            return present + ((OUTPUT_LAYER,) if _has(names, OUTPUT_LAYER) else ())
    return default


def _check_vocab(tokenizer, model, error) -> None:
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise error(f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has only {rows} rows: "
                    "they do not belong together")


class CausalLM(Generator):
    modality = "text"
    streams = True
    shards = True
    Params = CausalLMParams
    GenerateOptions = TextOptions
    training = "aigc_text.training:CausalLMTraining"
    #: LoRA's default layers (peft target_modules: a module name or its dotted suffix): every
    #: attention and MLP projection of GPT-2 (transformers' Conv1D, which peft adapts) and the output
    #: layer. The output layer is what another text needs most: its tokens come at other rates than
    #: the base's, and the body's projections alone cannot move the logits as far (on the Python
    #: documentation, the Shakespeare base's adapter without it stayed 1.12-1.13x full fine-tuning's
    #: held-out loss at every learning rate tried; with it, at rank 3 (fewer weights than rank 4
    #: without), 1.00-1.04x at full fine-tuning's rate and 1.02-1.03x of its best at 10x that rate
    #: (3 seeds each); configs/personalise-text.yaml).
    #: A base of another family gets its own names (``OTHER_TARGETS``).
    adapter_targets: ClassVar[tuple[str, ...]] = ("c_attn", "c_proj", "c_fc", OUTPUT_LAYER)

    def __init__(self, params: CausalLMParams, info: dict, model=None, tokenizer=None):
        super().__init__(params, info)
        if tokenizer is None:
            raise ConfigError("generator", "a text model needs a tokenizer (build it with CausalLM.build)")
        self.tokenizer = tokenizer
        self.model = model if model is not None else _gpt2(params, tokenizer)
        self.adapter_targets = _targets_of(self.model, type(self).adapter_targets)
        model_context = _context_of(self.model)
        self.context = min(params.context or model_context, model_context)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(cls, params: CausalLMParams, source, workdir: Path) -> "CausalLM":
        if params.pretrained:  # the old name of generator.base: the same loading, errors under its own key
            return cls._from_pretrained(params.pretrained, params, source.info, "generator.pretrained")
        if params.tokenizer:
            tokenizer = load_tokenizer(params.tokenizer, "generator.tokenizer")
        else:
            tokenizer = cls.fit_tokenizer(params, source, Path(workdir) / TOKENIZER_DIR)
        info = dict(source.info)
        info["vocab"] = len(tokenizer)
        return cls(params, info, tokenizer=tokenizer)

    @classmethod
    def load_base(cls, base: str, params: CausalLMParams, info: dict | None) -> "CausalLM":
        """``generator.base``: a transformers model folder or hub id (with its tokenizer, or
        ``generator.tokenizer``), to fine-tune or adapt. Safetensors only, never the folder's own
        code; offline, a hub id not in the local cache fails at once."""
        if params.pretrained and params.pretrained != base:
            raise ConfigError("generator.pretrained", "is the old name of generator.base; give only generator.base")
        return cls._from_pretrained(base, params, info, "generator.base")

    @classmethod
    def base_record(cls, base: str) -> dict:
        """The base's weights (sha256 of its safetensors) or, for a hub id, its cached revision."""
        return pretrained_record(base)

    @classmethod
    def _from_pretrained(cls, base: str, params: CausalLMParams, info: dict, key: str) -> "CausalLM":
        from transformers import AutoModelForCausalLM

        ref, kwargs = resolve_pretrained(base, key)
        if not kwargs and Path(ref).is_dir() and not any(Path(ref).glob("*.safetensors")):
            raise ConfigError(key, f"{ref}: no safetensors weights here (aigc never loads pickled .bin checkpoints; "
                                   "convert them with save_pretrained(safe_serialization=True))")
        _quiet_transformers()
        tok_key = "generator.tokenizer" if params.tokenizer else key
        with hub_offline_mode(bool(kwargs)):  # from the cache: nothing may reach for the hub
            tokenizer = load_tokenizer(params.tokenizer or ref, tok_key, **kwargs)
            try:
                model = AutoModelForCausalLM.from_pretrained(  # loads in eval mode; never the folder's own code
                    ref, **{**kwargs, "use_safetensors": True, "trust_remote_code": False}).train()
            except (OSError, ValueError) as exc:
                raise ConfigError(key, f"{ref}: cannot load ({str(exc).splitlines()[0]})") from None
        _check_vocab(tokenizer, model, lambda m: ConfigError(tok_key, m))
        info = dict(info or {"modality": "text"})  # None: a finished personalised run, nothing from the data
        info["vocab"] = len(tokenizer)
        return cls(params, info, model=model, tokenizer=tokenizer)

    @staticmethod
    def fit_tokenizer(params: CausalLMParams, source, directory: Path):
        """Train BPE on the training split once; a resumed run reuses the saved one."""
        if (directory / "tokenizer.json").is_file():
            tok = load_tokenizer(directory, "generator.tokenizer")
            if len(tok) <= params.vocab_size:
                return tok
        docs, left = [], params.tokenizer_max_chars
        for doc in source.split("train"):
            if left <= 0:
                break
            docs.append(doc[:left])
            left -= len(docs[-1])
        tok = train_bpe(docs, params.vocab_size)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=directory.parent))
        try:
            tok.save_pretrained(str(tmp))
            if directory.exists():
                shutil.rmtree(directory)
            tmp.rename(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # read back, as a resumed run does: a loaded tokenizer saves other metadata than a fresh one,
        # and a resumed run must write the same artifact as one that was never interrupted
        return load_tokenizer(directory, "generator.tokenizer")

    # -- generation -----------------------------------------------------------------------
    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        out = []
        for i, prompt in enumerate(prompts):
            ids = [bos] + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if len(ids) > self.context:
                raise ConfigError(f"generate.prompts[{i}]", f"the prompt is {len(ids)} tokens, longer than the "
                                                            f"model's context of {self.context} tokens")
            out.append(ids)
        return out

    def plan(self, n: int, opts: TextOptions) -> list[int]:
        """Which prompt each sample continues: per prompt ``num_return_sequences`` times, or cycling."""
        prompts = opts.prompts or [""]
        if opts.num_return_sequences is not None:
            return [p for p in range(len(prompts)) for _ in range(opts.num_return_sequences)]
        return [i % len(prompts) for i in range(n)]

    def _decoder(self, encoded, seeds, opts: TextOptions) -> Decoder:
        sampling = Sampling(opts.max_new_tokens, opts.temperature, opts.top_k, opts.top_p, opts.repetition_penalty)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        return Decoder(self.model, encoded, seeds, sampling, eos, pad, self.context)

    def _check_stops(self, dec: Decoder, stops: list[str]) -> None:
        longest = max(len(s) for s in stops)
        for i in torch.nonzero(~dec.finished).flatten().tolist():
            tail = self.tokenizer.decode(dec.new_tokens[i][-(longest + 8):])
            if any(s in tail for s in stops):
                dec.finished[i] = True
                dec.reason[i] = "stop"

    def _finish(self, text: str, stops: list[str]) -> str:
        cuts = [text.find(s) for s in stops if s in text]
        return text[: min(cuts)] if cuts else text

    def generate(self, n: int, seed: int, options: TextOptions, start: int = 0) -> Content:
        """Samples ``start .. start+n-1``; each row draws from ``sample_seed(seed, index)``, so a
        sharded job (``aigc generate --devices K``) writes the same texts as one process."""
        opts = options
        plan = dict(enumerate(self.plan(start + n, opts)))
        order = [i for i in range(start, start + n) if i in plan]
        prompts = opts.prompts or [""]
        encoded = self.encode_prompts(prompts)
        items: list[Item] = []
        for lo in range(0, len(order), opts.batch_size):
            idx = order[lo:lo + opts.batch_size]
            dec = self._decoder([encoded[plan[i]] for i in idx], [sample_seed(seed, i) for i in idx], opts)
            for _ in dec.steps():
                check_cancelled()  # per token: a server that gave up on this request stops it here
                if opts.stop:
                    self._check_stops(dec, opts.stop)
            for row, i in enumerate(idx):
                text = self._finish(self.tokenizer.decode(dec.new_tokens[row]), opts.stop)
                prompt = prompts[plan[i]]
                meta = {"index": i, "seed": seed, "sample_seed": sample_seed(seed, i),
                        "finish_reason": dec.reason[row], "new_tokens": len(dec.new_tokens[row])}
                if opts.prompts:
                    meta["prompt"] = prompt
                items.append(Item(prompt + text, meta))
        return Content("text", items)

    def stream(self, seed: int, options: TextOptions) -> Iterator[str]:
        """Text pieces as they are made: each prompt (once), then its continuation.

        Decoding runs in a worker thread (under ``Decoder.steps``' inference mode; the eval mode
        ``Inference`` set holds for the whole stream); the consumer waits at most ``stream_timeout``
        seconds for each piece, and an error in the worker is raised here, so nothing ever hangs.
        """
        opts = options
        prompts = opts.prompts or [""]
        encoded = self.encode_prompts(prompts)
        pieces: queue.Queue = queue.Queue()
        stop = threading.Event()
        done = object()

        def work() -> None:
            try:
                for p, ids in enumerate(encoded):
                    if p:
                        pieces.put("\n")
                    pieces.put(prompts[p])
                    self._stream_one(ids, sample_seed(seed, p), opts, pieces, stop)
                    if stop.is_set():
                        return
                pieces.put(done)
            except BaseException as exc:  # handed to the consumer, never lost in the thread
                pieces.put(exc)

        worker = threading.Thread(target=work, name="aigc-text-stream", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    piece = pieces.get(timeout=opts.stream_timeout)
                except queue.Empty:
                    raise AigcError(f"text generation stalled: no token for {opts.stream_timeout:g} s "
                                    "(generate.stream_timeout)") from None
                if piece is done:
                    return
                if isinstance(piece, BaseException):
                    if isinstance(piece, AigcError):
                        raise piece
                    raise AigcError(f"text generation failed: {type(piece).__name__}: {piece}") from piece
                if piece:
                    yield piece
        finally:
            stop.set()

    def _stream_one(self, ids, seed: int, opts: TextOptions, out: queue.Queue, stop: threading.Event) -> None:
        dec = self._decoder([ids], [seed], opts)
        sent = 0
        hold = max((len(s) for s in opts.stop), default=1) - 1
        for _ in dec.steps():
            if stop.is_set():
                return
            text = self.tokenizer.decode(dec.new_tokens[0])
            cut = self._finish(text, opts.stop)
            if len(cut) < len(text):  # a stop string arrived: send what precedes it and end
                dec.finished[0] = True
                out.put(cut[sent:])
                return
            ready = len(text) - hold
            while ready > sent and text[ready - 1] == "\ufffd":  # half a UTF-8 character: wait
                ready -= 1
            if ready > sent:
                out.put(text[sent:ready])
                sent = ready
        text = self._finish(self.tokenizer.decode(dec.new_tokens[0]), opts.stop)
        out.put(text[sent:])

    # -- artifacts ------------------------------------------------------------------------
    def save_artifact(self, directory: Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        gen = self.model.generation_config
        eos = self.tokenizer.eos_token_id
        gen.eos_token_id = eos
        gen.bos_token_id = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else eos
        gen.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        out, emb = self.model.get_output_embeddings(), self.model.get_input_embeddings()
        if out is not None and getattr(self.model.config, "tie_word_embeddings", False) and out.weight is not emb.weight:
            # an adapter on the output layer, merged (``aigc export --merge``), gave it its own weights: a
            # config still saying "tied" would have loading throw them away for the input embedding's
            self.model.config.tie_word_embeddings = False
        _quiet_transformers()
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return sorted(p for p in directory.iterdir() if p.is_file())

    @classmethod
    def load_artifact(cls, directory: Path, params: CausalLMParams, info: dict | None = None) -> "CausalLM":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise CheckpointError(f"{directory}: not a Hugging Face model directory (no config.json)")
        _quiet_transformers()
        try:
            # trust_remote_code=False: a tampered run's auto_map must not run its own Python (nor ask)
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{directory}: unreadable tokenizer ({str(exc).splitlines()[0]})") from None
        try:
            model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True, use_safetensors=True,
                                                         trust_remote_code=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{directory}: unreadable model ({str(exc).splitlines()[0]})") from None
        _check_vocab(tokenizer, model, lambda m: CheckpointError(f"{directory}: {m}"))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        generator = cls(params, info or {"modality": "text", "vocab": len(tokenizer)}, model=model, tokenizer=tokenizer)
        generator.eval()
        return generator
