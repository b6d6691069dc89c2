"""The collector's own counters, rendered as Prometheus text for the admin port.

Counters are plain numbers under a lock; ``prometheus_client`` formats them (exact
values, HELP and TYPE) through a collector that reads them at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

PREFIX = "sidetrace_collector_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_HELP = {
    "received_spans_total": "Spans accepted into the spool.",
    "received_metric_points_total": "Metric data points accepted into the spool.",
    "rejected_spans_total": "Spans rejected at validation (reported as partial success).",
    "rejected_metric_points_total": "Metric data points rejected at validation.",
    "refused_requests_total": "Requests refused whole, by reason.",
    "written_spans_total": "Spans inserted into ClickHouse.",
    "written_metric_points_total": "Metric data points inserted into ClickHouse.",
    "truncated_attributes_total": "Attribute values cut at the configured length.",
    "clamped_timestamps_total": "Timestamps moved into the accepted window.",
    "insert_retries_total": "Inserts retried after a ClickHouse error.",
    "replay_skipped_rows_total": "Replayed rows found already written and not inserted again.",
    "dead_letter_records_total": "Spool records ClickHouse refused (or that did not decode),"
    " moved to the dead-letter file, by reason.",
    "dead_letter_dropped_records_total": "Refused records dropped: the dead-letter file was full.",
}

_GAUGE_HELP = {
    "spool_pending_bytes": "Bytes in the spool not yet written to ClickHouse.",
    "spool_disk_bytes": "Bytes the spool's files take on disk.",
}


class Stats:
    """Thread-safe counters (optionally labelled) and one insert-latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], float] = {}
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._gauges: dict[str, Callable[[], float]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def add(self, name: str, amount: float = 1, label: str = "") -> None:
        if name not in _HELP:
            raise KeyError(f"unknown collector counter {name!r}")
        with self._lock:
            key = (name, label)
            self._counters[key] = self._counters.get(key, 0) + amount

    def get(self, name: str, label: str = "") -> float:
        with self._lock:
            return self._counters.get((name, label), 0)

    def observe_insert(self, seconds: float) -> None:
        with self._lock:
            self._latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self._latency_counts[i] += 1
                    break
            else:
                self._latency_counts[-1] += 1

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (e.g. spool bytes)."""
        self._gauges[name] = read

    def render(self) -> str:
        """The Prometheus text exposition of every counter, gauge and the histogram."""
        return generate_latest(self._registry).decode()

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's collector protocol: current values, read at scrape time."""
        with self._lock:
            counters = dict(self._counters)
            counts = list(self._latency_counts)
            latency_sum = self._latency_sum
        for name, help_text in _HELP.items():
            labelled = {label: v for (n, label), v in counters.items() if n == name}
            if any(labelled):
                family = CounterMetricFamily(PREFIX + name, help_text, labels=("reason",))
                for label, value in sorted(labelled.items()):
                    family.add_metric([label], value)
            else:
                family = CounterMetricFamily(PREFIX + name, help_text, value=labelled.get("", 0))
            yield family
        for name, read in self._gauges.items():
            yield GaugeMetricFamily(PREFIX + name, _GAUGE_HELP.get(name, name), value=read())
        buckets, cumulative = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            f"{PREFIX}insert_duration_seconds",
            "Time of one INSERT into ClickHouse.",
            buckets=buckets,
            sum_value=latency_sum,
            unit="seconds",
        )
