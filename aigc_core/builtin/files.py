"""Which files a folder source reads: the one place image-folder, audio-folder and text-files agree.

A user's folder is rarely clean: a corpus holds speakers the model must not hear (a held-out voice
for personalisation), a drawings folder holds drafts, a notebook leaves ``.ipynb_checkpoints``
behind. ``data.include`` and ``data.exclude`` choose files by name with a regular expression, so
nobody copies files into a second folder to train on a subset; hidden files and folders (a name
starting with ``.``) are never read, so editor and OS litter does not become data or a class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Optional

from aigc_core.contract.errors import ConfigError
from aigc_core.contract.params import Field, ParamError, Params, model_validator

_MATCHED = ("matched with re.search against each file's path relative to the folder, "
            "with / between folders (in a flat folder, its file name); hidden files and folders are never read")


class FileSelection(Params):
    """``include``/``exclude`` regexes; mixed into the folder sources' ``Params``."""

    include: Optional[str] = Field(None, description="read only files matching this regular expression; " + _MATCHED)
    exclude: Optional[str] = Field(None, description="skip files matching this regular expression (after include); " + _MATCHED)

    @model_validator(mode="after")
    def _regexes_compile(self) -> "FileSelection":
        for key in ("include", "exclude"):
            value = getattr(self, key)
            if value is None:
                continue
            if not value:
                raise ParamError(key, "empty pattern (it would match every file); leave it out instead")
            try:
                re.compile(value)
            except re.error as exc:
                raise ParamError(key, f"not a regular expression ({exc})") from None
        return self


def relative_name(path: Path, root: Path) -> str:
    """What ``include``/``exclude`` see: the path under the folder, / separated."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def is_hidden(path: Path, root: Path) -> bool:
    """A dot-file, or a file inside a dot-folder, below ``root`` (``root`` itself may be hidden)."""
    return any(part.startswith(".") for part in Path(relative_name(path, root)).parts)


def select_files(files: Iterable[Path], root: Path, params: Params, key: str = "data") -> list[Path]:
    """The files that pass ``include`` and ``exclude``, in the order given; hidden ones dropped.

    Raises ``ConfigError`` naming the key that emptied the list, so a typo in a speaker's name
    is one line that says which key to fix rather than "no audio files" about a folder full of them.
    """
    files = [f for f in files if not is_hidden(f, root)]
    include = getattr(params, "include", None)
    exclude = getattr(params, "exclude", None)
    kept = files
    if include:
        pattern = re.compile(include)
        kept = [f for f in kept if pattern.search(relative_name(f, root))]
        if files and not kept:
            raise ConfigError(f"{key}.include", f"{include!r} matches none of the {len(files)} files under {root} "
                              f"(e.g. {relative_name(files[0], root)!r})")
    if exclude:
        pattern = re.compile(exclude)
        before = len(kept)
        kept = [f for f in kept if not pattern.search(relative_name(f, root))]
        if before and not kept:
            raise ConfigError(f"{key}.exclude", f"{exclude!r} excludes all {before} files under {root}"
                              + (" that data.include kept" if include else ""))
    return kept


def check_selection(folders: Iterable[str], suffixes: Iterable[str], params: Params, key: str = "data") -> None:
    """``aigc check``'s look at ``include``/``exclude``: a pattern that leaves no file fails there,
    before a run reads (or a long job waits for) anything. Listing only, no file is opened; nothing
    to check without a pattern, and a missing folder is the path check's to report."""
    import os

    if not (getattr(params, "include", None) or getattr(params, "exclude", None)):
        return
    wanted = tuple(s.lower() for s in suffixes)
    for folder in folders:
        root = Path(os.path.expandvars(os.path.expanduser(folder)))
        if not root.is_dir():
            continue
        files = sorted(q for q in root.rglob("*") if q.suffix.lower() in wanted and q.is_file())
        if files:
            select_files(files, root, params, key)
