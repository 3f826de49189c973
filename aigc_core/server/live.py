"""A live uvicorn server in a thread, configured as ``aigc serve`` configures it: for tests and benchmarks
(a plugin's own tests too) that need real sockets rather than an in-process client."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any



class LiveServer:
    """uvicorn on an ephemeral loopback port, in a daemon thread; a context manager."""

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        """Configured as ``aigc serve`` configures uvicorn, from the app's own settings."""
        from .connections import guarded_server, uvicorn_config
        from .settings import ServerSettings

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        settings = getattr(getattr(app, "state", None), "settings", None) or ServerSettings()
        config = uvicorn_config(app, settings, log_level="warning", timeout_graceful_shutdown=2)
        self.server = guarded_server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
