"""OTLP/gRPC receiver: TraceService and MetricsService on one grpcio server.

Handlers take the raw request bytes (no generated servicer, no second decode):
they decode once, hand the message to ``Ingest`` and, when nothing was rejected,
the very same bytes go to the spool. gzip-compressed requests are decompressed
by grpcio. Answers: oversize → RESOURCE_EXHAUSTED (grpcio, from the receive
limit), malformed → INVALID_ARGUMENT, spool full → RESOURCE_EXHAUSTED with a
RetryInfo so OTLP exporters back off, bad or missing token → UNAUTHENTICATED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2

from collector.ingest import SIGNALS, Ingest, Signal, SpoolFull
from collector.otlp_columns import DecodeError, decode

log = logging.getLogger(__name__)
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def _retry_later(message: str) -> _Status:
    """RESOURCE_EXHAUSTED with RetryInfo: the OTLP spec's signal that a retry may succeed."""
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_AFTER_S))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message)
    status.details.add().Pack(retry)
    return _Status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        (("grpc-status-details-bin", status.SerializeToString()),),
    )


def _handler(ingest: Ingest, signal: Signal) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    def export(raw: bytes, context: grpc.ServicerContext) -> bytes:
        if not ingest.authorized(dict(context.invocation_metadata()).get("authorization")):
            ingest.stats.add("refused_requests_total", label="unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            request = decode(signal.request, raw)
        except DecodeError as exc:
            ingest.stats.add("refused_requests_total", label="malformed")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            response = ingest.accept(signal, request, raw)
        except SpoolFull as exc:
            context.abort_with_status(_retry_later(f"collector spool is full: {exc}"))
        return response.SerializeToString()

    return export


class GrpcReceiver:
    """A grpcio server with both OTLP services, optionally TLS."""

    def __init__(
        self,
        ingest: Ingest,
        host: str,
        port: int,
        max_message_bytes: int,
        workers: int = 8,
        max_concurrent_rpcs: int = 16,
        tls: tuple[bytes, bytes] | None = None,  # (key PEM, certificate chain PEM)
    ) -> None:
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        handlers = [
            grpc.method_handlers_generic_handler(
                SERVICES[name],
                {"Export": grpc.unary_unary_rpc_method_handler(_handler(ingest, signal))},
            )
            for name, signal in SIGNALS.items()
        ]
        self.server.add_generic_rpc_handlers(handlers)
        address = f"{host}:{port}"
        try:
            if tls:
                credentials = grpc.ssl_server_credentials([tls])
                self.port = self.server.add_secure_port(address, credentials)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")

    def start(self) -> None:
        self.server.start()
        log.info("OTLP/gRPC listening on port %d", self.port)

    def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish for ``grace`` seconds."""
        self.server.stop(grace).wait(grace + 1)
