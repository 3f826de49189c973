"""The run directory: the one place that knows its layout, reads and writes its manifest, and deletes.

Why one owner: a directory is aigc's to change only if aigc made it, and that judgement must not
be spread over the pipeline, training and generation. The rule, in full:

* A directory is a run only if its ``manifest.json`` carries ``"format": "aigc-run/1"``, which
  aigc writes first, into a directory that was new or empty.
* aigc deletes or overwrites only what that manifest lists: the files and directories under
  ``"owns"`` (written with the marker) and the exported files under ``"outputs"``, plus its own
  temporary names (see ``is_own_temporary``), matched exactly.
* A non-empty directory that is not a run is refused, whatever the flags.

Directories aigc writes generated content into (``aigc generate --out``) follow the same rule
through ``OutputDir``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..contract.atomic import sha256_file, write_json, write_text
from ..contract.errors import AigcError, UsageError

FORMAT = "aigc-run/1"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
#: The checkpoint a resume starts from, inside ``CHECKPOINT_DIR``.
CHECKPOINT_FILE = "last.ckpt"
OUTPUTS_DIR = "outputs"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
PREPROCESS_DIR = "preprocess"
LOSS_PLOT = "loss.png"
GENERATED_DIR = "generated"
#: The manifest's keys that this module reads and writes for others.
CHECKPOINT_KEY = "checkpoint"  # the model artifact: {"dir": "model", "files": {name: sha256}}
CHECKPOINTS_KEY = "checkpoints"  # Lightning checkpoints: {name: {"sha256", "accept": [...]}}
#: What aigc creates in a run; written into the manifest as ``"owns"`` (a trailing "/" marks a
#: directory aigc created and fills). Exported files are listed one by one under ``"outputs"``.
OWNED = (CONFIG_FILE, MANIFEST_FILE, LOSS_PLOT, f"{CHECKPOINT_DIR}/", f"{LOGS_DIR}/", f"{SAMPLES_DIR}/",
         f"{PREPROCESS_DIR}/", f"{MODEL_DIR}/")
#: Keys every manifest of an older aigc (no format marker) carried once its run had finished.
LEGACY_KEYS = ("name", "modality", "config", "versions")

#: ``tempfile.mkstemp``'s random part: 8 characters of this alphabet.
_RANDOM = r"[a-z0-9_]{8}"
#: The model directory is filled under ``.model.XXXXXXXX`` and swapped with ``.model.old.PID``.
_MODEL_TEMPORARY = re.compile(rf"^\.{MODEL_DIR}\.(?:{_RANDOM}|old\.\d+)$")

NEW, EMPTY, RUN, LEGACY, FOREIGN = "new", "empty", "run", "legacy", "foreign"


def is_own_temporary(name: str, targets: Iterable[str] | None) -> bool:
    """Whether ``name`` is a temporary of ``aigc_core.contract.atomic`` for one of ``targets``.

    ``atomic_write`` names ``.NAME.XXXXXXXX.tmp`` and ``atomic_path`` ``.STEM.XXXXXXXX.SUFFIX``
    beside ``NAME = STEM.SUFFIX``. ``targets=None`` accepts any target (inside a directory aigc
    created itself); otherwise the target must be one of the listed names.
    """
    match = re.fullmatch(rf"\.(.+)\.({_RANDOM})(\.[^.]+)", name)
    if match is None:
        return False
    stem, _, suffix = match.groups()
    candidates = {stem} if suffix == ".tmp" else set()
    candidates.add(stem + suffix)
    return targets is None or bool(candidates & set(targets))


def read_json_dict(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunDir:
    """One run directory: ``state()`` says whether aigc may write there; every change goes through here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- layout ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def outputs_dir(self) -> Path:
        return self.path / OUTPUTS_DIR

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES_DIR

    @property
    def preprocess_dir(self) -> Path:
        return self.path / PREPROCESS_DIR

    @property
    def generated_dir(self) -> Path:
        """Where ``aigc generate`` writes without ``--out``."""
        return self.path / GENERATED_DIR

    # -- what the directory is ------------------------------------------------------------------
    def state(self) -> str:
        """``new`` (absent), ``empty``, ``run`` (aigc's marker), ``legacy`` (an older aigc's run) or ``foreign``."""
        if not self.path.exists():
            return NEW
        if not self.path.is_dir():
            return FOREIGN
        try:
            if not any(self.path.iterdir()):
                return EMPTY
        except OSError:
            return FOREIGN
        manifest = read_json_dict(self.manifest_path)
        if manifest is not None and manifest.get("format") == FORMAT:
            return RUN
        if (manifest is not None and self.config_path.is_file() and all(k in manifest for k in LEGACY_KEYS)
                and isinstance(manifest.get("config"), dict)):
            return LEGACY
        return FOREIGN

    def recorded_generator(self) -> str | None:
        """The generator the manifest says trained this run (runs made before the config lived only
        in ``config.yaml`` kept a copy of it in the manifest)."""
        manifest = self.manifest()
        name = manifest.get("generator")
        if isinstance(name, str):
            return name
        return ((manifest.get("config") or {}).get("generator") or {}).get("name")

    def refuse_unless_writable(self) -> str:
        """The state, or a one-line UsageError where aigc must not write (no advice to wipe anything)."""
        try:
            state = self.state()
        except (OSError, ValueError) as exc:  # a NUL in the name, a path too long...
            raise UsageError(f"{str(self.path)!r}: not a usable directory name ({exc})") from None
        if state == FOREIGN:
            raise UsageError(
                f"{self.path}: not empty and not an aigc run (no {MANIFEST_FILE} with \"format\": \"{FORMAT}\"); "
                "aigc writes a run only into a new or empty directory: set output.dir to one"
            )
        if state == LEGACY:
            raise UsageError(
                f"{self.path}: a run of an older aigc (its {MANIFEST_FILE} has no \"format\" key); 'aigc generate' "
                "still reads it, but a run will not write into it: set output.dir to a new directory"
            )
        return state

    # -- the manifest ---------------------------------------------------------------------------
    def manifest(self) -> dict:
        return read_json_dict(self.manifest_path) or {}

    def write_manifest(self, manifest: Mapping) -> dict:
        data = {"format": FORMAT, **{k: v for k, v in manifest.items() if k != "format"}}
        write_json(self.manifest_path, data)
        return data

    def update_manifest(self, values: Mapping[str, Any], merge: Mapping[str, Any] = ()) -> dict:
        """Set ``values``; merge the dicts of ``merge`` into what is there (read, change, atomic rename)."""
        manifest = self.manifest()
        manifest.update(values)
        for key, value in dict(merge).items():
            if isinstance(value, dict) and isinstance(manifest.get(key), dict):
                manifest[key] = {**manifest[key], **value}
            else:
                manifest[key] = value
        return self.write_manifest(manifest)

    def create(self, config_text: str, manifest: Mapping[str, Any]) -> None:
        """Mark a new or empty directory as a run: the marker first, so a crash leaves a run, never a stray file."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_manifest({"owns": list(OWNED), **manifest})
        write_text(self.config_path, config_text)

    def write_config(self, config_text: str) -> None:
        self._require_run()
        write_text(self.config_path, config_text)

    def stored_config_text(self) -> str | None:
        try:
            return self.config_path.read_text()
        except OSError:
            return None

    def _require_run(self) -> None:
        if self.state() != RUN:  # a last guard: every deletion and overwrite below depends on it
            raise AigcError(f"{self.path}: refused to change a directory that is not an aigc run")

    # -- deletion: only what the manifest lists ---------------------------------------------------
    def owned(self) -> list[str]:
        listed = self.manifest().get("owns")
        return [p for p in listed if isinstance(p, str) and p.rstrip("/") in {o.rstrip("/") for o in OWNED}] \
            if isinstance(listed, list) else []

    def listed_outputs(self) -> list[Path]:
        """The exported files the manifest lists (never a path outside the run)."""
        out = []
        for entry in self.manifest().get("outputs") or []:
            rel = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(rel, str) and self._inside(rel) and (rel.startswith(f"{OUTPUTS_DIR}/") or rel == LOSS_PLOT):
                out.append(self.path / rel)
        return out

    def _inside(self, rel: str) -> bool:
        parts = Path(rel).parts
        return bool(parts) and not Path(rel).is_absolute() and ".." not in parts

    def clear(self) -> list[str]:
        """``--restart``: remove what the manifest lists; everything else stays where it is."""
        self._require_run()
        removed = []
        for path in self.listed_outputs():
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(str(path.relative_to(self.path)))
        for rel in self.owned():
            if rel.rstrip("/") == MANIFEST_FILE:
                continue  # rewritten, never absent: the directory stays a run throughout
            path = self.path / rel.rstrip("/")
            if rel.endswith("/") and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed.append(rel)
            elif not rel.endswith("/") and (path.is_file() or path.is_symlink()):
                path.unlink()
                removed.append(rel)
        self._remove_empty(self.outputs_dir)
        self.write_manifest({"owns": list(OWNED)})
        return removed

    def remove_listed_outputs(self) -> None:
        """Before a new export: the files of the last one go, a user's files in ``outputs/`` stay."""
        self._require_run()
        for path in self.listed_outputs():
            if path.parent == self.outputs_dir or self.outputs_dir in path.parents:
                path.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> None:
        """Leftovers of a killed process, matched exactly: see ``is_own_temporary``."""
        self._require_run()
        root_targets = [o for o in self.owned() if not o.endswith("/")]
        folders = [(self.path, root_targets), (self.outputs_dir, None)]
        for rel in self.owned():
            if rel.endswith("/") and rel.rstrip("/") != MODEL_DIR:
                top = self.path / rel.rstrip("/")
                if top.is_dir() and not top.is_symlink():
                    folders += [(d, None) for d in [top, *top.rglob("*")] if d.is_dir() and not d.is_symlink()]
        for folder, targets in folders:
            if not folder.is_dir():
                continue
            for path in folder.glob(".*"):
                if folder == self.path and path.is_dir() and _MODEL_TEMPORARY.match(path.name):
                    shutil.rmtree(path, ignore_errors=True)
                elif path.is_file() and is_own_temporary(path.name, targets):
                    path.unlink(missing_ok=True)

    def discard_new(self, created: bool) -> None:
        """Undo a run that failed before its first checkpoint: nothing worth resuming, so no half-made run stays."""
        if self.state() != RUN or self.manifest().get("checkpoints"):
            return
        self.clear()
        self.manifest_path.unlink(missing_ok=True)
        if created:
            self._remove_empty(self.path)

    @staticmethod
    def _remove_empty(folder: Path) -> None:
        try:
            folder.rmdir()
        except OSError:
            pass

    # -- Lightning checkpoints: the sha256 values under which each may be loaded ----------------
    def checkpoint_name(self, path: str | Path) -> str:
        """``path``'s name inside ``checkpoints/`` (its bare name when it lies elsewhere)."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.checkpoint_dir.resolve()))
        except ValueError:
            return path.name

    def checkpoint_records(self) -> dict[str, dict]:
        table = self.manifest().get(CHECKPOINTS_KEY)
        return {k: v for k, v in table.items() if isinstance(v, dict)} if isinstance(table, dict) else {}

    def record_checkpoint(self, name: str, accept: list[str] | None) -> None:
        """Set (or with ``accept=None`` drop) the sha256 values under which checkpoint ``name`` may be loaded."""
        manifest = self.manifest()
        table = manifest.get(CHECKPOINTS_KEY)
        table = dict(table) if isinstance(table, dict) else {}
        if accept is None:
            table.pop(name, None)
        else:
            table[name] = {"sha256": accept[-1], "accept": list(accept)}
        manifest[CHECKPOINTS_KEY] = table
        write_json(self.manifest_path, manifest)  # as it was: no format marker added to a bare directory

    def verify_checkpoint(self, path: str | Path) -> str:
        """The file's sha256 if the manifest vouches for it; otherwise a CheckpointError.

        A kill between writing a checkpoint and recording it cannot cause a false alarm: the
        manifest accepts both the old and the new digest while the rename is in flight.
        """
        from ..contract.errors import CheckpointError

        path = Path(path)
        entry = self.checkpoint_records().get(self.checkpoint_name(path))
        if entry is None:
            raise CheckpointError(
                f"{path}: refused: this checkpoint is not recorded in {self.manifest_path} (a foreign file?); "
                "remove it or use --restart"
            )
        digest = sha256_file(path)
        if digest not in (entry.get("accept") or [entry.get("sha256")]):
            raise CheckpointError(
                f"{path}: refused: corrupt, truncated or foreign checkpoint (sha256 differs from {MANIFEST_FILE}); "
                "remove it or use --restart"
            )
        return digest

    # -- the model artifact -----------------------------------------------------------------------
    def replace_model(self, fill: Callable[[Path], None]) -> dict[str, str]:
        """Fill a temporary directory with ``fill(dir)`` and swap it in for ``model/``; returns file -> sha256."""
        self._require_run()
        final = self.model_dir
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR}.", dir=self.path))
        try:
            fill(tmp)
            files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            old = None
            if final.exists():
                old = self.path / f".{MODEL_DIR}.old.{os.getpid()}"
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return files

    def save_model(self, fill: Callable[[Path], None]) -> dict[str, str]:
        """``replace_model`` and record its files and their sha256 in the manifest; returns the record."""
        files = self.replace_model(fill)
        self.update_manifest({CHECKPOINT_KEY: {"dir": MODEL_DIR, "files": files}})
        return files

    def model_fingerprint(self, files: Mapping[str, str] | None = None) -> str:
        """One sha256 over the model's files: the ``checkpoint_sha256`` stamped on what it makes."""
        import hashlib

        files = self.recorded_model_files() if files is None else files
        h = hashlib.sha256()
        for rel in sorted(files):
            h.update(f"{rel}:{files[rel]}\n".encode())
        return h.hexdigest()

    def recorded_model_files(self) -> dict[str, str]:
        """The model files and their sha256 the manifest vouches for; refuses when there is no record."""
        from ..contract.errors import CheckpointError

        record = self.manifest().get(CHECKPOINT_KEY)
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
            raise CheckpointError(
                f"{self.manifest_path}: no record of the model files and their sha256 (\"checkpoint\" key); "
                "refusing to load weights that cannot be verified"
            )
        for rel in files:
            if not isinstance(rel, str) or not self._inside(rel):
                raise CheckpointError(f"{self.manifest_path}: checkpoint file {rel!r} is outside {MODEL_DIR}/")
        return files


    def verified_model_files(self) -> dict[str, str]:
        """``recorded_model_files`` after checking ``model/`` against them: every listed file present
        with its sha256, and no file the manifest does not list (a loader may pick up any file it
        finds: code through ``auto_map``, extra weights). Anything that loads a run's model asks here."""
        from ..contract.errors import CheckpointError

        recorded = self.recorded_model_files()
        model_dir = self.model_dir
        for rel, digest in recorded.items():
            path = model_dir / rel
            if not path.is_file():
                raise CheckpointError(f"{path}: checkpoint file missing")
            if sha256_file(path) != digest:
                raise CheckpointError(f"{path}: checkpoint is corrupt or truncated (sha256 differs from manifest.json)")
        unlisted = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*")
                          if (p.is_file() or p.is_symlink()) and str(p.relative_to(model_dir)) not in recorded)
        if unlisted:
            raise CheckpointError(f"{model_dir / unlisted[0]}: file not listed in manifest.json's checkpoint; "
                                  f"refusing to load a model directory holding files aigc did not write")
        return recorded

OUTPUT_MARKER = "aigc-outputs.json"
OUTPUT_FORMAT = "aigc-outputs/1"


class OutputDir:
    """A directory ``aigc generate --out`` writes into: new, empty, or one it wrote before.

    Its marker ``aigc-outputs.json`` lists the files of the last generation; a directory holding
    anything else is refused unless ``overwrite``, which still lets aigc replace only the files it
    writes itself (the exporter's names) and delete only files the marker lists.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def listed(self) -> list[str]:
        data = read_json_dict(self.path / OUTPUT_MARKER)
        if not data or data.get("format") != OUTPUT_FORMAT or not isinstance(data.get("files"), dict):
            return []
        return [rel for rel in data["files"] if isinstance(rel, str) and rel and ".." not in Path(rel).parts
                and not Path(rel).is_absolute()]

    def check(self, overwrite: bool) -> None:
        """Refuse a directory holding files aigc did not list, unless ``overwrite``."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise UsageError(f"{self.path}: exists and is not a directory; choose another --out")
        if overwrite:
            return
        allowed = set(self.listed()) | {OUTPUT_MARKER}
        stranger = next((p for p in self.path.rglob("*")
                         if not p.is_dir() and str(p.relative_to(self.path)) not in allowed), None)
        if stranger is not None:
            raise UsageError(
                f"{self.path}: holds files aigc did not write there ({stranger.relative_to(self.path)}); "
                "choose another --out, or add --overwrite to replace only the files aigc writes"
            )

    def remove_stale(self, keep: Iterable[Path]) -> None:
        """Files of the last generation that this one did not rewrite (fewer samples, say)."""
        keep = {Path(p).resolve() for p in keep}
        for rel in self.listed():
            path = self.path / rel
            if path.is_file() and path.resolve() not in keep:
                path.unlink()

    def record(self, files: Iterable[Path]) -> None:
        listed = {str(Path(p).relative_to(self.path)): sha256_file(p) for p in files}
        write_json(self.path / OUTPUT_MARKER, {"format": OUTPUT_FORMAT, "files": listed})
