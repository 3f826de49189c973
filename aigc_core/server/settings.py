"""Server limits and security settings, checked once before anything binds a socket."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from ..errors import UsageError

DEFAULT_KEY_ENV = "AIGC_API_KEY"

#: Caps on generation options that plugins commonly name; they bound the work one request can
#: ask for (the option dataclasses only say what is valid, not what a shared server affords).
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
}


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

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get(self.api_key_env) or None
        for name in ("max_body_bytes", "max_samples", "max_prompt_chars", "max_batch", "queue_size", "max_streams"):
            if getattr(self, name) < 1:
                raise UsageError(f"server setting {name}: must be at least 1")
        if self.batch_wait_ms < 0:
            raise UsageError("server setting batch_wait_ms: must be 0 or more")
        if self.timeout_s <= 0:
            raise UsageError("server setting timeout_s: must be positive")
        if not is_loopback(self.host) and not self.api_key:
            raise UsageError(
                f"binding to {self.host} exposes the server beyond this machine; set an API key in "
                f"the environment variable {self.api_key_env} (clients send it as 'Authorization: "
                f"Bearer KEY') or bind to 127.0.0.1"
            )

    @property
    def requires_key(self) -> bool:
        """A key, once configured, is required even on loopback: other local users exist."""
        return bool(self.api_key)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
