"""The sidecar's ``/metrics``: Prometheus text through ``prometheus_client``, built at scrape time.

The proxy's hot path keeps bumping plain integers and the telemetry thread keeps
aggregating RED series (``red_metrics``); a custom collector turns their current
values into metric families only when Prometheus scrapes. Besides sidetrace's own
families (``sidetrace_requests_total``, ``sidetrace_request_duration_seconds`` with a
``direction`` label, and the ``sidetrace_sidecar_*`` counters), request durations
are exposed under the OpenTelemetry semantic-convention names Prometheus users
query: ``http.server.request.duration`` / ``http.client.request.duration`` (HTTP),
``rpc.server.call.duration`` / ``rpc.client.call.duration`` (gRPC), in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from sidecar.red_metrics import (
    COUNTER_HELP,
    DURATION_BUCKETS_S,
    LABELS,
    ProxyCounters,
    RedKey,
    RedMetrics,
)

# (direction, protocol) -> semantic-convention family and its help
_SEMCONV = {
    ("inbound", "http"): (
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
    ),
    ("outbound", "http"): (
        "http_client_request_duration_seconds",
        "Duration of HTTP client requests.",
    ),
    ("inbound", "grpc"): ("rpc_server_call_duration_seconds", "Duration of gRPC server calls."),
    ("outbound", "grpc"): ("rpc_client_call_duration_seconds", "Duration of gRPC client calls."),
}
_HTTP_LABELS = (
    "http_request_method",
    "http_route",
    "http_response_status_class",
    "network_peer_address",
)
_GRPC_LABELS = ("rpc_method", "rpc_grpc_status_code", "network_peer_address")


def _buckets(counts: list[int], total: int) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs, ``+Inf`` last."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(DURATION_BUCKETS_S, counts, strict=False):
        running += n
        out.append((repr(bound), running))
    out.append(("+Inf", total))
    return out


def _protocol(key: RedKey) -> str:
    klass = key[3]
    if klass.startswith("grpc_"):
        return "grpc"
    return "tcp" if key[1] == "TCP" else "http"


def _semconv_labels(key: RedKey, protocol: str) -> list[str]:
    _direction, method, route, klass, peer = key
    if protocol == "grpc":
        return [route or method, klass.removeprefix("grpc_"), peer]
    return [method, route, klass, peer]


class SidecarCollector:
    """Reads the RED series and counters when scraped; nothing is kept between scrapes."""

    def __init__(
        self,
        red: RedMetrics,
        counters: ProxyCounters,
        dropped_by_reason: Callable[[], Mapping[str, int]],
    ) -> None:
        self._red = red
        self._counters = counters
        self._dropped = dropped_by_reason

    def collect(self) -> Iterator[Metric]:
        snapshot = sorted(self._red.snapshot().items())
        requests = CounterMetricFamily(
            "sidetrace_requests", "Requests proxied by the sidecar.", labels=LABELS
        )
        durations = HistogramMetricFamily(
            "sidetrace_request_duration_seconds",
            "Duration of requests proxied by the sidecar.",
            labels=LABELS,
            unit="seconds",
        )
        semconv = {
            key: HistogramMetricFamily(
                name,
                help_text,
                labels=_GRPC_LABELS if key[1] == "grpc" else _HTTP_LABELS,
                unit="seconds",
            )
            for key, (name, help_text) in _SEMCONV.items()
        }
        for key, (count, total, counts) in snapshot:
            buckets = _buckets(counts, count)
            requests.add_metric(list(key), count)
            durations.add_metric(list(key), buckets, total)
            protocol = _protocol(key)
            family = semconv.get((key[0], protocol))
            if family is not None:
                family.add_metric(_semconv_labels(key, protocol), buckets, total)
        yield requests
        yield durations
        yield from semconv.values()
        for field in fields(self._counters):
            name = f"sidetrace_sidecar_{field.name}"
            help_text = COUNTER_HELP[field.name]
            value = getattr(self._counters, field.name)
            if field.name.endswith("_total"):
                yield CounterMetricFamily(name, help_text, value=value)
            else:
                yield GaugeMetricFamily(name, help_text, value=value)
        dropped = CounterMetricFamily(
            "sidetrace_sidecar_spans_dropped_by_reason",
            "Spans the collector refused or that could not be sent, by reason.",
            labels=("reason",),
        )
        for reason, n in sorted(self._dropped().items()):
            dropped.add_metric([reason], n)
        yield dropped


def registry_for(collector: SidecarCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()
