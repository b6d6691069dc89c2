"""Run an ASGI app with uvicorn on a background thread, and stop it again."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runtime.tls_files import KeyPairFiles, watch_ssl_context

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 36\r\nconnection: close\r\n\r\nrequest headers not received in time"
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers.

    uvicorn has none: a client that connects and sends nothing, or half a header,
    would hold its connection forever. The clock starts when the connection opens
    (or a keep-alive request begins) and stops when the headers are complete;
    at ``header_timeout`` the client gets 408 and the connection is closed."""

    header_timeout = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_408)
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})


class QuietServer(uvicorn.Server):
    """uvicorn's server, looking for its exit once a second instead of ten times.

    Its main loop only refreshes the Date header (once a second) and checks
    ``should_exit``; ten wake-ups a second were most of an idle collector's CPU. A stop
    wakes it at once (``wake``), so stopping is no slower."""

    tick_seconds = 1.0
    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0  # uvicorn's tick count: a multiple of 10 refreshes the Date header
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)

    def wake(self) -> None:
        """Have the main loop look at ``should_exit`` now (from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not serving yet: the first tick looks at should_exit
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone already
            loop.call_soon_threadsafe(wake.set)


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
        header_timeout: float | None = None,
    ) -> None:
        """``header_timeout``: seconds a client has to send each request's headers."""
        protocol = header_deadline_protocol(header_timeout) if header_timeout else "auto"
        config = uvicorn.Config(
            app,
            http=protocol,
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
        self._stop_tls_watch = threading.Event()
        if certfile and keyfile:
            config.load()  # its SSL context is the one served: a changed pair reloads into it
            watch_ssl_context(config.ssl, KeyPairFiles(certfile, keyfile), self._stop_tls_watch)
        self.server = QuietServer(config)
        self._thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"{self.name} could not listen on port {self.port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_tls_watch.set()
        self.server.should_exit = True
        self.server.wake()
        self._thread.join(timeout)
