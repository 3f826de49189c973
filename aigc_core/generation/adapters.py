"""Low-rank adapters (LoRA, through peft) on any generator: what a personalised run trains and keeps.

A few examples cannot retrain a whole model, but they can steer a good one: the base's weights
stay frozen and each adapted layer learns a small low-rank correction (``W + B A * alpha/rank``,
``B`` starting at zero, so an untrained adapter changes nothing). peft does the layers and the
bookkeeping; aigc adds what a plain ``torch.nn.Module`` generator needs around it: default target
layers per backend (``Generator.adapter_targets``), checks that name the config key, a LoRA layer
for transposed convolutions (what DCGAN and VAE decoders upsample with, which peft has no layer
for), and adapter weights that travel apart from the base (``adapter_state`` /
``load_adapter_state``) so a personalised run's ``model/`` is the adapter alone.

Several adapters can live on one base under different names (the server keeps the base once and
switches per request: ``activate``); ``disabled`` gives the base's own output back; ``merge``
folds one adapter into the weights for a standalone model.

peft (and, through it, transformers) is imported only when an adapter is attached or loaded: a
plain run never pays for it.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Literal, Optional

from ..contract.errors import CheckpointError, ConfigError, did_you_mean
from ..contract.params import Field, Params

#: The adapter name a run's own adapter has; the server gives each served run its own.
DEFAULT = "default"
KEY = "generator.adapter"
_ADAPTER_KEY = re.compile(r"\.(lora_(?:A|B|embedding_A|embedding_B)|modules_to_save)\.([^.]+)(?=\.|$)")


class AdapterSpec(Params):
    """``generator.adapter``: which layers get a low-rank correction, and how large."""

    method: Literal["lora"] = Field("lora", description="the adapter kind (LoRA, through peft)")
    rank: int = Field(8, ge=1, le=4096, description="rank of each correction: its size and capacity")
    alpha: Optional[float] = Field(None, gt=0, description="the correction is scaled by alpha / rank; default: rank (scale 1)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input while training")
    lr_scale: float = Field(1.0, gt=0, le=1000, description="the adapter's weights learn at this multiple of the "
                            "generator's learning rate (every one it has, schedule and all); LoRA usually "
                            "wants 3-10, full fine-tuning of the same base the generator's own")
    targets: Optional[list[str]] = Field(None, min_length=1, description="layer names (or name endings) to adapt; "
                                         "default: the generator's adapter_targets")
    whole: Optional[list[str]] = Field(None, description="small layers (norm gains and shifts, an output layer into "
                                       "few channels) trained whole and saved with the adapter, peft's "
                                       "modules_to_save; default: the generator's adapter_whole; [] for none")

    def scale(self) -> float:
        return (self.alpha if self.alpha is not None else float(self.rank)) / self.rank


def _supported_types() -> tuple[type, ...]:
    import torch.nn as nn

    types: list[type] = [nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.ConvTranspose2d]
    try:
        from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers
        types.append(Conv1D)
    except ImportError:  # pragma: no cover - transformers is a dependency of peft
        pass
    return tuple(types)


def _layer_size(module: Any) -> tuple[int, int]:
    """(inputs, outputs) of a layer: the rank may not exceed the smaller."""
    import torch.nn as nn

    if isinstance(module, nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if hasattr(module, "in_channels"):
        return module.in_channels, module.out_channels
    rows, cols = module.weight.shape[:2]  # transformers' Conv1D: (inputs, outputs)
    return int(rows), int(cols)


def match_targets(generator: Any, patterns: list[str], key: str = f"{KEY}.targets") -> list[str]:
    """The qualified names of the layers ``patterns`` select (peft's rule: the name, or a name ending
    in ``.pattern``); a pattern that selects nothing, or an unsupported layer, is a ``ConfigError``."""
    supported = _supported_types()
    modules = dict(generator.named_modules())
    chosen: list[str] = []
    for pattern in patterns:
        hits = [name for name in modules if name and (name == pattern or name.endswith("." + pattern))]
        if not hits:
            leaves = sorted({name.rsplit(".", 1)[-1] for name in modules if name}
                            | {name for name, m in modules.items() if name and isinstance(m, supported)})
            raise ConfigError(key, f"{pattern!r} names no layer of this {type(generator).__name__}"
                                   f"{did_you_mean(pattern, leaves)}")
        for name in hits:
            layer = _wrapped(modules[name])
            if not isinstance(layer, supported):
                kinds = ", ".join(sorted({t.__name__ for t in supported}))
                raise ConfigError(key, f"{pattern!r} selects {name} ({type(layer).__name__}); LoRA adapts {kinds}")
            if name not in chosen:
                chosen.append(name)
    return chosen


def check_spec(generator: Any, spec: AdapterSpec) -> list[str]:
    """The layers ``spec`` adapts on ``generator``, after every check a config can fail."""
    patterns = _targets(generator, spec)
    if not patterns:
        raise ConfigError(f"{KEY}.targets", f"generator {type(generator).__name__} declares no default adapter "
                                            "targets; name the layers to adapt")
    names = match_targets(generator, patterns)
    modules = dict(generator.named_modules())
    for name in names:
        inputs, outputs = _layer_size(_wrapped(modules[name]))
        if spec.rank > min(inputs, outputs):
            raise ConfigError(f"{KEY}.rank", f"rank {spec.rank} is larger than layer {name} "
                                             f"({inputs} -> {outputs}); use at most {min(inputs, outputs)}")
    check_whole(generator, spec, names)
    return names


def check_whole(generator: Any, spec: AdapterSpec, lora: list[str]) -> list[str]:
    """The layers ``spec`` trains whole (``whole``): each pattern must select a layer with weights,
    none a layer that also gets a LoRA correction (one layer, one way of changing it)."""
    patterns = _whole(generator, spec)
    modules = dict(generator.named_modules())
    chosen: list[str] = []
    for pattern in patterns:
        hits = [name for name in modules if name and (name == pattern or name.endswith("." + pattern))]
        if not hits:
            leaves = sorted({name.rsplit(".", 1)[-1] for name in modules if name} | set(modules) - {""})
            raise ConfigError(f"{KEY}.whole", f"{pattern!r} names no layer of this {type(generator).__name__}"
                                              f"{did_you_mean(pattern, leaves)}")
        overlaps = {name: [t for t in lora if t == name or t.startswith(name + ".") or name.startswith(t + ".")]
                    for name in hits}
        if spec.whole is None and any(overlaps.values()):
            continue  # a default the user's targets took for LoRA: theirs wins
        for name in hits:
            if overlaps[name]:
                raise ConfigError(f"{KEY}.whole", f"{pattern!r} selects {name}, which holds or is the LoRA layer "
                                                  f"{overlaps[name][0]} of targets; name it in one of the two")
            if not any(True for _ in _wrapped_whole(modules[name]).parameters()):
                raise ConfigError(f"{KEY}.whole", f"{pattern!r} selects {name}, which has no weights to train")
            if name not in chosen:
                chosen.append(name)
    return chosen


def resolved(generator: Any, spec: AdapterSpec) -> AdapterSpec:
    """``spec`` with the generator's defaults written out, so an adapter saved today loads on a base
    whose backend later changes its defaults."""
    lora = match_targets(generator, _targets(generator, spec))
    modules = dict(generator.named_modules())
    def overlaps(name: str) -> bool:
        return any(t == name or t.startswith(name + ".") or name.startswith(t + ".") for t in lora)

    whole = [pattern for pattern in _whole(generator, spec)
             if spec.whole is not None or not any(overlaps(name) for name in modules
                                                 if name == pattern or name.endswith("." + pattern))]
    return spec.model_copy(update={"targets": _targets(generator, spec), "whole": whole})


def _targets(generator: Any, spec: AdapterSpec) -> list[str]:
    return list(spec.targets) if spec.targets is not None else list(getattr(generator, "adapter_targets", ()))


def _whole(generator: Any, spec: AdapterSpec) -> list[str]:
    return list(spec.whole) if spec.whole is not None else list(getattr(generator, "adapter_whole", ()))


def attach(generator: Any, spec: AdapterSpec, name: str = DEFAULT) -> list[str]:
    """Inject ``spec``'s LoRA layers into ``generator`` (in place) under ``name``; every other
    parameter is frozen. Returns the adapted layers' names. The adapter starts as a no-op."""
    names = check_spec(generator, spec)
    whole = check_whole(generator, spec, names)
    from peft import LoraConfig, inject_adapter_in_model
    import torch.nn as nn

    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha if spec.alpha is not None else spec.rank,
                        lora_dropout=spec.dropout, target_modules=names, bias="none",
                        modules_to_save=whole or None)
    config._register_custom_module({nn.ConvTranspose2d: _conv_transpose_lora()})
    was_training = generator.training
    with _quiet_peft():
        inject_adapter_in_model(config, generator, adapter_name=name)
    for pname, param in generator.named_parameters():  # peft freezes the rest; say so for every parameter
        param.requires_grad_(_is_adapter_key(pname, name))
    _freeze_statistics(generator)
    generator.train(was_training)
    activate(generator, name)
    return names


def activate(generator: Any, name: str | None) -> None:
    """Generate with adapter ``name`` (None: the base alone). Changes no weights, only which run."""
    for layer in _lora_layers(generator):
        if _is_whole(layer):  # peft's own switch would touch requires_grad of an adapter it may not hold
            layer._disable_adapters = name is None
            layer._active_adapter = [name] if name is not None else []
        elif name is None:
            layer.enable_adapters(False)
        else:
            layer.enable_adapters(True)
            layer._active_adapter = [name]  # set_adapter would also make it trainable: not here


@contextlib.contextmanager
def disabled(generator: Any) -> Iterator[Any]:
    """The base's own output (same bytes as before the adapter was attached), inside the block."""
    layers = _lora_layers(generator)
    states = [(layer, layer.disable_adapters, list(layer.active_adapters)) for layer in layers]
    activate(generator, None)
    try:
        yield generator
    finally:
        for layer, was_disabled, active in states:
            if _is_whole(layer):
                layer._disable_adapters = was_disabled
            else:
                layer.enable_adapters(not was_disabled)
            layer._active_adapter = active


def adapter_state(generator: Any, name: str = DEFAULT) -> dict:
    """The tensors of adapter ``name`` in ``generator.artifact_state()`` (what sampling uses: the EMA
    copy's adapter, say), with the adapter's name taken out of the keys so any name can load them."""
    state = {}
    for key, value in generator.artifact_state().items():
        match = _ADAPTER_KEY.search(key)
        if match and match.group(2) == name:
            state[_ADAPTER_KEY.sub(lambda m: "." + m.group(1), key)] = value
    if not state:
        raise CheckpointError(f"generator has no adapter {name!r}")
    return state


def load_adapter_state(generator: Any, state: dict, name: str = DEFAULT, where: str = "adapter") -> None:
    """Put ``adapter_state``'s tensors into the attached adapter ``name`` (through the generator's own
    ``load_artifact_state``, so an EMA copy gets them too). Missing or extra tensors are refused."""
    current = generator.artifact_state()
    own = {_ADAPTER_KEY.sub(lambda m: "." + m.group(1), k): k for k in current
           if (m := _ADAPTER_KEY.search(k)) and m.group(2) == name}
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CheckpointError(f"{where}: does not fit the base with this adapter spec ({what})")
    for key, value in state.items():
        if tuple(value.shape) != tuple(current[own[key]].shape):
            raise CheckpointError(f"{where}: {key} has shape {tuple(value.shape)}, the adapter "
                                  f"{tuple(current[own[key]].shape)}")
        current[own[key]] = value
    was_training = generator.training
    generator.load_artifact_state(current)
    generator.train(was_training)


def scale_lr(module: Any, spec: AdapterSpec) -> None:
    """Make ``module`` (the generator's ``GeneratorTraining``) train its adapter at ``spec.lr_scale``
    times the learning rates its ``configure_optimizers`` sets.

    Why not the generator's ``lr``: full fine-tuning and an adapter of the same base want different
    rates (a low-rank correction starts at zero and moves a few directions; the whole model moves
    every weight and forgets at a rate LoRA would crawl at), and a config that raised ``lr`` for its
    adapter would raise it for full fine-tuning too. A multiple, not a rate, because a backend may
    hold several (a GAN's generator and discriminator, StyleGAN's lazy-regularisation ratio, a
    text model's groups with and without decay): each param group whose trainable weights are all
    adapter weights is scaled, with its scheduler's base rate, so warm-up and decay keep their
    shape; the discriminator's and any other network's are left alone. A group that mixes adapter
    weights with other trainable weights cannot be scaled and is a ``ConfigError``."""
    if spec.lr_scale == 1:
        return
    configure = module.configure_optimizers
    adapter = {id(p) for key, p in module.generator.named_parameters() if p.requires_grad and _is_adapter_key(key)}

    def configure_optimizers() -> Any:
        configured = configure()
        optimisers, schedulers = _optimisers_and_schedulers(configured)
        scaled = 0
        for opt in optimisers:
            for i, group in enumerate(opt.param_groups):
                trainable = [p for p in group["params"] if p.requires_grad]
                mine = [p for p in trainable if id(p) in adapter]
                if not mine:
                    continue
                if len(mine) < len(trainable):
                    raise ConfigError(f"{KEY}.lr_scale", f"{type(module).__name__} trains adapter weights in one "
                                                         "optimiser group with others; this backend cannot scale "
                                                         "the adapter's learning rate (leave lr_scale at 1)")
                group["lr"] *= spec.lr_scale
                if "initial_lr" in group:  # a scheduler's: the base its schedule multiplies
                    group["initial_lr"] *= spec.lr_scale
                for sched in schedulers:
                    if getattr(sched, "optimizer", None) is opt and hasattr(sched, "base_lrs"):
                        sched.base_lrs[i] *= spec.lr_scale
                scaled += 1
        if not scaled:
            raise ConfigError(f"{KEY}.lr_scale", f"{type(module).__name__} gives no optimiser the adapter's "
                                                 "weights; leave lr_scale at 1")
        return configured

    module.configure_optimizers = configure_optimizers


def _optimisers_and_schedulers(configured: Any) -> tuple[list, list]:
    """Every optimiser and scheduler in what ``configure_optimizers`` may return (Lightning's forms:
    one optimiser, a list, a dict with ``optimizer`` and ``lr_scheduler``, a pair of lists, ...)."""
    import torch

    optimisers: list = []
    schedulers: list = []

    def walk(item: Any) -> None:
        if isinstance(item, torch.optim.Optimizer):
            optimisers.append(item)
        elif isinstance(item, dict):
            for key in ("optimizer", "lr_scheduler", "scheduler"):
                if key in item:
                    walk(item[key])
        elif isinstance(item, (list, tuple)):
            for each in item:
                walk(each)
        elif hasattr(item, "optimizer"):  # a scheduler
            schedulers.append(item)

    walk(configured)
    return optimisers, schedulers


def merge(generator: Any, name: str = DEFAULT) -> Any:
    """Fold adapter ``name`` into the base weights and take every LoRA layer out: a plain generator
    whose ``save_artifact`` writes a standalone model (``aigc export --merge``)."""
    import torch

    with torch.no_grad():
        for layer in _lora_layers(generator):
            if not _is_whole(layer) and name in layer.lora_A.keys():
                _own_weight(generator, layer.get_base_layer())
                layer.merge(adapter_names=[name])
    for qualified, layer in list(_named_lora_layers(generator)):
        parent_name, _, child = qualified.rpartition(".")
        parent = generator.get_submodule(parent_name) if parent_name else generator
        if _is_whole(layer):  # the trained copy replaces the original
            setattr(parent, child, layer.modules_to_save[name] if name in layer.modules_to_save
                    else layer.original_module)
        else:
            setattr(parent, child, layer.get_base_layer())
    for param in generator.parameters():
        param.requires_grad_(True)
    _thaw_statistics(generator)
    return generator


def _own_weight(generator: Any, layer: Any) -> None:
    """Give ``layer`` a weight of its own when another layer shares it: a language model's output
    layer is usually tied to its input embedding, and folding the output's correction into the
    shared tensor would change the input embedding too (the merged model would not make what the
    adapter made). Saving the two apart is the backend's part (``causal-lm`` unties its config)."""
    import torch.nn as nn

    weight = getattr(layer, "weight", None)
    if not isinstance(weight, nn.Parameter):
        return
    holders = sum(1 for _, p in generator.named_parameters(remove_duplicate=False) if p is weight)
    if holders > 1:
        layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)


WEIGHTS = "adapter.safetensors"
META = "adapter.json"


def save_adapter(generator: Any, directory: Any, spec: AdapterSpec, base: dict, name: str = DEFAULT) -> list:
    """A personalised run's ``model/``: the adapter's tensors and what loading needs to rebuild it
    (the spec, the data description, the base it was trained on); never the base's weights."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from ..contract.components import jsonable

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = adapter_state(generator, name)
    weights, meta = directory / WEIGHTS, directory / META
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    spec = resolved(generator, spec)
    meta.write_text(json.dumps({"adapter": spec.model_dump(), "info": jsonable(generator.info), "base": base,
                                "parameters": parameter_count(state)}, indent=2))
    return [weights, meta]


def read_adapter(directory: Any) -> tuple[AdapterSpec, dict, dict]:
    """(spec, data description, tensors) from ``save_adapter``'s files; tensors only, never pickles."""
    import json
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..contract.params import build_params

    directory = Path(directory)
    weights, meta = directory / WEIGHTS, directory / META
    if not weights.is_file() or not meta.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS}/{META} here")
    try:
        record = json.loads(meta.read_text())
        spec = build_params(AdapterSpec, record["adapter"], KEY)
        info = dict(record["info"])
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"{meta}: unreadable adapter record ({exc})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: corrupt or truncated adapter ({exc})") from None
    return spec, info, state


def parameter_count(state: dict) -> int:
    return int(sum(v.numel() for v in state.values()))


# -- helpers ------------------------------------------------------------------------------------
def _wrapped(module: Any) -> Any:
    """The layer a LoRA layer wraps (else ``module``): a layer that already carries one adapter takes
    a second under another name, so the checks look at what it adapts (several adapters, one base)."""
    get = getattr(module, "get_base_layer", None)
    return get() if callable(get) and hasattr(module, "lora_A") else module


def _wrapped_whole(module: Any) -> Any:
    """The layer a trained-whole wrapper holds (else ``module``), for the same reason as ``_wrapped``."""
    return module.original_module if _is_whole(module) else module


def _is_whole(module: Any) -> bool:
    """peft's wrapper of a layer trained whole (``modules_to_save``): an original and a trained copy per adapter."""
    return hasattr(module, "modules_to_save") and hasattr(module, "original_module")


def _stay_in_eval(self: Any, mode: bool = True) -> Any:
    import torch.nn as nn

    return nn.Module.train(self, False)


def _freeze_statistics(generator: Any) -> None:
    """Normalisation layers with running statistics (batch norm) stay in eval mode for good.

    Their running mean and variance are base weights in all but name: in training mode they would
    drift toward the few examples, and the adapter file, which holds only the LoRA tensors, would
    not carry the drift. The model trained would then not be the model loaded (a DCGAN adapted to
    digits sampled noise once reloaded), and the base with its adapter off would no longer give
    its own bytes. Frozen, they normalise with the base's statistics while the adapter trains, as
    when it samples. ``merge`` gives the layers their ordinary ``train`` back."""
    import types

    for module in generator.modules():
        if getattr(module, "track_running_stats", False) and getattr(module, "running_mean", None) is not None:
            module.train = types.MethodType(_stay_in_eval, module)  # outlives the trainer's model.train()
            module.eval()


def _thaw_statistics(generator: Any) -> None:
    for module in generator.modules():
        if getattr(vars(module).get("train"), "__func__", None) is _stay_in_eval:
            del module.train



def _is_adapter_key(key: str, name: str | None = None) -> bool:
    match = _ADAPTER_KEY.search(key)
    return bool(match) and (name is None or match.group(2) == name)


def _named_lora_layers(generator: Any) -> Iterator[tuple[str, Any]]:
    """Every layer an adapter changes: peft's LoRA layers and its wrappers of layers trained whole."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # no adapter was ever attached, or peft is absent: nothing to find
        return
    for qualified, module in generator.named_modules():
        if isinstance(module, LoraLayer) or _is_whole(module):
            yield qualified, module


def _lora_layers(generator: Any) -> list[Any]:
    import sys

    if "peft" not in sys.modules:  # nothing can be attached without peft loaded: keep plain runs light
        return []
    return [module for _, module in _named_lora_layers(generator)]


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft warns that custom layers are experimental and that non-transformers models lack a config:
    both are what aigc means to do, and neither is the user's to act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


_CONV_TRANSPOSE_LORA: type | None = None


def _conv_transpose_lora() -> type:
    """peft's convolution LoRA made to fit ``ConvTranspose2d`` (built once, on first use).

    A transposed convolution's weight is ``(inputs, outputs, kh, kw)``; the correction is a
    product of two transposed convolutions through ``rank`` channels, one with the base's geometry
    (kernel, stride, padding, output padding, so shapes agree) and one 1x1, and its weight is
    ``delta[i, o] = sum_r A[i, r] * B[r, o]``, which is what ``merge`` adds. The kernel goes on the
    side with fewer channels: ``rank * (inputs * kh * kw + outputs)`` parameters with it on ``A``,
    ``rank * (inputs + outputs * kh * kw)`` with it on ``B``. A decoder's transposed convolutions
    narrow (128 -> 64 channels, say), so ``B`` carries it there and the adapter costs about half:
    the difference between a DCGAN adapter within 3% of its base and one over it."""
    global _CONV_TRANSPOSE_LORA
    if _CONV_TRANSPOSE_LORA is not None:
        return _CONV_TRANSPOSE_LORA
    import math

    import torch
    import torch.nn as nn
    from peft.tuners.lora import Conv2d as LoraConv2d

    class LoraConvTranspose2d(LoraConv2d):  # the geometry and bookkeeping of peft's; the weights below
        def __init__(self, base_layer: nn.Module, adapter_name: str, config: Any, **kwargs: Any):
            if base_layer.groups != 1 or tuple(base_layer.dilation) != (1, 1):
                raise ConfigError(f"{KEY}.targets", "LoRA adapts transposed convolutions with groups 1 and "
                                                    "dilation 1 only")
            super().__init__(base_layer, adapter_name, config, **kwargs)

        def _get_in_out_features(self, module: nn.Module) -> tuple[int, int]:
            return module.in_channels, module.out_channels

        def update_layer(self, adapter_name: str, r: int, lora_alpha: float, config: Any, **kwargs: Any) -> None:
            super().update_layer(adapter_name, r, lora_alpha=lora_alpha, config=config, **kwargs)
            base = self.get_base_layer()
            geometry = dict(kernel_size=base.kernel_size, stride=base.stride, padding=base.padding,
                            output_padding=base.output_padding, bias=False)
            if self.out_features < self.in_features:  # the kernel on B: the narrow side
                self.lora_A[adapter_name] = nn.ConvTranspose2d(self.in_features, r, 1, 1, bias=False)
                self.lora_B[adapter_name] = nn.ConvTranspose2d(r, self.out_features, **geometry)
            else:
                self.lora_A[adapter_name] = nn.ConvTranspose2d(self.in_features, r, **geometry)
                self.lora_B[adapter_name] = nn.ConvTranspose2d(r, self.out_features, 1, 1, bias=False)
            nn.init.kaiming_uniform_(self.lora_A[adapter_name].weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B[adapter_name].weight)
            self._move_adapter_to_device_of_base_layer(adapter_name)

        def get_delta_weight(self, adapter: str) -> torch.Tensor:
            a = self.lora_A[adapter].weight  # (inputs, rank, ah, aw)
            b = self.lora_B[adapter].weight  # (rank, outputs, bh, bw): one of the two kernels is 1x1
            if b.shape[2:] == (1, 1):
                delta = torch.einsum("irhw,ro->iohw", a, b[:, :, 0, 0])
            else:
                delta = torch.einsum("ir,rohw->iohw", a[:, :, 0, 0], b)
            return delta * self.scaling[adapter]

        def __repr__(self) -> str:
            return "lora.ConvTranspose2d(" + repr(self.get_base_layer()) + ")"

    _CONV_TRANSPOSE_LORA = LoraConvTranspose2d
    return LoraConvTranspose2d
