"""The admin port: ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus text) and ``/shutdown``.

``/readyz`` is ready when the app's port accepts a connection. ``/shutdown``
answers only loopback peers; Jobs call it when their main container is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

_MAX_HEAD = 8192


class AdminServer:
    """A tiny HTTP/1.0-style server on the admin port (one request per connection)."""

    def __init__(
        self,
        app_address: tuple[str, int],
        metrics_text: Callable[[], str],
        on_shutdown: Callable[[], None],
    ):
        self._app_address = app_address
        self._metrics_text = metrics_text
        self._on_shutdown = on_shutdown

    async def app_ready(self, timeout: float = 1.0) -> bool:
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*self._app_address), timeout
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            if len(head) > _MAX_HEAD:
                raise ValueError("head too large")
            method, path = head.split(b"\r\n", 1)[0].split(b" ")[:2]
            status, body, ctype = await self._route(method, path.split(b"?")[0], writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, body, ctype = 400, "bad request\n", "text/plain"
        payload = body.encode()
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"content-type: {ctype}\r\ncontent-length: {len(payload)}\r\n"
            "connection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _route(self, method: bytes, path: bytes, writer: asyncio.StreamWriter):
        if path == b"/healthz":
            return 200, "ok\n", "text/plain"
        if path == b"/readyz":
            ready = await self.app_ready()
            return (
                (200, "ready\n", "text/plain") if ready else (503, "app not ready\n", "text/plain")
            )
        if path == b"/metrics":
            return 200, self._metrics_text(), CONTENT_TYPE_LATEST
        if path in (b"/shutdown", b"/quitquitquit"):
            peer = writer.get_extra_info("peername")
            if not peer or not ipaddress.ip_address(peer[0]).is_loopback:
                return 403, "loopback only\n", "text/plain"
            if method not in (b"POST", b"GET"):
                return 405, "use POST\n", "text/plain"
            self._on_shutdown()
            return 200, "shutting down\n", "text/plain"
        return 404, "not found\n", "text/plain"
