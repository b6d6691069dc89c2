"""An ASGI app (Starlette, the dashboard, a stub API) served by uvicorn on a thread of the
test process, on a free loopback port: in-process, so chDB and the test share state."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from runtime.loopback_ports import free_port
from tests.support.polling import Gone, eventually


class ThreadedUvicorn:
    """uvicorn on a thread; ``start()`` returns once it serves (lifespan done, port bound)."""

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        *,
        log_level: str = "warning",
        lifespan: str = "off",
        **config: Any,
    ) -> None:
        self.port = port or free_port()
        scheme = "https" if config.get("ssl_certfile") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level=log_level,
                lifespan=lifespan,
                **config,
            )
        )
        self.exit_code: int | str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except SystemExit as exit_:  # uvicorn exits when it cannot bind or start the app
            self.exit_code = exit_.code

    def start(self, timeout: float = 60.0) -> ThreadedUvicorn:
        self.thread.start()
        what = f"uvicorn on {self.url}"
        eventually(self._serving, timeout=timeout, interval=0.05, what=what, ignoring=())
        return self

    def _serving(self) -> bool:
        if not self.thread.is_alive():
            raise Gone(
                f"uvicorn on {self.url} stopped before serving (exit {self.exit_code}; port taken?)"
            )
        return self.server.started

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ThreadedUvicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
