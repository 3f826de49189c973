"""`aigc check` refuses a missing, unfinished or mismatched vocoder run (``generator.vocoder``) before
any data is read, and a relative vocoder path means the config file's folder, from any directory."""

from __future__ import annotations

import pytest

from aigc_core import Pipeline
from aigc_core.cli import main


def notes(num_items: int = 24) -> dict:
    return {"source": "synth-notes", "num_items": num_items, "duration": 0.25, "sample_rate": 8000,
            "timbres": ["sine"], "batch_size": 8, "val_fraction": 0.2, "test_fraction": 0.2}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """project/runs/voc: a mel-vocoder run as training leaves it (model/ and its manifest record; the
    weights untrained: check looks at what the run is, not how well it vocodes); project/configs."""
    root = tmp_path_factory.mktemp("project")
    pipe = Pipeline.from_config({
        "name": "voc", "seed": 0, "data": notes(),
        "generator": {"name": "mel-vocoder", "size": "debug", "segment_frames": 8},
        "output": {"dir": str(root / "runs" / "voc")},
    })
    pipe.prepare_run_dir()
    generator = pipe.gen.cls.build(pipe.gen.params, pipe.data_source(), pipe.rundir.preprocess_dir)
    pipe.rundir.save_model(generator.save_artifact)
    pipe._update_manifest()
    (root / "configs").mkdir()
    return root


def vae_config(project, vocoder: str, **generator) -> str:
    from omegaconf import OmegaConf

    path = project / "configs" / "vae.yaml"
    path.write_text(OmegaConf.to_yaml({
        "name": "vae", "data": notes(),
        "generator": {"name": "mel-vae", "size": "debug", "vocoder": vocoder, **generator},
        "output": {"dir": str(project / "runs" / "vae")},
    }))
    return str(path)


def check(capsys, *args) -> tuple[int, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_relative_vocoder_is_found_from_the_configs_folder(project, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the project: runs/voc is not here
    config = vae_config(project, "../runs/voc")
    code, out = check(capsys, config)
    assert code == 0 and out.startswith("ok: vae (audio)"), out
    assert Pipeline.from_config(config).gen.params.vocoder == str(project / "runs" / "voc")


@pytest.mark.parametrize("vocoder,extra,needle", [
    ("../runs/none", {}, "no such directory; train one first"),
    ("../configs", {}, "not a run directory"),
    ("../runs/voc", {"n_mels": 32}, "was trained with n_mels 64 but this generator uses 32"),
])
def test_a_missing_or_mismatched_vocoder_fails_check_naming_the_key(project, capsys, vocoder, extra, needle):
    code, out = check(capsys, vae_config(project, vocoder, **extra))
    assert code == 2 and out.startswith("aigc: error: generator.vocoder: ") and needle in out, out
    assert out.count("\n") == 1
