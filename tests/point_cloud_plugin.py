"""A plugin that adds a modality the core has never heard of: point clouds (N x 3 float32 points).

It brings everything a modality needs (``PointCloud``: checks, ``.xyz`` encoding, the page's
display hint, sample data for the contract kit), a data source of noisy rings, a generator that
learns a Gaussian per point, a post-processor and an exporter, all through the ordinary hooks.
``tests/test_new_modality.py`` drives it through ``aigc run``, ``aigc generate``, the server, the
web page and the contract kit with no line of the core naming it.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import numpy as np

from aigc_core import Content, Field, InvalidItem, Item, Modality, Params, hookimpl

NAME = "point-cloud"
NOTE = "a point cloud: one 'x y z' line per point"


def _need(condition: bool, reason: str) -> None:
    if not condition:
        raise InvalidItem(reason)


class PointCloud(Modality):
    suffix = ".xyz"
    media_type = "text/plain; charset=utf-8"
    preview_count = 2
    display = {"render": "download", "note": NOTE}

    def encode(self, item: Item, meta: Mapping[str, Any]) -> bytes:
        lines = ["# aigc " + json.dumps(dict(meta), sort_keys=True)]
        lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(item.data, np.float64).tolist()]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def check_item(self, item: Item, where: str, info: Mapping | None = None) -> None:
        data = item.data
        _need(isinstance(data, np.ndarray) and data.dtype == np.float32,
              f"{where}.data is {type(data).__name__}, point clouds are float32 numpy arrays")
        _need(data.ndim == 2 and data.shape[1] == 3, f"{where}.data has shape {data.shape}, expected (N, 3)")
        _need(bool(np.isfinite(data).all()), f"{where}.data has NaN or infinite points")
        expected = (info or {}).get("num_points")
        if expected is not None:
            _need(data.shape[0] == expected, f"{where}.data has {data.shape[0]} points, the data's info says {expected}")

    def check_raw(self, raw: Any, where: str, info: Mapping) -> None:
        _need(isinstance(raw, (tuple, list)) and len(raw) == 2, f"{where} must be (points, label)")
        shape = tuple(raw[0].shape)
        _need(shape == (info.get("num_points"), 3), f"{where} has shape {shape}, expected ({info.get('num_points')}, 3)")

    def check_info(self, info: Mapping) -> None:
        count = info.get("num_points")
        _need(isinstance(count, int) and count > 0, f"info['num_points'] is {count!r}, expected a positive int")

    def sample_content(self, n: int, seed: int) -> Content:
        rng = np.random.default_rng(seed)
        clouds = [(rng.standard_normal((8, 3)) * 0.1 + i).astype(np.float32) for i in range(n)]
        return Content(NAME, [Item(c, {"index": i, "seed": seed}) for i, c in enumerate(clouds)])

    def tiny_items(self, n: int, seed: int, info: Mapping) -> list:
        return [(ring(int(info.get("num_points", 8)), i, seed), i % 2) for i in range(n)]

    def tiny_info(self, info: Mapping) -> dict:
        return {"num_points": int(info.get("num_points", 8))}


def ring(points: int, index: int, seed: int):
    """A noisy horizontal ring: radius and height depend on the item's class, noise on the seed."""
    import torch

    g = torch.Generator().manual_seed(seed * 1000 + index)
    t = torch.arange(points) * (2 * math.pi / points)
    radius, height = 0.5 + 0.25 * (index % 2), 0.1 * (index % 3)
    ring = torch.stack([radius * torch.cos(t), radius * torch.sin(t), torch.full_like(t, height)], dim=1)
    return ring + 0.02 * torch.randn(points, 3, generator=g)


class CloudOptions(Params):
    spread: float = Field(1.0, ge=0, le=10, description="scale of each point's learnt noise")


class CenterParams(Params):
    pass


def _classes():
    # Imported lazily: the bases pull in torch and Lightning.
    import torch
    from torch import nn

    from aigc_core import DataParams, Generator, PostProcessor, sample_seed
    from aigc_core.contract.components import InMemorySource

    class RingParams(DataParams):
        num_items: int = Field(32, ge=4, description="clouds to make")
        num_points: int = Field(16, ge=1, description="points per cloud")

    class RingClouds(InMemorySource):
        modality = NAME
        Params = RingParams

        def load(self):
            p = self.params
            data = torch.stack([ring(p.num_points, i, self.seed) for i in range(p.num_items)])
            return data, torch.arange(p.num_items) % 2, ["small", "large"]

        @property
        def info(self) -> dict:
            return {"num_points": self.params.num_points, "num_classes": 2, "classes": ["small", "large"]}

    class CloudParams(Params):
        lr: float = Field(0.05, gt=0, description="Adam learning rate")

    class GaussianCloud(Generator):
        """A Gaussian per point coordinate, fitted by maximum likelihood."""

        modality = NAME
        Params = CloudParams
        GenerateOptions = CloudOptions
        training = f"{__name__}:GaussianCloudTraining"

        def __init__(self, params, info):
            super().__init__(params, info)
            self.mean = nn.Parameter(torch.zeros(int(info["num_points"]), 3))
            self.log_std = nn.Parameter(torch.full((int(info["num_points"]), 3), -1.0))

        def generate(self, n: int, seed: int, options: CloudOptions) -> Content:
            items = []
            for i in range(n):
                g = torch.Generator().manual_seed(sample_seed(seed, i))
                noise = torch.randn(self.mean.shape, generator=g)
                points = self.mean + options.spread * self.log_std.exp() * noise
                items.append(Item(points.numpy().astype(np.float32), {"index": i, "seed": seed}))
            return Content(NAME, items)

    class Center(PostProcessor):
        """Moves each cloud's centroid to the origin."""

        Params = CenterParams

        def __call__(self, content: Content) -> Content:
            out = []
            for item in content.items:
                meta = dict(item.meta)
                meta["postprocess"] = list(meta.get("postprocess", [])) + [{"name": "center"}]
                out.append(Item((item.data - item.data.mean(axis=0)).astype(np.float32), meta))
            return content.replace(out)

    return {"RingClouds": RingClouds, "GaussianCloud": GaussianCloud, "Center": Center}


def _training_classes():
    """The LightningModule that trains the cloud generator: only `aigc run` asks for it."""
    import torch

    from aigc_core import GeneratorTraining

    class GaussianCloudTraining(GeneratorTraining):
        def training_step(self, batch, batch_idx):
            cloud = self.generator
            z = (batch[0] - cloud.mean) / cloud.log_std.exp()
            loss = (0.5 * z ** 2 + cloud.log_std).mean()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.params.lr)

    return {"GaussianCloudTraining": GaussianCloudTraining}


def __getattr__(name: str) -> Any:
    if name in ("RingClouds", "GaussianCloud", "Center"):
        globals().update(_classes())
        return globals()[name]
    if name == "GaussianCloudTraining":
        globals().update(_training_classes())
        return globals()[name]
    raise AttributeError(name)


class PointCloudPlugin:
    """The pluggy plugin object: targets are strings, so registering imports no torch."""

    @hookimpl
    def aigc_register_modalities(self, register):
        register(NAME, "point_cloud_plugin:PointCloud", description="numpy.float32 array of shape (N, 3)")

    @hookimpl
    def aigc_register_data_sources(self, register):
        register("ring-clouds", "point_cloud_plugin:RingClouds", modality=NAME,
                 description="Test-only: noisy rings of points, two sizes")

    @hookimpl
    def aigc_register_generators(self, register):
        register("gaussian-cloud", "point_cloud_plugin:GaussianCloud", modality=NAME,
                 description="Test-only: a Gaussian per point")

    @hookimpl
    def aigc_register_postprocessors(self, register):
        register("center", "point_cloud_plugin:Center", modality=NAME, description="Test-only: centroid to the origin")

    @hookimpl
    def aigc_register_exporters(self, register):
        register(NAME, "aigc_core:FileExporter", modality=NAME, description="One .xyz file per cloud")


def register_point_cloud(registry: Any = None) -> None:
    """Add the plugin to ``registry`` (default: the process-wide one), as discovery would."""
    from aigc_testutil import register_test_plugin

    register_test_plugin(PointCloudPlugin(), "point-cloud", registry)
