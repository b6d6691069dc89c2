"""RED metrics (rate, errors, duration) per direction, method, route, status class and peer.

Updated only by the telemetry thread; read at scrape time by the admin port's
``/metrics`` (``prometheus_metrics``) and exported over OTLP by the telemetry
thread. Proxy counters (drops, broken propagation, detection give-ups,
connections) live in ``ProxyCounters``: plain integers bumped on the event loop,
read as-is (torn reads are harmless).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LABELS = ("direction", "method", "route", "status_class", "peer")
RedKey = tuple[str, str, str, str, str]
# Series per metric, as OpenTelemetry SDKs' default cardinality limit; past it a new
# key is counted in the overflow series (OTLP: ``otel.metric.overflow=true``).
MAX_SERIES = 2000
OVERFLOW_KEY: RedKey = ("_OTHER", "_OTHER", "_OTHER", "_OTHER", "_OTHER")
# HELP text of each ProxyCounters field on /metrics (``sidetrace_sidecar_<name>``)
COUNTER_HELP = {
    "connections_total": "Client connections accepted.",
    "connections_active": "Client connections open now.",
    "connections_rejected_total": "Client connections refused at the connection limit.",
    "requests_in_flight_inbound": "Inbound requests being proxied now.",
    "broken_propagation_total": "Outbound requests whose trace context could not be continued.",
    "lane_pairings_total": "Client connections paired with an upstream on the C lane.",
    "protocol_detect_timeouts_total": "Connections that sent nothing to detect a protocol from.",
    "bad_requests_total": "Requests refused as malformed.",
    "upstream_errors_total": "Requests the upstream failed (refused, reset, timed out).",
    "records_dropped_total": "Request records dropped because the telemetry queue was full.",
    "spans_exported_total": "Spans sent to the collector.",
    "spans_dropped_total": "Spans dropped before or at export.",
    "export_failures_total": "Span exports that failed.",
    "metric_overflow_total": "Requests counted in the overflow series (series limit reached).",
    "peer_label_overflow_total": "Peer label values folded into _OTHER (malformed or too many).",
}


@dataclass
class ProxyCounters:
    """Counters the proxy increments on its hot path; each becomes ``sidetrace_sidecar_<name>``."""

    connections_total: int = 0
    connections_active: int = 0
    connections_rejected_total: int = 0
    requests_in_flight_inbound: int = 0
    broken_propagation_total: int = 0
    lane_pairings_total: int = 0  # client connections paired with an upstream (the C lane)
    protocol_detect_timeouts_total: int = 0
    bad_requests_total: int = 0
    upstream_errors_total: int = 0
    records_dropped_total: int = 0
    spans_exported_total: int = 0
    spans_dropped_total: int = 0
    export_failures_total: int = 0
    metric_overflow_total: int = 0  # bumped by the telemetry thread, as the next one
    peer_label_overflow_total: int = 0


def status_class(status: int) -> str:
    return f"{status // 100}xx" if status >= 100 else "error"


class _Series:
    __slots__ = ("count", "total", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(DURATION_BUCKETS_S) + 1)


class RedMetrics:
    """Request count and duration histogram per ``RedKey``, at most ``max_series`` of
    them plus the overflow series; ``overflowed`` counts observations it took."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self._series: dict[RedKey, _Series] = {}
        self._lock = threading.Lock()
        self.max_series = max_series
        self.overflowed = 0

    def observe(self, observations: list[tuple[RedKey, float]]) -> None:
        """Add a batch of ``(key, duration_s)`` under one lock."""
        bounds, locate, series_of = DURATION_BUCKETS_S, bisect.bisect_left, self._series
        with self._lock:
            for key, duration_s in observations:
                series = series_of.get(key)
                if series is None:
                    if len(series_of) - (OVERFLOW_KEY in series_of) >= self.max_series:
                        key = OVERFLOW_KEY
                        self.overflowed += 1
                        series = series_of.get(key)
                    if series is None:
                        series = series_of[key] = _Series()
                series.count += 1
                series.total += duration_s
                series.buckets[locate(bounds, duration_s)] += 1

    def snapshot(self) -> dict[RedKey, tuple[int, float, list[int]]]:
        with self._lock:
            return {k: (s.count, s.total, list(s.buckets)) for k, s in self._series.items()}
