"""Telemetry off the request path: compact records in, OTLP spans and RED metrics out.

The proxy appends one ``Record`` tuple per request (or connection) to a bounded
deque and never waits. A worker thread drains it, builds OpenTelemetry SDK
``ReadableSpan`` objects, exports them in batches with the OTLP/gRPC exporter
(which retries with backoff), and updates RED metrics. When the queue is full
or an export finally fails, the records are counted as dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sidecar.red_metrics import ProxyCounters, RedMetrics, status_class
from sidecar.routes import RouteMatcher

log = logging.getLogger(__name__)

HTTP, GRPC, TCP = 1, 2, 3
SERVER, CLIENT = 2, 3
_SCOPE = InstrumentationScope("sidetrace.sidecar", "0.1.0")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OTEL_KIND = {SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}
_DIRECTION = {SERVER: "inbound", CLIENT: "outbound"}


class Record(NamedTuple):
    """One finished request or connection as the proxy saw it.

    ``trace_id`` is empty when the request was not sampled (metrics only).
    For HTTP ``method``/``target``/``status`` are the request method, target and
    response status; for gRPC ``method`` is ``/pkg.Service/Method`` and ``status``
    the grpc-status; for TCP they are empty and zero.
    """

    protocol: int
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    parent_remote: bool
    start_ns: int
    end_ns: int
    method: str
    target: str
    status: int
    server_address: str
    server_port: int
    client_address: str
    client_port: int
    protocol_version: str
    user_agent: str
    error_type: str
    peer: str
    bytes_in: int
    bytes_out: int


class Telemetry:
    """Owns the record queue, the worker thread, span export and RED metrics."""

    def __init__(
        self,
        resource_attributes: dict[str, str],
        exporter: SpanExporter | None,
        counters: ProxyCounters,
        routes: RouteMatcher,
        max_queue: int = 65536,
        batch_size: int = 2048,
        interval_s: float = 0.2,
        meter_provider: object | None = None,
    ):
        self.resource = Resource.create(resource_attributes)
        self.counters = counters
        self.red = RedMetrics()
        self._exporter = exporter
        self._routes = routes
        self._queue: collections.deque[Record] = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sidecar-telemetry", daemon=True)
        self._instruments = _otel_instruments(meter_provider)

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: Record) -> None:
        """Hot path: enqueue or count a drop. Safe from any thread."""
        if len(self._queue) < self._max_queue:
            self._queue.append(record)
        else:
            self.counters.records_dropped_total += 1
            if record.trace_id:
                self.counters.spans_dropped_total += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Drain what is queued (bounded by ``timeout``), then shut the exporter down."""
        self._stop.set()
        self._thread.join(timeout)
        if self._exporter is not None:
            self._exporter.shutdown()

    def wait_idle(self, timeout: float) -> bool:
        """Block until the queue has been drained and exported once (for tests and flush)."""
        self._idle.clear()
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if not self._queue:
                self._idle.set()
                if stopping:
                    return
                self._stop.wait(self._interval_s)
                continue
            batch = []
            popleft = self._queue.popleft
            try:
                while len(batch) < self._batch_size:
                    batch.append(popleft())
            except IndexError:
                pass
            try:
                self._process(batch)
            except Exception:  # never let one bad record kill telemetry
                log.exception("telemetry batch failed")
            if len(self._queue) < self._batch_size and not stopping:
                self._stop.wait(self._interval_s)

    def _process(self, batch: list[Record]) -> None:
        spans = []
        resource = self.resource
        routes = self._routes
        observe = self.red.observe
        histogram = self._instruments
        for rec in batch:
            route = routes.route(rec.target) if rec.protocol == HTTP and rec.target else ""
            duration_s = (rec.end_ns - rec.start_ns) / 1e9
            if rec.protocol == GRPC:
                klass = f"grpc_{rec.status}"
            elif rec.protocol == HTTP:
                klass = status_class(rec.status)
            else:
                klass = "error" if rec.error_type else "ok"
            key = (_DIRECTION[rec.kind], rec.method or "TCP", route, klass, rec.peer)
            observe(key, duration_s)
            if histogram is not None:
                histogram.record(duration_s, dict(zip(_OTEL_LABELS, key, strict=True)))
            if rec.trace_id:
                spans.append(_span(rec, route, resource))
        if not spans or self._exporter is None:
            return
        result = self._exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.counters.spans_exported_total += len(spans)
        else:
            self.counters.spans_dropped_total += len(spans)
            self.counters.export_failures_total += 1


_OTEL_LABELS = ("sidetrace.direction", "http.request.method", "http.route", "status_class", "peer")


def _otel_instruments(meter_provider: object | None):
    """A duration histogram on the SDK meter (its count is the request counter)."""
    if meter_provider is None:
        return None
    meter = meter_provider.get_meter("sidetrace.sidecar")  # type: ignore[attr-defined]
    return meter.create_histogram(
        "sidetrace.request.duration", unit="s", description="Proxied request duration"
    )


def _span(rec: Record, route: str, resource: Resource) -> ReadableSpan:
    """Build the SDK span with the stable HTTP / RPC semantic-convention attributes."""
    attrs: dict[str, str | int] = {}
    error = bool(rec.error_type)
    if rec.protocol == HTTP:
        attrs["http.request.method"] = rec.method
        path, _, query = rec.target.partition("?")
        if rec.kind == SERVER:
            attrs["url.path"] = path
            if query:
                attrs["url.query"] = query
            attrs["url.scheme"] = "http"
            if route:
                attrs["http.route"] = route
            name = f"{rec.method} {route}" if route else rec.method
            error = error or rec.status >= 500
        else:
            attrs["url.full"] = f"http://{rec.server_address}:{rec.server_port}{rec.target}"
            name = rec.method
            error = error or rec.status >= 400
        if rec.status:
            attrs["http.response.status_code"] = rec.status
        if rec.protocol_version:
            attrs["network.protocol.version"] = rec.protocol_version
        if rec.user_agent:
            attrs["user_agent.original"] = rec.user_agent
        if error and not rec.error_type:
            attrs["error.type"] = str(rec.status)
    elif rec.protocol == GRPC:
        service, _, method = rec.method.lstrip("/").partition("/")
        attrs["rpc.system"] = "grpc"
        attrs["rpc.service"] = service
        attrs["rpc.method"] = method
        attrs["rpc.grpc.status_code"] = rec.status
        attrs["network.protocol.version"] = "2"
        name = f"{service}/{method}"
        error = error or rec.status != 0
    else:
        attrs["network.transport"] = "tcp"
        name = f"tcp {rec.server_port}"
    attrs["server.address"] = rec.server_address
    attrs["server.port"] = rec.server_port
    if rec.client_address:
        attrs["client.address"] = rec.client_address
        attrs["client.port"] = rec.client_port
    if rec.bytes_in or rec.bytes_out or rec.protocol == TCP:
        attrs["sidetrace.bytes_in"] = rec.bytes_in
        attrs["sidetrace.bytes_out"] = rec.bytes_out
    if rec.error_type:
        attrs["error.type"] = rec.error_type
    context = SpanContext(int(rec.trace_id, 16), int(rec.span_id, 16), False, _SAMPLED)
    parent = (
        SpanContext(int(rec.trace_id, 16), int(rec.parent_id, 16), rec.parent_remote, _SAMPLED)
        if rec.parent_id
        else None
    )
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attrs,
        kind=_OTEL_KIND[rec.kind],
        status=Status(StatusCode.ERROR, rec.error_type or None) if error else Status(),
        start_time=rec.start_ns,
        end_time=rec.end_ns,
        instrumentation_scope=_SCOPE,
    )


def now_ns() -> int:
    return time.time_ns()
