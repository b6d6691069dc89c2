"""OTLP/gRPC receiver: TraceService and MetricsService on one grpcio server.

Handlers take the raw request bytes (no generated servicer, no second decode):
``Ingest`` checks them (traces straight from the bytes with the compiled decoder,
otherwise decoded once) and, when nothing was rejected, the very same bytes go
to the spool. gzip-compressed requests are decompressed
by grpcio. Answers: bad or missing token → UNAUTHENTICATED (from the metadata,
before any message is read), no message within the read timeout →
DEADLINE_EXCEEDED, oversize → RESOURCE_EXHAUSTED (grpcio, from the receive
limit), malformed → INVALID_ARGUMENT, spool full → RESOURCE_EXHAUSTED with a
RetryInfo so OTLP exporters back off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2

from collector.config import MAX_CONNECTION_AGE_GRACE_S, MAX_CONNECTION_AGE_S
from collector.ingest import SIGNALS, Ingest, Signal, SpoolFull
from runtime.tls_files import KeyPairFiles
from tracestore.otlp_columns import DecodeError

log = logging.getLogger(__name__)
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
RETRY_AFTER_S = 1
KEEPALIVE_S = 30
KEEPALIVE_TIMEOUT_S = 10


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


class _Export:
    """One OTLP ``Export`` method, served as a stream so nothing is read before auth.

    grpcio reads a unary request before calling its handler, so a client that sends
    headers and no message would hold the call (and, on a thread pool, a thread)
    without ever showing its token. As a client-streaming handler it runs at call
    start: the token in the metadata is checked first, then one message is awaited
    for at most ``read_timeout`` seconds; decoding and spooling run on a thread pool."""

    def __init__(
        self, ingest: Ingest, signal: Signal, pool: ThreadPoolExecutor, read_timeout: float
    ) -> None:
        self.ingest = ingest
        self.signal = signal
        self.pool = pool
        self.read_timeout = read_timeout

    async def export(self, requests, context: grpc.aio.ServicerContext) -> bytes:
        stats = self.ingest.stats
        metadata = dict(context.invocation_metadata() or ())
        if not self.ingest.authorized(metadata.get("authorization")):
            stats.add("refused_requests_total", label="unauthenticated")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            raw = await asyncio.wait_for(context.read(), self.read_timeout)
        except TimeoutError:
            stats.add("refused_requests_total", label="read_timeout")
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no request message within {self.read_timeout:g}s",
            )
        if raw is grpc.aio.EOF:
            stats.add("refused_requests_total", label="malformed")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, self._ingest, raw)
        except DecodeError as exc:
            stats.add("refused_requests_total", label="malformed")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except SpoolFull as exc:
            await context.abort_with_status(_retry_later(f"collector spool is full: {exc}"))

    def _ingest(self, raw: bytes) -> bytes:
        return self.ingest.accept_bytes(self.signal, raw).SerializeToString()


def _connection_options(age_s: float, grace_s: float) -> list[tuple[str, int]]:
    """Keepalive both ways, and connections that end after ``age_s`` (GOAWAY, then
    ``grace_s`` for running calls) so clients reconnect through the Service and
    spread over new replicas. ``age_s <= 0`` keeps connections forever."""
    options = [
        ("grpc.keepalive_time_ms", KEEPALIVE_S * 1000),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_S * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIMEOUT_S * 1000),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if age_s > 0:
        options.append(("grpc.max_connection_age_ms", int(age_s * 1000)))
        options.append(("grpc.max_connection_age_grace_ms", int(grace_s * 1000)))
    return options


def _reloading_credentials(files: KeyPairFiles) -> grpc.ServerCredentials:
    """Server credentials that take a changed key pair at the next connection's handshake."""

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        pair = files.reloaded()
        return grpc.ssl_server_certificate_configuration([pair]) if pair else None

    initial = grpc.ssl_server_certificate_configuration([files.read()])
    return grpc.dynamic_ssl_server_credentials(initial, fetch)


class GrpcReceiver:
    """A grpc.aio server with both OTLP services, optionally TLS, on its own thread.

    Calls waiting for their message cost no thread; at most ``max_concurrent_rpcs``
    calls exist at once (grpcio answers RESOURCE_EXHAUSTED beyond), each for at most
    ``read_timeout`` seconds before its message is in."""

    def __init__(
        self,
        ingest: Ingest,
        host: str,
        port: int,
        max_message_bytes: int,
        workers: int = 8,
        max_concurrent_rpcs: int = 64,
        tls: KeyPairFiles | None = None,  # reloaded when the files change
        read_timeout: float = 30.0,
        handshake_timeout: float = 10.0,
        max_connection_age_s: float = MAX_CONNECTION_AGE_S,
        max_connection_age_grace_s: float = MAX_CONNECTION_AGE_GRACE_S,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc")
        self._loop = asyncio.SelectorEventLoop()  # grpc.aio wants asyncio's own loop
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-grpc-loop")
        self._thread.daemon = True
        self._thread.start()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            # a connection must finish TLS and the HTTP/2 preface in this time
            ("grpc.server_handshake_timeout_ms", int(handshake_timeout * 1000)),
            *_connection_options(max_connection_age_s, max_connection_age_grace_s),
        ]
        handlers = [
            grpc.method_handlers_generic_handler(
                SERVICES[name],
                {
                    "Export": grpc.stream_unary_rpc_method_handler(
                        _Export(ingest, signal, self._pool, read_timeout).export
                    )
                },
            )
            for name, signal in SIGNALS.items()
        ]
        address = f"{host}:{port}"

        async def build() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server(options=options, maximum_concurrent_rpcs=max_concurrent_rpcs)
            server.add_generic_rpc_handlers(handlers)
            try:
                if tls:
                    bound = server.add_secure_port(address, _reloading_credentials(tls))
                else:
                    bound = server.add_insecure_port(address)
            except RuntimeError:
                bound = 0
            return server, bound

        self.server, self.port = self._run(build())
        if self.port == 0:
            self._close_loop()
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")

    def _run(self, coroutine, timeout: float | None = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> None:
        self._run(self.server.start())
        log.info("OTLP/gRPC listening on port %d", self.port)

    def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish for ``grace`` seconds."""
        try:
            self._run(self.server.stop(grace), grace + 5)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        self._pool.shutdown(wait=False)
