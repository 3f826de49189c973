"""Hostile and careless input (issue 15): each test replays a reproduction that once lost data or
slipped past validation, and asserts the promise of docs/security.md that it now keeps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_testutil import cli, tiny_gan_config, write_yaml


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what a refusal must leave exactly as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def user_folder(root: Path) -> Path:
    """A folder full of someone's work, with names that collide with aigc's and look like its temporaries."""
    files = {
        "config.yaml": "# my pipeline, with comments aigc must keep\nname: mine\n",
        "notes.txt": "thesis notes",
        ".env.local": "TOKEN=abc",
        ".eslintrc.json": "{}",
        ".bash_history.old": "ls",
        "docs/index.md": "# docs",
        "src/main.py": "print('hi')",
        "outputs/thesis.pdf": "%PDF-1.4",
        "outputs/report.pdf": "%PDF-1.4 report",
        "model/mine.bin": "weights of my own",
        "loss.png": "not a png",
        "manifest.json": json.dumps({"name": "my own manifest", "files": ["a"]}),
        "shard_00000/photo.jpg": "jpeg bytes",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aigc: error: "), err
    assert "Traceback" not in err and "--debug" not in err
    return lines[0]


# --------------------------------------------------------------------------------------------
# Items 1-3: a directory is a run only if aigc marked it; aigc deletes only what it listed


def test_project_folder_as_output_dir_is_refused_and_left_untouched(tmp_path, capsys, monkeypatch):
    """Item 1: ``cd proj && aigc run config.yaml`` with ``output.dir: .`` deleted dotfiles and outputs/."""
    project = user_folder(tmp_path / "proj")
    config = tiny_gan_config(Path("."))
    (project / "config.yaml").write_text("# my pipeline, with comments aigc must keep\n" + json.dumps(config))
    before = snapshot(project)
    monkeypatch.chdir(project)
    for extra in ([], ["--restart"]):
        code, out, err = cli(capsys, "run", "config.yaml", *extra)
        assert code == 2, err
        line = one_line_error(err)
        assert "not an aigc run" in line and "--restart" not in line  # the refusal never steers into a wipe
        assert snapshot(project) == before


def test_restart_on_a_folder_that_is_not_a_run_deletes_nothing(tmp_path, capsys):
    """Items 2 and 3: ``--restart`` on a non-run deleted every file, overwrote loss.png, merged manifest.json."""
    folder = user_folder(tmp_path / "dir")
    config = write_yaml(tmp_path / "tiny.yaml", tiny_gan_config(tmp_path / "elsewhere"))
    before = snapshot(folder)
    code, _, err = cli(capsys, "check", str(config), f"output.dir={folder}")
    assert code == 2 and "not an aigc run" in one_line_error(err)  # check catches it too
    for extra in ([], ["--restart"]):
        code, _, err = cli(capsys, "run", str(config), f"output.dir={folder}", *extra)
        assert code == 2
        line = one_line_error(err)
        assert str(folder) in line and "--restart" not in line
        assert snapshot(folder) == before
    assert not (tmp_path / "elsewhere").exists()


def test_a_run_of_an_older_aigc_is_recognised_and_never_written(trained_run, tmp_path, capsys):
    legacy = tmp_path / "legacy"
    shutil.copytree(trained_run, legacy)
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["format"]
    manifest["config"] = tiny_gan_config(legacy)  # an older aigc kept a copy of the config here
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(legacy)
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(legacy))
    code, _, err = cli(capsys, "run", str(config), "--restart")
    assert code == 2 and "a run of an older aigc" in one_line_error(err)
    assert snapshot(legacy) == before
    code, _, err = cli(capsys, "generate", str(legacy), "-n", "1", "--out", str(tmp_path / "g"))
    assert code == 0, err  # still readable: generating from it deletes nothing


def test_restart_and_rerun_of_a_real_run_touch_only_what_its_manifest_lists(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(run))
    mine = {"notes.txt": "mine", ".env.local": "TOKEN=1", "outputs/mine.txt": "kept", "generated/keep.png": "x"}
    for rel, text in mine.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    stale = run / ".config.yaml.k2j4_x9a.tmp"  # a temporary of atomic_write that a kill left behind
    stale.write_text("half")
    old_outputs = {e["path"] for e in json.loads((run / "manifest.json").read_text())["outputs"]}
    assert "outputs/sample_00005.png" in old_outputs

    # a rerun (resume) that exports fewer samples: the last run's exports go, the user's file stays
    code, _, err = cli(capsys, "run", str(config), "generate.num_samples=2")
    assert code == 0, err
    assert not (run / "outputs" / "sample_00005.png").exists() and (run / "outputs" / "sample_00001.png").is_file()
    assert not stale.exists()

    code, _, err = cli(capsys, "run", str(config), "seed=4", "--restart")
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["format"] == "aigc-run/1" and manifest["training"]["resumed_from"] is None
    assert manifest["seed"] == 4
    for rel, text in mine.items():
        assert (run / rel).read_text() == text, rel


def test_stale_temporaries_are_matched_exactly(tmp_path):
    from aigc_core.store.rundir import RunDir, is_own_temporary

    rd = RunDir(tmp_path / "run")
    rd.create("name: x\n", {})
    theirs = [".env.local", ".eslintrc.json", ".bash_history.old", ".a.b.c", ".config.yaml.old", ".notes.abcdefgh.tmp"]
    ours = [".config.yaml.abcd_123.tmp", ".manifest.json.zz99yy88.tmp", ".loss.x1y2z3w4.png"]
    for name in theirs + ours:
        (rd.path / name).write_text("x")
    (rd.path / ".model.q1w2e3r4").mkdir()
    (rd.path / ".model.old.4242").mkdir()
    (rd.path / ".modelling.notes").mkdir()
    (rd.path / "checkpoints").mkdir()
    (rd.path / "checkpoints" / ".last.ckpt.a1b2c3d4.tmp").write_text("x")
    rd.remove_stale_temporaries()
    left = {p.name for p in rd.path.iterdir()} | {p.name for p in (rd.path / "checkpoints").iterdir()}
    assert set(theirs) | {".modelling.notes"} <= left
    assert not left & (set(ours) | {".model.q1w2e3r4", ".model.old.4242", ".last.ckpt.a1b2c3d4.tmp"})
    assert not is_own_temporary(".env.local", None) and is_own_temporary(".x.abcdefgh.tmp", None)


def test_the_users_config_in_the_run_directory_is_never_rewritten(tmp_path, capsys):
    """Item 1's last clause: config.yaml goes only into a run or a new/empty directory."""
    folder = tmp_path / "here"
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text("# comments\n" + json.dumps(tiny_gan_config(folder)))
    before = config.read_bytes()
    code, _, err = cli(capsys, "run", str(config))
    assert code == 2 and "not an aigc run" in err
    assert config.read_bytes() == before


# --------------------------------------------------------------------------------------------
# Item 4: aigc generate --out


def test_generate_out_onto_a_users_folder_is_refused_unless_overwrite(trained_run, tmp_path, capsys):
    out = tmp_path / "pictures"
    out.mkdir()
    (out / "photo.jpg").write_text("mine")
    (out / "sample_00000.png").write_text("my own file that happens to have aigc's name")
    before = snapshot(out)
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "3", "--out", str(out))
    assert code == 2 and "--overwrite" in one_line_error(err)
    assert snapshot(out) == before

    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "3", "--out", str(out), "--overwrite")
    assert code == 0, err
    assert (out / "photo.jpg").read_text() == "mine"
    assert (out / "sample_00000.png").read_bytes().startswith(b"\x89PNG")  # a name aigc writes: replaced

    again = tmp_path / "again"
    assert cli(capsys, "generate", str(trained_run), "-n", "4", "--out", str(again))[0] == 0
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "2", "--out", str(again))
    assert code == 0, err  # its own earlier output: rewritten, the extra samples it listed removed
    assert sorted(p.name for p in again.glob("sample_*")) == ["sample_00000.png", "sample_00001.png"]


def test_sharded_generation_never_deletes_a_users_shard_folder(trained_run, tmp_path, capsys):
    out = tmp_path / "gen"
    (out / "shard_00000").mkdir(parents=True)
    (out / "shard_00000" / "photo.jpg").write_text("mine")
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, _, err = cli(capsys, "generate", str(trained_run), "-n", "4", "--shard-size", "2", "--devices", "1",
                           "--out", str(out), *extra)
        assert code == 2, err
        one_line_error(err)
        assert snapshot(out) == before


# --------------------------------------------------------------------------------------------
# Item 10: check catches what run refuses, and nothing is written first


BAD_OVERRIDES = [
    ("seed=99999999999999999999999", "seed"),
    ("train.devices=0", "train.devices"),
    ("train.limit_val_batches=nan", "train.limit_val_batches"),
    ("train.check_val_every_n_epoch=0", "train.check_val_every_n_epoch"),
    ("train.precision=bogus", "train.precision"),
    ("generate.num_samples=1000000000", "generate.num_samples"),
    ("generate.seed=-1", "generate.seed"),
]


@pytest.mark.parametrize("override,key", BAD_OVERRIDES)
def test_check_refuses_what_run_would_refuse_and_run_writes_nothing(tmp_path, capsys, override, key):
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(out))
    code, _, err = cli(capsys, "check", str(config), override)
    assert code == 2 and one_line_error(err).startswith(f"aigc: error: {key}: ")
    code, _, err = cli(capsys, "run", str(config), override)
    assert code == 2 and one_line_error(err).startswith(f"aigc: error: {key}: ")
    assert not out.exists()


def test_what_only_lightning_refuses_is_caught_by_check_and_fails_before_any_write(tmp_path, capsys):
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(out))
    code, _, err = cli(capsys, "check", str(config), "train.strategy=nonsense")
    assert code == 2 and one_line_error(err).startswith("aigc: error: train: ")
    code, _, err = cli(capsys, "run", str(config), "train.strategy=nonsense")
    assert code == 2 and one_line_error(err).startswith("aigc: error: train: ")
    assert not out.exists()


def test_a_setting_the_generator_cannot_take_fails_in_one_line_and_leaves_no_run(tmp_path, capsys):
    """Found by the run fuzzer: the GAN optimises manually, so Lightning refuses gradient clipping
    only once the model exists, after the run directory was made."""
    out = tmp_path / "run"
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(out))
    code, _, err = cli(capsys, "run", str(config), "train.gradient_clip_val=0.5")
    assert code == 2 and "gradient clipping" in one_line_error(err)
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", "1e23", "9223372036854775808"])
def test_generate_refuses_seeds_the_server_refuses(trained_run, tmp_path, capsys, seed):
    out = tmp_path / "g"
    code, _, err = cli(capsys, "generate", str(trained_run), "--seed", seed, "--out", str(out))
    assert code == 2 and "--seed" in one_line_error(err)
    assert not out.exists()


def test_generate_refuses_a_huge_unsharded_count(trained_run, tmp_path, capsys):
    code, _, err = cli(capsys, "generate", str(trained_run), "-n", "100000000", "--out", str(tmp_path / "g"))
    assert code == 2 and "--shard-size" in one_line_error(err)
    assert not (tmp_path / "g").exists()


# --------------------------------------------------------------------------------------------
# Item 11: plugins that exit or are misnamed


def _installed_plugin(site: Path, body: str) -> Path:
    """A real distribution on sys.path whose entry point importlib.metadata finds."""
    (site / "exiting_plugin.py").write_text(body)
    info = site / "exiting_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exiting-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[aigc]\nexiting = exiting_plugin\n")
    return site


def test_a_plugin_calling_sys_exit_at_import_is_reported_and_skipped(tmp_path):
    site = _installed_plugin(tmp_path, "import sys\nsys.exit(3)\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("AIGC_LOAD_PLUGINS", None)
    env.pop("AIGC_STRICT_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "aigc_core", "plugins", "list"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "plugin 'exiting' (distribution exiting-plugin) failed to load: SystemExit: 3; skipped" in done.stderr
    assert "dcgan" in done.stdout  # the other plugins keep working


def test_a_misnamed_plugin_in_aigc_load_plugins_is_warned_about(monkeypatch):
    from aigc_core import plugins

    monkeypatch.setenv("AIGC_LOAD_PLUGINS", "nonexistent")
    monkeypatch.delenv("AIGC_STRICT_PLUGINS", raising=False)
    registry = plugins.load_plugins()
    assert any("AIGC_LOAD_PLUGINS names 'nonexistent', which is not an installed plugin" in p
               for p in registry.problems)
    monkeypatch.setenv("AIGC_LOAD_PLUGINS", "gan")
    assert not [p for p in plugins.load_plugins().problems if "AIGC_LOAD_PLUGINS" in p]


# --------------------------------------------------------------------------------------------
# Items 12 and 13


def test_an_override_may_refer_to_other_keys(tmp_path, capsys):
    config = write_yaml(tmp_path / "c.yaml", tiny_gan_config(tmp_path / "run"))
    code, out, err = cli(capsys, "check", str(config), "name=${generator.name}x")
    assert code == 0, err
    assert out.startswith("ok: dcganx ")


def test_a_directory_given_as_the_config_is_named_as_such(tmp_path, capsys):
    code, _, err = cli(capsys, "check", str(tmp_path))
    assert code == 2 and one_line_error(err) == f"aigc: error: {tmp_path}: is a directory; expected a pipeline YAML file"


def test_a_manifest_without_the_checkpoint_record_is_refused(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["checkpoint"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "generate", str(run), "-n", "1", "--out", str(tmp_path / "g"))
    assert code == 1 and "refusing to load weights that cannot be verified" in one_line_error(err)
    assert not (tmp_path / "g").exists()


# --------------------------------------------------------------------------------------------
# Item 9 (last clause): secrets read from the environment stay out of the files aigc writes


def test_values_from_the_environment_are_not_written_in_clear(tmp_path, capsys, monkeypatch):
    from aigc_core import Pipeline

    monkeypatch.setenv("AIGC_RT_SECRET_SIZE", "debug")  # stands in for a token: any string parameter will do
    run = tmp_path / "run"
    config = tiny_gan_config(run)
    config["generator"]["size"] = "${oc.env:AIGC_RT_SECRET_SIZE}"
    config["train"]["sample_every_n_epochs"] = 0
    path = write_yaml(tmp_path / "c.yaml", config)
    pipe = Pipeline.from_config(path)
    pipe.prepare_run_dir()
    assert pipe.gen.params.size == "debug"
    written = (run / "config.yaml").read_text() + (run / "manifest.json").read_text()
    assert "debug" not in written and "${oc.env:AIGC_RT_SECRET_SIZE}" in written
    assert pipe.prepare_run_dir() is True  # the stored, unresolved config still counts as the same run
    monkeypatch.setenv("AIGC_RT_SECRET_SIZE", "small")  # a rotated token: compared as its expression, so resumable
    assert Pipeline.from_config(path).prepare_run_dir() is True
    assert "small" not in (run / "config.yaml").read_text()
