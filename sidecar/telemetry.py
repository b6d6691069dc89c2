"""Telemetry off the request path: compact records in, OTLP spans and RED metrics out.

The proxy appends one record per request (or connection) to a bounded deque and
never waits; ``sidecar.telemetry_record`` describes their shapes. A worker thread
drains it in batches: RED metrics are updated, sampled records are encoded in bulk
(``sidecar.otlp_encode``) and sent over OTLP/gRPC or OTLP/HTTP
(``sidecar.otlp_export``), with retries and backoff. When the queue is full or an
export finally fails, the spans are counted as dropped. Metrics are exported over
OTLP on their own interval from the same thread.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Sized
from typing import cast

from sidecar._otlpspan import span_from_packed, span_with_ids
from sidecar.cardinality import peer_limiters
from sidecar.export_failures import ExportFailures
from sidecar.otlp_encode import EncodedSpans, SpanEncoder, encode_red_metrics, http_method
from sidecar.red_metrics import ProxyCounters, RedKey, RedMetrics, status_class
from sidecar.routes import RouteMatcher
from sidecar.telemetry_record import (
    GRPC,
    HTTP,
    LANE_RECORDS,
    LANE_SAMPLED,
    LANE_TIMES,
    LANE_TIMES_OFFSET,
    SERVER,
    Record,
)

log = logging.getLogger(__name__)
Packed = tuple  # (LANE_RECORDS, fields, packed): an HTTP exchange (telemetry_record)
_DIRECTION = {SERVER: "inbound"}
_SUMMARY_CACHE_LIMIT = 20_000
_CHUNK = 64  # records between yields to the event loop (~0.2 ms of work here)


class Telemetry:
    """Owns the record queue, the worker thread, span and metric export, RED metrics."""

    def __init__(
        self,
        resource_attributes: dict[str, str],
        counters: ProxyCounters,
        routes: RouteMatcher,
        span_exporter=None,
        metric_exporter=None,
        max_queue: int = 65536,
        batch_size: int = 2048,
        interval_s: float = 0.2,
        metric_interval_s: float = 15.0,
        peer_key: bytes | None = None,
    ):
        self.resource_attributes = resource_attributes
        self.counters = counters
        self.red = RedMetrics()
        self.peer_key = peer_key  # verifies the inbound peer header; tags the outbound one
        self._inbound_peers, self._outbound_peers = peer_limiters(peer_key)
        self.failures = ExportFailures()
        self._encoder = SpanEncoder(resource_attributes)
        self._span_exporter = span_exporter
        self._metric_exporter = metric_exporter
        self._routes = routes
        self._summaries: dict[Hashable, tuple[RedKey, bytes]] = {}
        self._queue: collections.deque[Record | Packed] = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._metric_interval_s = metric_interval_s
        self._started_ns = time.time_ns()
        self._next_metrics = time.monotonic() + metric_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sidecar-telemetry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: Record | Packed, sampled: bool = False) -> None:
        """Hot path: enqueue or count a drop. Safe from any thread.

        ``item`` is a ``Record`` or an HTTP exchange's ``(LANE_RECORDS, fields, packed)``;
        for those, ``sampled`` says whether a span would be lost with it.
        """
        if len(self._queue) < self._max_queue:
            self._queue.append(item)
            return
        self.counters.records_dropped_total += 1
        if item.trace_id if type(item) is Record else sampled:
            self.counters.spans_dropped_total += 1

    def queue_handles(self) -> tuple[Callable[[Packed], None], Sized, int]:
        """The queue's ``append``, the queue and its bound, for C code that enqueues
        ``(LANE_RECORDS, fields, packed)`` items as ``submit`` does (and counts its own
        drops)."""
        return self._queue.append, self._queue, self._max_queue

    def stop(self, timeout: float = 10.0) -> None:
        """Drain what is queued, export metrics once more, shut the exporters down."""
        self._stop.set()
        self._thread.join(timeout)
        for exporter in (self._span_exporter, self._metric_exporter):
            if exporter is not None:
                exporter.shutdown()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            batch: list[Record | Packed] = []
            popleft = self._queue.popleft
            try:
                while len(batch) < self._batch_size:
                    batch.append(popleft())
            except IndexError:
                pass
            if batch:
                try:
                    self._process(batch)
                except Exception:  # one bad batch must not end telemetry
                    log.exception("telemetry batch failed")
            if stopping and not self._queue:
                self._export_metrics()
                return
            if time.monotonic() >= self._next_metrics:
                self._export_metrics()
            if len(self._queue) < self._batch_size and not stopping:
                self._stop.wait(self._interval_s)

    def _process(self, batch: list[Record | Packed]) -> None:
        spans: list[bytes] = []
        for first in range(0, len(batch), _CHUNK):
            self._observe(batch[first : first + _CHUNK], spans)
            # Hand the core and the GIL to the event loop if a request woke it meanwhile:
            # the scheduler need not preempt this thread for it, and a request would
            # otherwise wait for the whole batch.
            os.sched_yield()
        if not spans or self._span_exporter is None:
            return
        encoded = EncodedSpans(self._encoder.request_bytes(spans), len(spans))
        if self._span_exporter.export(encoded).name == "SUCCESS":
            self.counters.spans_exported_total += len(spans)
        else:
            self.counters.spans_dropped_total += len(spans)
            self.counters.export_failures_total += 1
            failure = getattr(self._span_exporter, "last_failure", None)
            if failure is None:
                self.failures.record("other", "span export failed", len(spans))
            else:
                self.failures.record(failure.reason, failure.explanation, len(spans))

    def _observe(self, records: list[Record | Packed], spans: list[bytes]) -> None:
        """RED metrics of ``records``; their encoded spans, if sampled, onto ``spans``."""
        summaries = self._summaries
        observations: list[tuple[RedKey, float]] = []
        observe = observations.append
        add_span = spans.append
        times, times_at, lane = LANE_TIMES.unpack_from, LANE_TIMES_OFFSET, LANE_RECORDS
        for item in records:
            # Records differing only in ids and times share their metric key and
            # their encoded span body: work those out once per distinct signature.
            if item[0] is lane:  # every HTTP exchange: read in place, not via digest
                signature, packed = item[1], item[2]
                start_ns, end_ns, flags = times(packed, times_at)
                summary = summaries.get(signature)
                if summary is None:
                    summary = self._summarize(lane.record(signature, packed), signature)
                observe((summary[0], (end_ns - start_ns) / 1e9))
                if flags & LANE_SAMPLED:
                    add_span(span_from_packed(packed, summary[1]))
                continue
            rec = cast(Record, item)  # gRPC or TCP
            signature = (rec[0], rec[1], rec[5], *rec[8:])
            trace_id, span_id, parent_id = rec[2:5]
            start_ns, end_ns = rec[6:8]
            summary = summaries.get(signature)
            if summary is None:
                summary = self._summarize(rec, signature)
            observe((summary[0], (end_ns - start_ns) / 1e9))
            if trace_id:
                add_span(span_with_ids(trace_id, span_id, parent_id, start_ns, end_ns, summary[1]))
        red = self.red
        red.observe(observations)
        self.counters.metric_overflow_total = red.overflowed
        self.counters.peer_label_overflow_total = (
            self._inbound_peers.overflowed + self._outbound_peers.overflowed
        )

    def _summarize(self, rec: Record, signature: Hashable) -> tuple[RedKey, bytes]:
        """The RED key and the encoded span body (all but ids and times) of a record."""
        path = rec.target.partition("?")[0] if rec.protocol == HTTP else ""
        route = self._routes.route(path) if path else ""
        method = rec.method or "TCP"
        if rec.protocol == GRPC:
            klass = f"grpc_{rec.status}"
        elif rec.protocol == HTTP:
            klass = status_class(rec.status)
            method = http_method(rec.method)
        else:
            klass = "error" if rec.error_type else "ok"
        direction = _DIRECTION.get(rec.kind, "outbound")
        # The peer is a hint (a forgeable header inbound): labelled only while few.
        peers = self._inbound_peers if rec.kind == SERVER else self._outbound_peers
        key = (direction, method, route, klass, peers(rec.peer))
        rest = self._encoder.encode_rest(rec, route) if self._span_exporter is not None else b""
        if len(self._summaries) >= _SUMMARY_CACHE_LIMIT:
            self._summaries.clear()
        summary = self._summaries[signature] = (key, rest)
        return summary

    def _export_metrics(self) -> None:
        self._next_metrics = time.monotonic() + self._metric_interval_s
        if self._metric_exporter is None:
            return
        snapshot = self.red.snapshot()
        if not snapshot:
            return
        request = encode_red_metrics(
            self.resource_attributes, snapshot, self._started_ns, time.time_ns()
        )
        try:
            self._metric_exporter.export_request(request)
        except Exception:
            log.exception("metric export failed")
