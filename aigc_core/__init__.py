"""aigc: from raw data to finished content in one configured pipeline.

The public API for plugins and users. Names that need torch (``DataSource``, ``Generator``,
``DataParams``) or pydantic (``Params``, ``Field``, the component bases) are imported on first
access, so ``import aigc_core`` and plugin discovery stay light.
"""

from __future__ import annotations

from typing import Any

from .contract.atomic import atomic_path, atomic_write, sha256_file, write_bytes, write_json, write_text
from .contract.cancel import Cancelled, CancelToken, cancellation, check_cancelled
from .contract.content import MODALITIES, Content, Item
from .contract.modalities import InvalidItem, Modality, get_modality, known_modalities
from .contract.errors import AigcError, CheckpointError, ConfigError, DataError, Interrupted, PluginError, QualityGateError, UsageError
from .hookspecs import hookimpl, hookspec
from .plugins import get_registry
from .contract.progress import phase, progress_reporting, report_progress
from .store.rundir import RunDir
from .contract.seeding import sample_normal, sample_seed, torch_generator

__version__ = "0.1.0"
#: The plugin API this core provides; plugins declare the major version they target.
PLUGIN_API_VERSION = "4.0"

_LAZY = {
    "DataSource": "aigc_core.contract.components",
    "Generator": "aigc_core.contract.components",
    "DataParams": "aigc_core.contract.components",
    "split_indices": "aigc_core.contract.components",
    "GeneratorTraining": "aigc_core.contract.training_module",
    "Pipeline": "aigc_core.orchestration.pipeline",
    "Component": "aigc_core.contract.base",
    "Exporter": "aigc_core.contract.base",
    "Metric": "aigc_core.contract.base",
    "MetricContext": "aigc_core.contract.base",
    "PostProcessor": "aigc_core.contract.base",
    "NoParams": "aigc_core.contract.params",
    "Params": "aigc_core.contract.params",
    "ParamError": "aigc_core.contract.params",
    "Field": "aigc_core.contract.params",
    "FileContent": "aigc_core.contract.fileoptions",
    "FileField": "aigc_core.contract.fileoptions",
    "field_validator": "aigc_core.contract.params",
    "model_validator": "aigc_core.contract.params",
    "preset": "aigc_core.contract.params",
    "Inference": "aigc_core.generation.inference",
    "Run": "aigc_core.orchestration.run",
    "FileExporter": "aigc_core.builtin.exporters",
    "PathField": "aigc_core.contract.preflight",
    "CheckContext": "aigc_core.contract.preflight",
    # shared helpers plugins use (numpy): one implementation, imported on first use
    "frechet_distance": "aigc_core.helpers.frechet",
    "make_grid": "aigc_core.helpers.imaging",
    "png_bytes": "aigc_core.helpers.imaging",
    "cache_path": "aigc_core.helpers.classifier_cache",
    "cached_model": "aigc_core.helpers.classifier_cache",
    "data_identity": "aigc_core.helpers.classifier_cache",
    # pretrained bases named by a folder or a hub id (standard library until a hub id is looked up)
    "hub_offline": "aigc_core.helpers.hub",
    "hub_offline_mode": "aigc_core.helpers.hub",
    "resolve_pretrained": "aigc_core.helpers.hub",
    "pretrained_record": "aigc_core.helpers.hub",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aigc_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AigcError", "CancelToken", "Cancelled", "CheckpointError", "Component", "ConfigError", "Content", "DataError",
    "Interrupted",
    "DataParams", "DataSource", "Exporter", "FileExporter", "Generator", "GeneratorTraining", "Inference", "InvalidItem", "Item",
    "MODALITIES", "Metric", "Modality", "get_modality",
    "MetricContext", "NoParams", "PLUGIN_API_VERSION", "ParamError", "Params", "Pipeline", "PluginError",
    "Field", "FileContent", "FileField", "field_validator", "model_validator", "preset",
    "PostProcessor", "QualityGateError", "Run", "RunDir", "UsageError", "atomic_path", "atomic_write", "cache_path", "cached_model", "data_identity", "frechet_distance", "get_registry", "hub_offline", "hub_offline_mode", "hookimpl", "hookspec", "known_modalities", "make_grid", "png_bytes",
    "phase", "pretrained_record", "progress_reporting", "report_progress", "resolve_pretrained", "PathField", "CheckContext",
    "cancellation", "check_cancelled", "sample_normal", "sample_seed", "sha256_file", "split_indices", "torch_generator", "write_bytes",
    "write_json", "write_text",
]
