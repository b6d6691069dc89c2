"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``/v1/metrics``, protobuf or JSON, gzip.

Answers as the OTLP/HTTP spec says: 200 with an Export*ServiceResponse (its
partial_success set when items were rejected), 400 for a malformed body, 401
without the bearer token (checked on the headers, before any body byte is read),
408 when the body does not arrive within the read timeout, 413 over the size
limit, 415 for another content type, 503 with ``Retry-After`` while the spool is
full or bodies in flight hold the whole byte budget. Error bodies are a
``google.rpc.Status`` in the request's encoding; when the body was not read to its
end the connection is closed. The header deadline is ``http_serving``'s.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector import otlp_json
from collector.grpc_receiver import RETRY_AFTER_S
from collector.ingest import SIGNALS, Ingest, Signal, SpoolFull
from tracestore.otlp_columns import DecodeError, decode

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class TooLarge(Exception):
    pass


def _reply(message, content_type: str, status: int = 200, headers: dict | None = None) -> Response:
    body = otlp_json.to_json(message) if content_type == JSON else message.SerializeToString()
    return Response(body, status_code=status, media_type=content_type, headers=headers)


def _error(
    content_type: str, status: int, code: int, message: str, headers: dict | None = None
) -> Response:
    return _reply(status_pb2.Status(code=code, message=message), content_type, status, headers)


class Busy(Exception):
    """Bodies being read already hold the whole byte budget."""


class BodyBudget:
    """Bytes held at once by request bodies still being read (the event loop's thread
    only, so no lock). A body takes what has actually arrived, so clients trickling
    bytes hold next to nothing while large concurrent bodies meet the bound."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, amount: int) -> None:
        if self.used + amount > self.total:
            raise Busy()
        self.used += amount

    def give(self, amount: int) -> None:
        self.used -= amount


async def _read_body(request: Request, limit: int, budget: BodyBudget) -> bytes:
    """The whole body, at most ``limit`` bytes; what it holds is taken from ``budget``
    (the caller gives back ``len(body)``; on an error it is given back here)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            budget.take(len(chunk))
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:
                raise TooLarge()
    except BaseException:
        budget.give(size)
        raise
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several), at most ``limit`` bytes
    inflated; a truncated member or bytes after the last one are a DecodeError."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            what = "body is not valid gzip" if not parts else "data after the last gzip member"
            raise DecodeError(f"{what}: {exc}") from None
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            raise TooLarge()
        if not inflater.eof:
            raise DecodeError("gzip body is truncated")
        parts.append(data)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)


@dataclass(frozen=True)
class HttpLimits:
    """What one OTLP/HTTP request may use: its size, its time, and the shared budgets."""

    max_bytes: int
    read_timeout: float
    bodies: BodyBudget
    decoding: asyncio.Semaphore


_CLOSE = {"Connection": "close"}  # the body was not read to its end: drop the connection


def _decode(signal: Signal, media: str, encoding: str, body: bytes, max_bytes: int):
    """Body bytes → (request message, raw protobuf bytes or None); raises DecodeError."""
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise DecodeError(f"unsupported content encoding {encoding!r}")
    if media == JSON:
        return otlp_json.parse(signal.request, body), None
    return decode(signal.request, body), body


def _endpoint(ingest: Ingest, signal: Signal, limits: HttpLimits):
    stats = ingest.stats

    async def export(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = JSON if media == JSON else PROTOBUF
        if not ingest.authorized(request.headers.get("authorization")):
            stats.add("refused_requests_total", label="unauthenticated")
            return _error(
                reply_type,
                401,
                code_pb2.UNAUTHENTICATED,
                "missing or wrong bearer token",
                {"WWW-Authenticate": "Bearer", **_CLOSE},
            )
        if media not in (JSON, PROTOBUF):
            return _error(
                PROTOBUF,
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported content type {media!r}",
                _CLOSE,
            )
        max_bytes = limits.max_bytes
        try:
            async with asyncio.timeout(limits.read_timeout):
                body = await _read_body(request, max_bytes, limits.bodies)
        except TimeoutError:
            stats.add("refused_requests_total", label="read_timeout")
            return _error(
                reply_type,
                408,
                code_pb2.DEADLINE_EXCEEDED,
                f"body not received within {limits.read_timeout:g}s",
                _CLOSE,
            )
        except Busy:
            stats.add("refused_requests_total", label="busy")
            return _error(
                reply_type,
                503,
                code_pb2.UNAVAILABLE,
                "collector is reading too many bodies at once",
                {"Retry-After": str(RETRY_AFTER_S), **_CLOSE},
            )
        except TooLarge:
            stats.add("refused_requests_total", label="too_large")
            return _error(
                reply_type,
                413,
                code_pb2.RESOURCE_EXHAUSTED,
                f"body over {max_bytes} bytes",
                _CLOSE,
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        try:
            async with limits.decoding:
                message, raw = await run_in_threadpool(
                    _decode, signal, media, encoding, body, max_bytes
                )
                response = await run_in_threadpool(ingest.accept, signal, message, raw)
        except TooLarge:
            stats.add("refused_requests_total", label="too_large")
            return _error(
                reply_type, 413, code_pb2.RESOURCE_EXHAUSTED, f"body over {max_bytes} bytes"
            )
        except DecodeError as exc:
            stats.add("refused_requests_total", label="malformed")
            return _error(reply_type, 400, code_pb2.INVALID_ARGUMENT, str(exc))
        except SpoolFull as exc:
            return _error(
                reply_type,
                503,
                code_pb2.UNAVAILABLE,
                f"collector spool is full: {exc}",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        finally:
            limits.bodies.give(len(body))
        return _reply(response, reply_type)

    return export


def create_app(
    ingest: Ingest, max_bytes: int, read_timeout: float = 30.0, max_concurrent: int = 16
) -> Starlette:
    """Bodies being read hold at most ``max_concurrent`` × ``max_bytes`` bytes (beyond:
    503 and Retry-After), each for at most ``read_timeout`` seconds (then 408);
    at most ``max_concurrent`` bodies are decoded at once, others wait their turn."""
    limits = HttpLimits(
        max_bytes,
        read_timeout,
        BodyBudget(max_concurrent * max_bytes),
        asyncio.Semaphore(max_concurrent),
    )
    return Starlette(
        routes=[
            Route(f"/v1/{name}", _endpoint(ingest, signal, limits), methods=["POST"])
            for name, signal in SIGNALS.items()
        ]
    )
