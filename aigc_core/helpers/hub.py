"""Pretrained checkpoints named by a folder or a Hugging Face hub id: where they are, whether the
hub can be reached, and what a run records about them. Shared by every backend whose
``generator.base`` may be a backend-native checkpoint (diffusers, transformers), so each gives
the same answers and the same errors.

Why a probe before loading: offline, ``from_pretrained`` of a hub id retries for tens of seconds
before failing. The environment's ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) says so at
once; otherwise a connection to the hub is tried for at most a moment, in a thread, because name
resolution has no timeout of its own. Offline, a hub id loads from the local cache only
(``local_files_only``) or fails at once with one line naming the key.

Only the standard library at import: huggingface_hub is imported where a hub id is looked up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from pathlib import Path
from typing import Iterator, Sequence

from ..contract.errors import ConfigError

HUB_HOST = ("huggingface.co", 443)
PROBE_TIMEOUT_S = 1.5
#: the files that hold a checkpoint's weights; a pickle (.bin, .pt) is never loaded, so never counted
WEIGHT_PATTERNS = ("*.safetensors",)


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


def is_hub_id(ref: str) -> bool:
    """``owner/name`` or ``name``, not a path: what the hub could hold. A path that does not
    exist is reported as a missing folder, not looked up online."""
    p = Path(ref).expanduser()
    return not (p.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1 or not ref.strip())


def resolve_pretrained(ref: str, key: str, markers: Sequence[str] = ("config.json",)) -> tuple[str, dict]:
    """A local directory holding one of ``markers``, or a hub id with the loading flags offline needs
    (``{"local_files_only": True}`` when it must come from the cache: load it inside
    ``hub_offline_mode``). Every error is one line
    naming ``key``; offline, a hub id that is not cached fails here, before any download is tried."""
    p = Path(ref).expanduser()
    if p.is_dir():
        if not any((p / m).is_file() for m in markers):
            raise ConfigError(key, f"{p}: not a model directory (no {' or '.join(markers)})")
        return str(p), {}
    if not is_hub_id(ref):
        raise ConfigError(key, f"{p}: no such model directory")
    if hub_offline():
        if cached_snapshot(ref, markers) is None:
            raise ConfigError(
                key, f"{ref!r} is not a local folder and the Hugging Face hub cannot be reached (offline) and it "
                     "is not in the local cache; give a local model directory")
        return ref, {"local_files_only": True}
    return ref, {}


@contextlib.contextmanager
def hub_offline_mode(active: bool = True) -> Iterator[None]:
    """While loading a hub id that must come from the cache: huggingface_hub's own offline switch
    on, which it reads once at import. ``local_files_only`` alone is not enough: transformers
    looks for an adapter config without it, and the hub client fetches a registry for its
    user-agent header, each retried for tens of seconds with no network."""
    if not active:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def cached_snapshot(ref: str, markers: Sequence[str] = ("config.json",)) -> Path | None:
    """The folder of the cached revision of hub id ``ref`` that holds one of ``markers`` (its name
    is the commit hash), or None when nothing is cached. Reads the cache only."""
    from huggingface_hub import try_to_load_from_cache

    for marker in markers:
        try:
            found = try_to_load_from_cache(ref, marker)
        except ValueError:  # not a valid repo id
            return None
        if isinstance(found, str):
            return Path(found).parents[marker.count("/")]
    return None


def weights_sha256(folder: str | Path, patterns: Sequence[str] = WEIGHT_PATTERNS) -> tuple[str, list[str]]:
    """One sha256 over the weight files under ``folder`` (their relative paths and contents, in
    sorted order), and those paths. Weights only: a config or tokenizer file rewritten by another
    library version does not make it another base."""
    folder = Path(folder)
    files = sorted({p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()})
    digest = hashlib.sha256()
    names = []
    for path in files:
        name = path.relative_to(folder).as_posix()
        file_digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(f"{name}\0{file_digest.hexdigest()}\n".encode())
        names.append(name)
    return digest.hexdigest(), names


def pretrained_record(ref: str, markers: Sequence[str] = ("config.json",),
                      patterns: Sequence[str] = WEIGHT_PATTERNS) -> dict:
    """What a run's manifest records about a pretrained base: for a folder its absolute path and
    the sha256 of its weights; for a hub id the cached revision (commit hash) and the sha256 of
    its weights when it is in the cache (after loading it is), else only the id."""
    p = Path(ref).expanduser()
    if p.is_dir():
        sha, files = weights_sha256(p, patterns)
        return {"kind": "pretrained", "id": str(p.resolve()), "sha256": sha, "weights": files}
    record: dict = {"kind": "pretrained", "id": ref, "revision": None}
    snapshot = cached_snapshot(ref, markers) if is_hub_id(ref) else None
    if snapshot is not None:
        sha, files = weights_sha256(snapshot, patterns)
        record.update(revision=snapshot.name, sha256=sha, weights=files)
    return record
