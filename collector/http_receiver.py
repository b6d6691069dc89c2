"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``/v1/metrics``, protobuf or JSON, gzip.

Answers as the OTLP/HTTP spec says: 200 with an Export*ServiceResponse (its
partial_success set when items were rejected), 400 for a malformed body, 401
without the bearer token, 413 over the size limit, 415 for another content type,
503 with ``Retry-After`` while the spool is full. Error bodies are a
``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import asyncio
import zlib

from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector import otlp_json
from collector.grpc_receiver import RETRY_AFTER_S
from collector.ingest import SIGNALS, Ingest, Signal, SpoolFull
from collector.otlp_columns import DecodeError, decode

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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"body is not valid gzip: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise TooLarge()
    return data


def _endpoint(ingest: Ingest, signal: Signal, max_bytes: int, slots: asyncio.Semaphore):
    async def export(request: Request) -> Response:
        async with slots:  # bounds the bodies held in memory at once
            return await _export(request)

    async def _export(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = JSON if media == JSON else PROTOBUF
        if not ingest.authorized(request.headers.get("authorization")):
            ingest.stats.add("refused_requests_total", label="unauthenticated")
            return _error(
                reply_type,
                401,
                code_pb2.UNAUTHENTICATED,
                "missing or wrong bearer token",
                {"WWW-Authenticate": "Bearer"},
            )
        if media not in (JSON, PROTOBUF):
            return _error(
                PROTOBUF, 415, code_pb2.INVALID_ARGUMENT, f"unsupported content type {media!r}"
            )
        try:
            body = await _read_body(request, max_bytes)
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if encoding == "gzip":
                body = _gunzip(body, max_bytes)
            elif encoding not in ("", "identity"):
                raise DecodeError(f"unsupported content encoding {encoding!r}")
            if media == JSON:
                message, raw = otlp_json.parse(signal.request, body), None
            else:
                message, raw = decode(signal.request, body), body
            response = await run_in_threadpool(ingest.accept, signal, message, raw)
        except TooLarge:
            ingest.stats.add("refused_requests_total", label="too_large")
            return _error(
                reply_type, 413, code_pb2.RESOURCE_EXHAUSTED, f"body over {max_bytes} bytes"
            )
        except DecodeError as exc:
            ingest.stats.add("refused_requests_total", label="malformed")
            return _error(reply_type, 400, code_pb2.INVALID_ARGUMENT, str(exc))
        except SpoolFull as exc:
            return _error(
                reply_type,
                503,
                code_pb2.UNAVAILABLE,
                f"collector spool is full: {exc}",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        return _reply(response, reply_type)

    return export


def create_app(ingest: Ingest, max_bytes: int, max_concurrent: int = 16) -> Starlette:
    """At most ``max_concurrent`` requests are read and decoded at once; others wait."""
    slots = asyncio.Semaphore(max_concurrent)
    return Starlette(
        routes=[
            Route(f"/v1/{name}", _endpoint(ingest, signal, max_bytes, slots), methods=["POST"])
            for name, signal in SIGNALS.items()
        ]
    )
