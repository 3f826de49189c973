"""A modality the core never names goes end to end: a test plugin (``point_cloud_plugin``) registers
point clouds through pluggy, and ``aigc run``, ``aigc generate``, ``aigc serve`` (its JSON, its
listing and the web page) and the contract kit handle them; the core has no branch on a
modality's name and no table keyed by one."""

from __future__ import annotations

import ast
import base64
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from aigc_testutil import ROOT, cli, write_yaml
from point_cloud_plugin import NAME, NOTE, PointCloudPlugin, register_point_cloud

POINTS = 16


def cloud_config(out: Path) -> dict:
    return {
        "name": "clouds", "seed": 0,
        "data": {"source": "ring-clouds", "num_items": 32, "num_points": POINTS, "batch_size": 8},
        "generator": {"name": "gaussian-cloud"},
        "train": {"max_epochs": 1, "accelerator": "cpu", "progress_bar": False, "sample_every_n_epochs": 1},
        "generate": {"num_samples": 3},
        "postprocess": [{"name": "center"}],
        "metrics": [],
        "output": {"dir": str(out)},
    }


@pytest.fixture(scope="module")
def cloud_run(tmp_path_factory) -> Path:
    """``aigc run`` of the plugin's pipeline: one epoch on 32 tiny clouds (about a second)."""
    from aigc_core.cli import main

    register_point_cloud()
    base = tmp_path_factory.mktemp("point-cloud")
    assert main(["run", str(write_yaml(base / "clouds.yaml", cloud_config(base / "run")))]) == 0
    return base / "run"


def _points(data: bytes) -> tuple[dict, list[str]]:
    """An .xyz file's provenance header and its point lines."""
    header, *lines = data.decode("utf-8").splitlines()
    assert header.startswith("# aigc ")
    return json.loads(header[len("# aigc "):]), lines


def test_aigc_run_writes_the_modality_files_and_previews(cloud_run):
    outputs = sorted(p.name for p in (cloud_run / "outputs").iterdir())
    assert outputs == ["sample_00000.xyz", "sample_00001.xyz", "sample_00002.xyz"]
    meta, lines = _points((cloud_run / "outputs" / "sample_00001.xyz").read_bytes())
    assert meta["seed"] == 0 and meta["index"] == 1 and meta["generator"] == "gaussian-cloud"
    assert len(lines) == POINTS and all(len(line.split()) == 3 for line in lines)
    centroid = [sum(float(line.split()[k]) for line in lines) / POINTS for k in range(3)]
    assert max(abs(c) for c in centroid) < 1e-5  # the plugin's post-processor ran
    # the training preview: the modality's preview_count items, written as the modality writes them
    assert sorted(p.name for p in (cloud_run / "samples" / "epoch_001").iterdir()) == \
        ["sample_00000.xyz", "sample_00001.xyz"]
    manifest = json.loads((cloud_run / "manifest.json").read_text())
    assert {Path(o["path"]).name if isinstance(o, dict) else Path(o).name
            for o in manifest["outputs"]} >= set(outputs)


@pytest.fixture(scope="module")
def served(cloud_run):
    """The real ``aigc serve`` command over the run, on a free loopback port, in a thread."""
    import uvicorn

    from aigc_core.cli import main

    servers = []
    original = uvicorn.Server.run

    def run(self, *args, **kwargs):
        servers.append(self)
        return original(self, *args, **kwargs)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uvicorn.Server, "run", run)
        thread = threading.Thread(target=main, args=(["serve", f"pc={cloud_run}", "--port", str(port),
                                                      "--log-level", "warning"],), daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not (servers and servers[0].started):
            assert thread.is_alive() and time.monotonic() < deadline, "aigc serve did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    servers[0].should_exit = True
    thread.join(timeout=10)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read())


def _post(url: str, body: dict) -> tuple[bytes, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.read(), dict(reply.headers)


def test_the_listing_tells_the_page_how_to_show_the_modality(served):
    (model,) = _get(served + "/v1/models")["models"]
    assert model["name"] == "pc" and model["modality"] == NAME
    assert model["display"] == {"render": "download", "note": NOTE}
    assert set(model["options"]["properties"]) == {"spread"}


def test_generate_and_serve_give_the_same_clouds(cloud_run, served, tmp_path, capsys):
    code, _, err = cli(capsys, "generate", str(cloud_run), "-n", "2", "--seed", "5", "--out", str(tmp_path / "cli"))
    assert code == 0, err
    by_cli = {p.name: _points(p.read_bytes())[1] for p in sorted((tmp_path / "cli").glob("*.xyz"))}
    assert list(by_cli) == ["sample_00000.xyz", "sample_00001.xyz"]

    body, _ = _post(served + "/v1/models/pc/generate", {"n": 2, "seed": 5})
    reply = json.loads(body)
    assert reply["modality"] == NAME and reply["seed"] == 5
    by_json = {}
    for item in reply["items"]:
        assert item["media_type"] == "text/plain; charset=utf-8"
        meta, by_json[item["filename"]] = _points(base64.b64decode(item["data_base64"]))
        assert meta["seed"] == 5 and meta == item["meta"]  # the file carries what the JSON says
    assert by_json == by_cli  # one encoder: the exporter's files and the server's bytes agree

    data, headers = _post(served + "/v1/models/pc/generate", {"n": 1, "seed": 5, "output": "files"})
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert 'filename="sample_00000.xyz"' in headers["content-disposition"]
    assert _points(data)[1] == by_cli["sample_00000.xyz"]


def test_the_page_shows_the_modality_as_it_asks(served):
    from test_web_page import chromium, open_page

    with chromium() as browser:
        page = open_page(browser, served, 1280)
        page.select_option("#model", "pc")
        page.fill("#n", "2")
        page.fill("#seed", "5")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#gallery figure.file').length === 2")
        links = page.eval_on_selector_all("#gallery a.download", "as => as.map(a => a.download)")
        assert links == ["sample_00000.xyz", "sample_00001.xyz"]
        notes = page.eval_on_selector_all("#gallery .note", "ns => ns.map(n => n.textContent)")
        assert notes == [NOTE, NOTE]
        assert page.locator("#gallery img, #gallery audio").count() == 0
        assert page.outside == []  # the page needs nothing but this server


def test_the_contract_kit_checks_the_modality_with_its_own_rules(tmp_path):
    import numpy as np

    import point_cloud_plugin as plugin
    from aigc_core import Content, Item
    from aigc_core.testing import (ContractFailure, DataSourceContract, GeneratorContract, check_data_source,
                                   check_generator, check_postprocessor, check_registrations, sample_content,
                                   tiny_source)

    register_point_cloud()
    found = check_registrations(PointCloudPlugin())
    assert {(e["kind"], e["name"]) for e in found} >= {("modality", NAME), ("generator", "gaussian-cloud")}
    source = tiny_source(NAME, num_points=8)
    assert source.info["num_points"] == 8 and len(sample_content(NAME, 2).items) == 2
    check_generator(plugin.GaussianCloud, source, workdir=tmp_path / "gen")
    check_postprocessor(plugin.Center, NAME)
    check_data_source(plugin.RingClouds, {"num_items": 16, "num_points": 8, "batch_size": 4})

    class Flat(plugin.GaussianCloud):  # 2-D points: the modality's check, not the core's, says why
        def generate(self, n, seed, options):
            out = super().generate(n, seed, options)
            return Content(NAME, [Item(i.data[:, :2].copy(), i.meta) for i in out.items])

    with pytest.raises(ContractFailure) as info:
        GeneratorContract(Flat, source, workdir=tmp_path / "flat").run(["output"])
    assert "generate() item 0.data has shape (8, 2), expected (N, 3)" in info.value.failures["output"]

    class NoCount(plugin.RingClouds):
        @property
        def info(self):
            return {"num_classes": 2}

    reason = DataSourceContract(NoCount, {"num_items": 16, "num_points": 8})._run_one("info")
    assert reason == "info['num_points'] is None, expected a positive int"
    assert np.asarray(source.split("train")[0][0]).shape == (8, 3)


# -- the core names no modality ------------------------------------------------------------------


def _core_modules():
    for path in sorted((ROOT / "aigc_core").rglob("*.py")):
        if "builtin" not in path.relative_to(ROOT / "aigc_core").parts:
            yield path, ast.parse(path.read_text(), str(path))


def _mentions_modality(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return "modality" in name


def test_the_core_has_no_branch_on_a_modality_name_and_no_table_keyed_by_one():
    """Outside the built-in plugin, no ``modality == "image"`` (or ``!=``, ``in (...)``) and no dict
    whose keys are modality names: everything asks the registered Modality."""
    from aigc_core import MODALITIES

    found = []
    for path, tree in _core_modules():
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Compare) and any(map(_mentions_modality, [node.left, *node.comparators])):
                for side in [node.left, *node.comparators]:
                    constants = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    if any(isinstance(c, ast.Constant) and c.value in MODALITIES for c in constants):
                        found.append(f"{where}: compares a modality with a name")
            keys = [k.value if isinstance(k, ast.Constant) else None for k in getattr(node, "keys", [])]
            if isinstance(node, ast.Dict) and len(keys) >= 2 and all(k in MODALITIES for k in keys):
                found.append(f"{where}: a table keyed by modality names")  # ({"text": piece} is no table)
    assert not found, found
