"""Real apps and an OTLP sink for the sidecar tests: Starlette under uvicorn, raw TCP servers.

The OTLP sink is a real OTLP/HTTP endpoint (the sidecar's default protocol) that
keeps the spans it receives, so tests can read what a sidecar exported without
ClickHouse.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.support.polling import eventually
from tests.support.threaded_server import ThreadedUvicorn

FORWARDED = ("traceparent", "tracestate", "baggage")


def build_app(outbound_proxy: str | None = None) -> Starlette:
    """The app behind the sidecar; ``/call`` goes out through ``outbound_proxy``."""

    async def headers(request: Request) -> JSONResponse:
        client_port = request.client.port if request.client else 0
        return JSONResponse(
            {"headers": dict(request.headers), "path": request.url.path, "port": client_port}
        )

    async def upload(request: Request) -> JSONResponse:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return JSONResponse({"bytes": total})

    async def download(request: Request) -> StreamingResponse:
        chunk = b"x" * 65536
        count = int(request.query_params.get("mb", "1")) * 16

        async def body():
            for _ in range(count):
                yield chunk

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(float(request.query_params.get("s", "1")))
        return PlainTextResponse("slow done")

    async def fail(request: Request) -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=503)

    async def call(request: Request) -> JSONResponse:
        forward = request.query_params.get("forward", "1") == "1"
        sent = {k: v for k, v in request.headers.items() if forward and k in FORWARDED}
        if "host" in request.query_params:  # as a Service name would, apart from the IP
            sent["host"] = request.query_params["host"]
        async with httpx.AsyncClient(proxy=outbound_proxy, timeout=10) as client:
            reply = await client.get(request.query_params["target"], headers=sent)
        return JSONResponse({"status": reply.status_code, "downstream": reply.json()})

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except Exception:
            return

    return Starlette(
        routes=[
            Route("/", headers),
            Route("/users/{uid}", headers),
            Route("/upload", upload, methods=["POST"]),
            Route("/download", download),
            Route("/slow", slow),
            Route("/fail", fail),
            Route("/call", call),
            WebSocketRoute("/ws", echo),
        ]
    )


class OtlpSink:
    """An OTLP/HTTP endpoint on ``port`` (a free one by default) that records every span
    posted to ``/v1/traces``; metrics are accepted and dropped. ``posts`` holds each
    request's signal and client port, so tests see which connection carried it."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[tuple[dict, object]] = []
        self.posts: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/{signal}", self._receive, methods=["POST"])])
        self.server = ThreadedUvicorn(app, port=port or None)
        self.port = self.server.port

    async def _receive(self, request: Request) -> Response:
        port = request.client.port if request.client else 0
        with self._lock:
            self.posts.append((request.path_params["signal"], port))
        if request.path_params["signal"] == "traces":
            self._record(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(b"", media_type="application/x-protobuf")  # an empty response: success

    def _record(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((resource, span))

    def start(self) -> OtlpSink:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def wait_for(self, predicate: Callable[[list], bool], timeout: float = 15.0) -> list:
        """The spans received so far, once ``predicate`` holds for them."""

        def seen() -> list | None:
            with self._lock:
                snapshot = list(self.spans)
            return snapshot if predicate(snapshot) else None

        return eventually(seen, timeout=timeout, interval=0.1, what="spans at the OTLP sink")


def spans_of_trace(sink: OtlpSink, trace_id: str, count: int) -> list:
    """The (resource, span) pairs of one trace at ``sink``, once it holds ``count`` of them."""
    spans = sink.wait_for(lambda s: sum(sp.trace_id.hex() == trace_id for _, sp in s) >= count)
    return [(res, sp) for res, sp in spans if sp.trace_id.hex() == trace_id]


class ThreadedTcpServer:
    """A loopback listener serving each connection in its own thread with ``_serve``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.listener.close()


class BannerServer(ThreadedTcpServer):
    """A server-speaks-first TCP service (like SMTP): greets, then echoes lines back."""

    def __init__(self, banner: bytes = b"220 banner ready\r\n"):
        self.banner = banner
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(self.banner)
            while data := conn.recv(65536):
                conn.sendall(data)


class RequestServer(ThreadedTcpServer):
    """An HTTP/1.x upstream reading requests (heads, and Content-Length bodies) on each
    connection and handing each to ``_answer``. Heads are kept in ``heads``, bodies in
    ``bodies``; ``connections`` counts the connections accepted."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            number = self.connections
        with conn:
            buffer = b""
            answered = 0
            while data := conn.recv(65536):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    need = int(length.group(1)) if length else 0
                    while len(buffer) < need and (more := conn.recv(65536)):
                        buffer += more
                    self.bodies.append(buffer[:need])
                    buffer = buffer[need:]
                    self.heads.append(head)
                    answered += 1
                    if not self._answer(conn, head, number, answered):
                        return

    def _answer(self, conn: socket.socket, head: bytes, connection: int, nth: int) -> bool:
        """Answer the ``nth`` request of connection number ``connection``; False: the
        connection ends here."""
        raise NotImplementedError


class CannedHttpServer(RequestServer):
    """An HTTP/1.x upstream that answers every request head with fixed bytes.

    ``close`` makes it close after answering (a close-delimited body);
    ``answers_per_connection`` makes it drop the connection, unanswered, at the
    next request (a keep-alive connection that went stale).
    """

    def __init__(self, response: bytes, close: bool = False, answers_per_connection: int = 0):
        self.response = response
        self.close = close
        self.answers_per_connection = answers_per_connection
        super().__init__()

    def _answer(self, conn: socket.socket, head: bytes, connection: int, nth: int) -> bool:
        if self.answers_per_connection and nth > self.answers_per_connection:
            return False
        conn.sendall(self.response)
        return not self.close


class ScriptedHttpServer(RequestServer):
    """An HTTP/1.1 upstream whose answer depends on the request path.

    ``/chunked``: a chunked body; ``/slow``: a simple answer after 0.5 s; ``/last``: a
    simple answer, then it closes the connection (a keep-alive connection gone stale);
    ``/reset``: no answer, it closes the connection. Anything else: a Content-Length body
    naming the connection (``conn-N``), so tests see which connection carried a request.
    """

    def _answer(self, conn: socket.socket, head: bytes, connection: int, nth: int) -> bool:
        method, path = head.split(b" ", 2)[:2]
        if path == b"/reset":
            return False
        if path == b"/slow":
            time.sleep(0.5)
        if path == b"/chunked":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n0\r\n\r\n"
            )
            return True
        body = b"conn-%d" % connection
        head_only = method == b"HEAD"
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), b"" if head_only else body)
        )
        return path != b"/last"


def attributes(span) -> dict:
    """A span's attributes as a plain dict of python values."""
    out = {}
    for a in span.attributes:
        value = a.value
        out[a.key] = getattr(value, value.WhichOneof("value"))
    return out
