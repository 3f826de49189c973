"""Server limits and security settings, checked once before anything binds a socket."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field

from ..contract.errors import UsageError

DEFAULT_KEY_ENV = "AIGC_API_KEY"

#: Caps on generation options that plugins commonly name; they bound the work one request can
#: ask for (the options models only say what is valid, not what a shared server affords).
DEFAULT_OPTION_CAPS = {
    "max_new_tokens": 1024,
    "max_tokens": 1024,
    "max_length": 2048,
    "length": 2048,
    "steps": 1000,
    "num_steps": 1000,
    "batch_size": 1024,
    "duration": 30.0,
    "seconds": 30.0,
    "stream_timeout": 120.0,
    "num_return_sequences": 64,
}

#: What a key for a public bind must have: long and varied enough that it was meant as a secret.
MIN_KEY_CHARS = 16
MIN_KEY_DISTINCT = 8


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Name of the environment variable holding the API key (never the key itself on the CLI,
    #: where it would show in ``ps``).
    api_key_env: str = DEFAULT_KEY_ENV
    api_key: str | None = None
    max_body_bytes: int = 64 * 1024
    max_samples: int = 64
    max_prompt_chars: int = 4000
    max_batch: int = 16  # samples merged into one generate call
    batch_wait_ms: float = 5.0
    queue_size: int = 64  # waiting requests per model before 429
    max_streams: int = 8  # concurrent text streams per model before 429
    timeout_s: float = 60.0
    cors_origins: list[str] = field(default_factory=list)
    option_caps: dict = field(default_factory=lambda: dict(DEFAULT_OPTION_CAPS))
    #: Extra names a loopback server answers to in the Host header (a local reverse proxy's name);
    #: loopback names and addresses are always accepted.
    allowed_hosts: list[str] = field(default_factory=list)
    #: Seconds a client has to send a whole request head, from its first byte or the connection.
    header_timeout_s: float = 10.0
    #: Seconds a client has to send a request body once its head arrived.
    body_timeout_s: float = 30.0
    #: Seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive).
    keep_alive_s: float = 5.0
    #: Open connections at most; past it, the oldest connection that owes a request head is
    #: closed to make room (or the new one, when every connection is busy with a request).
    max_connections: int = 512
    #: Largest request head (request line and headers) in bytes.
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get(self.api_key_env) or None
        if self.api_key is not None:
            self.api_key = self.api_key.strip() or None  # clients' keys are read stripped too
        for name in ("max_body_bytes", "max_samples", "max_prompt_chars", "max_batch", "queue_size", "max_streams",
                     "max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise UsageError(f"server setting {name}: must be at least 1")
        if self.batch_wait_ms < 0:
            raise UsageError("server setting batch_wait_ms: must be 0 or more")
        for name in ("timeout_s", "header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise UsageError(f"server setting {name}: must be a positive number of seconds, got {value}")
        if not is_loopback(self.host):
            if not self.api_key:
                raise UsageError(
                    f"binding to {self.host} exposes the server beyond this machine; set an API key in "
                    f"the environment variable {self.api_key_env} (clients send it as 'Authorization: "
                    f"Bearer KEY') or bind to 127.0.0.1"
                )
            weak = key_weakness(self.api_key)
            if weak:
                raise UsageError(
                    f"the API key in {self.api_key_env} is too weak for binding to {self.host}: {weak}; "
                    f"make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )

    @property
    def requires_key(self) -> bool:
        """A key, once configured, is required even on loopback: other local users exist."""
        return bool(self.api_key)


def key_weakness(key: str) -> str:
    """Why ``key`` is not fit to guard a public server, or "" when it is.

    The rule: at least MIN_KEY_CHARS characters, at least MIN_KEY_DISTINCT different ones, and not
    the path of an existing file or directory (``--api-key-env HOME`` names a variable that holds
    a path everybody can guess, not a secret).
    """
    if len(key) < MIN_KEY_CHARS:
        return f"it has {len(key)} characters, at least {MIN_KEY_CHARS} are needed"
    if len(set(key)) < MIN_KEY_DISTINCT:
        return f"it uses {len(set(key))} different characters, at least {MIN_KEY_DISTINCT} are needed"
    try:
        names_a_path = os.path.lexists(key)
    except (OSError, ValueError):
        names_a_path = False
    if names_a_path:
        return "it is the path of an existing file or directory, not a secret"
    return ""


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
