"""Generator options that take a file: a path on the CLI and in Python, the file's bytes over HTTP.

A served model must never open a path a request names: the answer to "interpolate from
/etc/shadow" would tell a stranger whether that file exists and whether it is an image, and an
image found there would come back inside the result. So an option that stands for a file is
declared as one (``a: Optional[FileContent] = FileField(None, media_type="image/png")``) and the
generator always receives the bytes, never a path. Who turns the user's value into bytes depends
on where the value came from:

- the CLI, a config file and Python (``paths``, the default): a path is read here, with errors
  naming the path; bytes are taken as they are;
- an HTTP request (``content``, set by the server around its validation with
  :func:`request_content`): the value must be the file's content, base64-encoded (a ``data:`` URL
  is fine). Nothing is read; any other value, a path included, gets one and the same refusal,
  which says nothing about the server's files.

The JSON Schema of such an option carries ``"x-aigc-file": true`` with ``contentEncoding: base64``
and the ``contentMediaType`` the generator expects, so the web page shows a file picker and an
audit can find every file option of every installed generator (``tests/test_file_options.py``).
Imported with the parameters (pydantic), never at plugin discovery.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterator, Mapping

#: The JSON Schema keyword that marks a file option.
FILE_MARK = "x-aigc-file"
#: The most a path given on the CLI or in Python may hold; a request's content is bounded by the
#: server's body limit instead.
MAX_FILE_BYTES = 64 * 1024 * 1024
PATHS, CONTENT = "paths", "content"
#: What every value a request gives a file option gets when it is not decodable content: the same
#: words whatever the value names on the server.
REFUSAL = ("expected the file's content, base64-encoded (a data: URL works too); "
           "this server never reads files named in a request")

_source: contextvars.ContextVar[str] = contextvars.ContextVar("aigc_file_options", default=PATHS)
_DATA_URL = re.compile(r"data:[^,;]*(;[^,;]*)*;base64,", re.IGNORECASE)


class FileContent(bytes):
    """The bytes of a file option, and the path they were read from (None when they came as
    content). Compared, hashed and shown by content, so two requests with the same image are one
    batch and a sharded job's settings do not depend on where the file lay."""

    source: str | None

    def __new__(cls, data: bytes, source: str | None = None) -> "FileContent":
        self = super().__new__(cls, data)
        self.source = source
        return self

    def __reduce__(self) -> tuple:  # for the processes of sharded generation
        return (FileContent, (bytes(self), self.source))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self).hexdigest()

    @property
    def label(self) -> str:
        """How to name this file in messages and metadata: its path, else its hash."""
        return self.source or f"sha256:{self.sha256[:16]}"

    def __repr__(self) -> str:
        return f"FileContent({len(self)} bytes, sha256={self.sha256})"

    __str__ = __repr__

    # -- pydantic ----------------------------------------------------------------------------
    @classmethod
    def __get_pydantic_core_schema__(cls, source_type: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.label, when_used="json"))

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict:
        return {"type": "string", "contentEncoding": "base64", FILE_MARK: True}


def FileField(default: Any = None, *, media_type: str = "application/octet-stream", description: str = "",
              **kwargs: Any) -> Any:
    """A ``Field`` for a :class:`FileContent` option; ``media_type`` is what the generator reads
    (``image/png``...) and becomes the schema's ``contentMediaType`` (the page's file picker)."""
    from .params import Field

    return Field(default, description=description, json_schema_extra={"contentMediaType": media_type}, **kwargs)


@contextlib.contextmanager
def request_content() -> Iterator[None]:
    """Validation in this block takes file options as content only, never as paths (the server)."""
    token = _source.set(CONTENT)
    try:
        yield
    finally:
        _source.reset(token)


def _validate(value: Any) -> FileContent:
    if isinstance(value, FileContent):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return FileContent(bytes(value))
    if _source.get() == CONTENT:
        return decode_content(value)
    if isinstance(value, (str, os.PathLike)):
        return read_path(value)
    raise ValueError(f"expected the path of a file, got {type(value).__name__}")


def decode_content(value: Any) -> FileContent:
    """A request's file: base64 text (or a ``data:...;base64,`` URL) and nothing else."""
    if not isinstance(value, str):
        raise ValueError(REFUSAL)
    url = _DATA_URL.match(value)
    text = value[url.end():] if url else value
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(REFUSAL) from None
    if not data:
        raise ValueError(REFUSAL)
    return FileContent(data)


def read_path(value: str | os.PathLike) -> FileContent:
    """A file the user named on the CLI or in Python; errors name the path."""
    path = Path(value).expanduser()
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
            raise ValueError(f"{value}: not a regular file")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{value}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{value}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{value}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return FileContent(data, str(value))


def is_file_option(prop: Mapping) -> bool:
    """Whether a JSON Schema property (or any member of its ``anyOf``) is a file option."""
    return any(member.get(FILE_MARK) for member in [prop, *prop.get("anyOf", ())] if isinstance(member, Mapping))


def file_options(schema: Mapping) -> list[str]:
    """The names of an options schema's file options."""
    return [name for name, prop in (schema.get("properties") or {}).items() if is_file_option(prop)]
