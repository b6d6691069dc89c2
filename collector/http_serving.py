"""Run an ASGI app with uvicorn on a background thread, and stop it again."""

from __future__ import annotations

import threading
import time

import uvicorn


class BackgroundServer:
    """One uvicorn server on its own thread (signals stay with the main thread)."""

    def __init__(
        self,
        app,
        host: str,
        port: int,
        name: str,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            timeout_graceful_shutdown=5,
        )
        self.port = port
        self.name = name
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"{self.name} could not listen on port {self.port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
