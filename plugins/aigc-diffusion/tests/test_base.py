"""``generator.base`` for ddpm: a diffusers folder (pipeline or bare UNet2DModel) or a hub id.

The bases are made here, tiny (8x8, one channel), with diffusers' own ``save_pretrained``, so
the tests read what users' tools write. Nothing touches the network: the fixture ``no_network``
makes any socket use fail the test, which is how "offline fails fast" is checked without timing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from aigc_core import ConfigError
from aigc_core.store.config import build_params
from aigc_core.testing import hub_out_of_reach, refuse_unpickling, refused_network
from aigc_diffusion import denoiser
from aigc_diffusion.model import DDPM
from aigc_core.testing import generate

INFO = {"shape": [1, 8, 8], "num_classes": 2}


def params(**values):
    return build_params(DDPM.Params, values, "generator")


def tiny_unet(**changes):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    config = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                  norm_num_groups=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)
    return UNet2DModel(**{**config, **changes})


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    """What ``DDPMPipeline.save_pretrained`` writes: model_index.json, unet/, scheduler/."""
    from diffusers import DDPMPipeline, DDPMScheduler

    folder = tmp_path_factory.mktemp("base") / "ddpm-tiny"
    scheduler = DDPMScheduler(num_train_timesteps=50, beta_schedule="linear", prediction_type="epsilon")
    DDPMPipeline(unet=tiny_unet(), scheduler=scheduler).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def unet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base") / "unet-tiny"
    tiny_unet().save_pretrained(str(folder))
    return folder


@pytest.fixture
def no_network(monkeypatch):
    yield from refused_network(monkeypatch)


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache, read where huggingface_hub reads it (at each call)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "hf-cache"


def test_pipeline_folder_loads_with_its_unet_and_schedule_and_generates(pipeline_dir, no_network):
    from safetensors.torch import load_file

    model = DDPM.load_base(str(pipeline_dir), params(), INFO)
    saved = load_file(str(pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert torch.equal(model.unet.conv_in.weight, saved["conv_in.weight"])
    assert torch.equal(model.unet_ema.conv_in.weight, saved["conv_in.weight"])  # EMA starts at the base
    # the schedule the base was trained with, not this config's defaults (1000 steps, cosine)
    assert model.noise_scheduler.config.num_train_timesteps == 50
    assert model.noise_scheduler.config.beta_schedule == "linear"
    assert model.num_classes == 0  # an unconditional base stays unconditional (labels ignored)
    content = generate(model, 3, seed=1, num_inference_steps=2, batch_size=2)
    images = np.stack([item.data for item in content.items])
    assert images.shape == (3, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert "label" not in content.items[0].meta
    again = generate(model, 1, seed=1, num_inference_steps=2, batch_size=2)
    assert again.items[0].data.tobytes() == content.items[0].data.tobytes()
    assert model.adapter_targets == denoiser.ADAPTER_TARGETS + denoiser.ATTENTION_TARGETS  # it has attention


def test_ddpm_training_fine_tunes_a_native_base(pipeline_dir, no_network):
    """The training module needs nothing new for a native base: labelled data and an
    unconditional base train unconditionally, the loss is finite and the weights move."""
    import pytorch_lightning as pl

    from aigc_core.train.training import quiet_lightning
    from aigc_diffusion.training import DDPMTraining

    model = DDPM.load_base(str(pipeline_dir), params(lr=1e-2), INFO)
    before = model.unet.conv_in.weight.detach().clone()
    quiet_lightning()
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    trainer = pl.Trainer(max_steps=2, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(DDPMTraining(model), train_dataloaders=loader)
    assert torch.isfinite(trainer.callback_metrics["loss"])
    assert not torch.equal(model.unet.conv_in.weight, before)


def test_without_data_info_the_base_says_what_it_makes(pipeline_dir, tmp_path, no_network):
    """A finished personalised run loads its base with info None: the same net as in training."""
    model = DDPM.load_base(str(pipeline_dir), params(), None)
    assert model.info["shape"] == [1, 8, 8] and model.num_classes == 0
    trained = DDPM.load_base(str(pipeline_dir), params(), INFO)
    a = generate(model, 1, seed=2, num_inference_steps=2, batch_size=2).items[0].data
    assert a.tobytes() == generate(trained, 1, seed=2, num_inference_steps=2, batch_size=2).items[0].data.tobytes()
    tiny_unet(num_class_embeds=3).save_pretrained(str(tmp_path / "cond"))
    assert DDPM.load_base(str(tmp_path / "cond"), params(), None).num_classes == 2


def test_bare_unet_folder_takes_the_schedule_from_the_config(unet_dir, no_network):
    model = DDPM.load_base(str(unet_dir), params(num_train_timesteps=40, beta_schedule="linear"), INFO)
    assert model.noise_scheduler.config.num_train_timesteps == 40
    assert len(generate(model, 2, seed=0, num_inference_steps=2, batch_size=2).items) == 2


def test_a_run_fine_tuned_from_a_base_loads_its_own_artifact(pipeline_dir, tmp_path, no_network):
    """model.json carries the base's U-Net and schedule configs: the artifact rebuilds the same
    net without the base, and generates the same bytes."""
    model = DDPM.load_base(str(pipeline_dir), params(), INFO)
    with torch.no_grad():
        model.unet_ema.conv_out.bias.add_(0.1)  # as if trained: the artifact's weights, not the base's
    model.save_artifact(tmp_path / "model")
    loaded = DDPM.load_artifact(tmp_path / "model", params())
    a = generate(model, 2, seed=3, num_inference_steps=2, batch_size=2)
    b = generate(loaded, 2, seed=3, num_inference_steps=2, batch_size=2)
    assert [i.data.tobytes() for i in a.items] == [i.data.tobytes() for i in b.items]
    assert loaded.noise_scheduler.config.num_train_timesteps == 50
    assert list(loaded.unet.config.block_out_channels) == [8, 16]  # the base's U-Net, not the preset size's
    assert "AttnDownBlock2D" in loaded.unet.config.down_block_types


def test_class_conditional_base_of_aigcs_layout_conditions_on_the_data_labels(tmp_path, no_network):
    tiny_unet(num_class_embeds=3).save_pretrained(str(tmp_path / "cond"))  # 2 classes + the null class
    model = DDPM.load_base(str(tmp_path / "cond"), params(), INFO)
    assert model.num_classes == 2
    content = generate(model, 2, seed=0, num_inference_steps=2, batch_size=2)
    assert [item.meta["label"] for item in content.items] == [0, 1]
    with pytest.raises(ConfigError, match=r"^generator\.base: .*conditioned on 2 classes .* the data has 10 classes$"):
        DDPM.load_base(str(tmp_path / "cond"), params(), {**INFO, "num_classes": 10})


@pytest.mark.parametrize("info, message", [
    ({"shape": [1, 16, 16]}, r"was trained on 8x8 images, the data gives 16x16 \(set data.image_size to 8\)"),
    ({"shape": [3, 8, 8]}, r"makes 1-channel images, the data has 3 channel\(s\)"),
])
def test_a_base_that_does_not_fit_the_data_is_one_line(pipeline_dir, no_network, info, message):
    with pytest.raises(ConfigError, match=rf"^generator\.base: .*ddpm-tiny: its U-Net {message}$"):
        DDPM.load_base(str(pipeline_dir), params(), info)


def test_keys_the_base_fixes_are_refused_when_set(pipeline_dir, no_network):
    with pytest.raises(ConfigError, match=r"^generator\.size: the base's U-Net is used as it is"):
        DDPM.load_base(str(pipeline_dir), params(size="small"), INFO)
    with pytest.raises(ConfigError, match=r"^generator\.beta_schedule: 'squaredcos_cap_v2', but the base was trained "
                                          r"with 'linear'"):
        DDPM.load_base(str(pipeline_dir), params(beta_schedule="squaredcos_cap_v2"), INFO)


def test_missing_folder_and_non_diffusers_folder(tmp_path, no_network):
    with pytest.raises(ConfigError, match=r"^generator\.base: .*nope: no such model directory$"):
        DDPM.load_base(str(tmp_path / "nope"), params(), INFO)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^generator\.base: .*empty: not a model directory "
                                          r"\(no model_index.json or config.json\)$"):
        DDPM.load_base(str(tmp_path / "empty"), params(), INFO)


def test_a_pickle_only_folder_is_refused_and_never_unpickled(tmp_path, monkeypatch, no_network):
    folder = tmp_path / "pickled"
    tiny_unet().save_pretrained(str(folder), safe_serialization=False)
    assert (folder / "diffusion_pytorch_model.bin").is_file()
    refuse_unpickling(monkeypatch)
    with pytest.raises(ConfigError, match=r"^generator\.base: .*pickled: no safetensors weights in pickled/ "
                                          r"\(aigc never loads pickled \.bin checkpoints"):
        DDPM.load_base(str(folder), params(), INFO)


@pytest.mark.parametrize("base, name, config, class_name, message", [
    ("unet_dir", "other", "config.json", "UNet2DConditionModel",
     r"holds a UNet2DConditionModel; ddpm starts from a UNet2DModel"),
    ("pipeline_dir", "sde", "scheduler/scheduler_config.json", "ScoreSdeVeScheduler",
     r"its scheduler is a ScoreSdeVeScheduler, not a DDPM noise schedule"),
], ids=["another-model-class", "a-scheduler-of-another-process"])
def test_a_base_of_another_class_is_named(request, tmp_path, no_network, base, name, config, class_name, message):
    """A diffusers folder whose model or scheduler is of another class is refused, naming that class."""
    folder = tmp_path / name
    shutil.copytree(request.getfixturevalue(base), folder)
    path = folder / config
    path.write_text(json.dumps({**json.loads(path.read_text()), "_class_name": class_name}))
    with pytest.raises(ConfigError, match=rf"^generator\.base: .*{name}: {message}"):
        DDPM.load_base(str(folder), params(), INFO)


@pytest.mark.parametrize("offline_env", [True, False])
def test_hub_id_offline_fails_at_once_without_the_network(monkeypatch, empty_cache, no_network, offline_env):
    """With HF_HUB_OFFLINE, and without it when the hub does not answer (the probe's connection is
    refused here): one line naming generator.base; ``no_network`` proves nothing else was tried."""
    hub_out_of_reach(monkeypatch, by_env=offline_env)
    with pytest.raises(ConfigError, match=r"^generator\.base: 'aigc-test/no-such-ddpm' is not a local folder and the "
                                          r"Hugging Face hub cannot be reached \(offline\)"):
        DDPM.load_base("aigc-test/no-such-ddpm", params(), INFO)
    assert no_network == []


def test_hub_id_in_the_cache_loads_offline_and_records_its_revision(monkeypatch, pipeline_dir, empty_cache,
                                                                    no_network):
    """A hub id downloaded before loads offline from the cache; the manifest's record names the
    cached commit and the weights' sha256, the same as the folder's."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_cache / "models--aigc-test--ddpm-tiny"
    shutil.copytree(pipeline_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = DDPM.load_base("aigc-test/ddpm-tiny", params(), INFO)
    assert model.noise_scheduler.config.num_train_timesteps == 50
    record = DDPM.base_record("aigc-test/ddpm-tiny")
    assert record["kind"] == "pretrained" and record["id"] == "aigc-test/ddpm-tiny"
    assert record["revision"] == commit
    assert record["sha256"] == DDPM.base_record(str(pipeline_dir))["sha256"]


def test_base_record_of_a_folder_is_the_sha256_of_its_weights(pipeline_dir, tmp_path):
    record = DDPM.base_record(str(pipeline_dir))
    assert record["id"] == str(pipeline_dir.resolve())
    assert record["weights"] == ["unet/diffusion_pytorch_model.safetensors"]
    copy = tmp_path / "copy"
    shutil.copytree(pipeline_dir, copy)
    config = json.loads((copy / "unet" / "config.json").read_text())
    (copy / "unet" / "config.json").write_text(json.dumps({**config, "_diffusers_version": "0.0.1"}))
    assert DDPM.base_record(str(copy))["sha256"] == record["sha256"]  # configs rewritten: the same base
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert DDPM.base_record(str(copy))["sha256"] != record["sha256"]


def test_hub_id_not_in_the_cache_records_only_its_id(empty_cache):
    assert DDPM.base_record("aigc-test/not-cached") == {"kind": "pretrained", "id": "aigc-test/not-cached",
                                                        "revision": None}
