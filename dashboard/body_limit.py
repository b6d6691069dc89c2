"""Bound what one request may make the dashboard read: its target and its body.

A body whose ``Content-Length`` is over the limit gets 413 before a byte of it is
read; a chunked body is counted as it arrives and cut off at the limit. A
request target (path and query) over its limit gets 414. Every write the
dashboard takes (silences) is a few kilobytes.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 256 * 1024
MAX_TARGET_BYTES = 16 * 1024


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes the limit (not a ValueError, so
    handlers that turn ValueError into 400 let it through)."""


class BodyLimit:
    """414 for long request targets, 413 for large bodies."""

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, max_target: int = MAX_TARGET_BYTES
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_target = max_target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if target > self.max_target:
            await self._refuse(
                scope, receive, send, 414, f"request target over {self.max_target} bytes"
            )
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()) or len(length) > 18:
                await self._refuse(scope, receive, send, 400, "bad Content-Length")
                return
            if int(length) > self.max_body:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"request body over {self.max_body} bytes"

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        """Answer without reading the body, and close the connection (it holds unread bytes)."""
        response = JSONResponse(
            {"error": message}, status_code=status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)
