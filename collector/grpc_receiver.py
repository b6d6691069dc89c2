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

import logging
import threading
import time
from collections.abc import Callable
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


class ReadDeadlines:
    """Ends calls whose request message has not come ``timeout`` seconds after they began.

    One thread for all calls; the deadline is the same for every call, so the calls wait
    in the order they came and the oldest is the first due. The watcher looks every
    ``timeout / 4`` seconds (at most a second), so watching a call costs no wake-up."""

    def __init__(
        self, timeout: float, end_call: Callable[[grpc.ServicerContext, str], None]
    ) -> None:
        self.timeout = timeout
        self.reason = f"no request message within {timeout:g}s"
        self._end_call = end_call
        self._waiting: dict[int, tuple[float, grpc.ServicerContext]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="otlp-grpc-deadlines")
        self._thread.daemon = True
        self._thread.start()

    def watch(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._waiting[id(context)] = (time.monotonic() + self.timeout, context)

    def arrived(self, context: grpc.ServicerContext) -> bool:
        """The message came: stop watching. False when the deadline ended the call first."""
        with self._lock:
            return self._waiting.pop(id(context), None) is not None

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stopped.wait(min(1.0, self.timeout / 4)):
            now = time.monotonic()
            due = []
            with self._lock:
                for key, (deadline, context) in list(self._waiting.items()):
                    if deadline > now:
                        break
                    del self._waiting[key]
                    due.append(context)
            for context in due:
                self._end_call(context, self.reason)


def _end_call(context: grpc.ServicerContext, reason: str) -> None:
    """End a call from outside its handler with DEADLINE_EXCEEDED and ``reason``.

    grpcio's public ``cancel()`` can only say CANCELLED; its call object (the same
    grpcio the lock file pins) can give the status and details an exporter logs."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], reason)
    except (AttributeError, TypeError):  # another grpcio: the public way
        context.cancel()


_ENDED = object()


class _Export:
    """One OTLP ``Export`` method, served as a stream so nothing is read before auth.

    grpcio reads a unary request before calling its handler, so a client that sends
    headers and no message would hold the call (and its thread) without ever showing
    its token. As a client-streaming handler it runs at call start: the token in the
    metadata is checked first, then one message is awaited until ``deadlines`` ends the
    call; at most ``decoding`` requests are checked and spooled at once."""

    def __init__(
        self,
        ingest: Ingest,
        signal: Signal,
        deadlines: ReadDeadlines,
        decoding: threading.BoundedSemaphore,
    ) -> None:
        self.ingest = ingest
        self.signal = signal
        self.deadlines = deadlines
        self.decoding = decoding

    def export(self, requests, context: grpc.ServicerContext) -> bytes:
        stats = self.ingest.stats
        metadata = dict(context.invocation_metadata() or ())
        if not self.ingest.authorized(metadata.get("authorization")):
            stats.add("refused_requests_total", label="unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        self.deadlines.watch(context)
        try:
            raw = next(requests, None)
        except grpc.RpcError:  # the call ended while waiting: the deadline or the client
            raw = _ENDED
        if not self.deadlines.arrived(context):
            stats.add("refused_requests_total", label="read_timeout")
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, self.deadlines.reason)
        if raw is _ENDED:
            context.abort(grpc.StatusCode.CANCELLED, "the client ended the call")
        if raw is None:
            stats.add("refused_requests_total", label="malformed")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        try:
            with self.decoding:
                return self.ingest.accept_bytes(self.signal, raw).SerializeToString()
        except DecodeError as exc:
            stats.add("refused_requests_total", label="malformed")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except SpoolFull as exc:
            context.abort_with_status(_retry_later(f"collector spool is full: {exc}"))


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
    """A grpcio server with both OTLP services, optionally TLS.

    Each call has a thread from its start (so ``max_concurrent_rpcs`` threads at most;
    grpcio answers RESOURCE_EXHAUSTED beyond) for at most ``read_timeout`` seconds
    before its message is in; the request is checked and spooled on that thread, with
    no hop to another. (grpc.aio cost twice the CPU a request: its event loop, poller
    thread and executor hop; docs/performance.md.)"""

    def __init__(
        self,
        ingest: Ingest,
        host: str,
        port: int,
        max_message_bytes: int,
        workers: int = 8,  # requests checked and spooled at once
        max_concurrent_rpcs: int = 64,
        tls: KeyPairFiles | None = None,  # reloaded when the files change
        read_timeout: float = 30.0,
        handshake_timeout: float = 10.0,
        max_connection_age_s: float = MAX_CONNECTION_AGE_S,
        max_connection_age_grace_s: float = MAX_CONNECTION_AGE_GRACE_S,
    ) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=max_concurrent_rpcs, thread_name_prefix="otlp-grpc"
        )
        self._deadlines = ReadDeadlines(read_timeout, _end_call)
        decoding = threading.BoundedSemaphore(workers)
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
                        _Export(ingest, signal, self._deadlines, decoding).export
                    )
                },
            )
            for name, signal in SIGNALS.items()
        ]
        address = f"{host}:{port}"
        self.server = grpc.server(
            self._pool,
            handlers=handlers,
            options=options,
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        try:
            if tls:
                self.port = self.server.add_secure_port(address, _reloading_credentials(tls))
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            self._close()
            raise OSError(f"cannot listen for OTLP/gRPC on {address}")

    def start(self) -> None:
        self.server.start()
        log.info("OTLP/gRPC listening on port %d", self.port)

    def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish for ``grace`` seconds."""
        try:
            self.server.stop(grace).wait(grace + 5)
        finally:
            self._close()

    def _close(self) -> None:
        self._deadlines.stop()
        self._pool.shutdown(wait=False)
