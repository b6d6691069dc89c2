"""The OpenTelemetry SDK's OTLP exporters → collector → ClickHouse: every field reads back.

Runs against the real clickhouse-server and chDB (the ``store`` fixture), over
OTLP/gRPC and OTLP/HTTP.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from tests.support.collector_helpers import decode_attribute, running_collector
from tests.support.polling import eventually

SPAN_FIELDS = (
    "trace_id, span_id, parent_span_id, trace_state, flags, service_name, span_name, "
    "span_kind, status_code, status_message, scope_name, scope_version, start_ns, "
    "duration_ns, attr_keys, attr_types, attr_values, resource_attr_keys, "
    "resource_attr_types, resource_attr_values, event_times_ns, event_names, event_attrs, "
    "event_dropped_attributes_counts, link_trace_ids, link_span_ids, link_trace_states, "
    "link_attrs, link_dropped_attributes_counts, link_flags, dropped_attributes_count, "
    "dropped_events_count, dropped_links_count, resource_dropped_attributes_count, "
    "scope_attrs, resource_schema_url, scope_schema_url"
)
RESOURCE = {
    "service.name": "checkout",
    "k8s.namespace.name": "shop",
    "host.cores": 8,
    "host.virtual": True,
    "host.load": 0.75,
    "host.tags": ("a", "b"),
}


def _span_exporter(transport: str, collector):
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True)
    return HttpSpanExporter(endpoint=f"http://127.0.0.1:{collector.config.http_port}/v1/traces")


def _metric_exporter(transport: str, collector):
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True)
    return HttpMetricExporter(endpoint=f"http://127.0.0.1:{collector.config.http_port}/v1/metrics")


def _record_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer(
        "shop.checkout", "1.2.3", "https://opentelemetry.io/schemas/1.24.0", {"scope.kind": "lib"}
    )
    remote_parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "abc"), ("other", "x-1")]),
    )
    linked = SpanContext(
        trace_id=0x11111111111111111111111111111111,
        span_id=0x2222222222222222,
        is_remote=True,
        trace_state=TraceState([("lk", "v")]),
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote_parent))
    with tracer.start_as_current_span(
        "POST /cart/checkout",
        context=context,
        kind=SpanKind.SERVER,
        links=[Link(linked, {"link.reason": "retry", "link.n": 2})],
        attributes={
            "http.method": "POST",
            "http.status_code": 500,
            "retry": False,
            "ratio": 0.125,
            "tags": ["x", "y"],
            "codes": [1, 2, 3],
            "flags": [True, False],
            "weights": [1.5, -2.0],
        },
    ) as span:
        span.set_attribute("long.text", "é" * 50)
        span.set_attribute("over.limit.1", "dropped")  # beyond max_span_attributes
        span.set_attribute("over.limit.2", "dropped")
        span.add_event("cache.miss", {"key": "cart:42", "size": 3}, timestamp=span.start_time + 5)
        span.add_event("db.query", {"rows": 1.5})
        span.add_event("dropped.event")  # beyond max_events
        with tracer.start_as_current_span("load cart", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.OK))
        span.set_status(Status(StatusCode.ERROR, "payment declined"))


def _attributes(keys: list, types: list, values: list) -> dict:
    return {k: decode_attribute(t, v) for k, t, v in zip(keys, types, values, strict=True)}


def _json_attributes(text: str) -> dict:
    return {k: decode_attribute(t, v) for k, t, v in json.loads(text)}


def _python(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_every_span_field_reads_back_as_sent(store, tmp_path, transport):
    with running_collector(store, tmp_path / "spool") as collector:
        memory = InMemorySpanExporter()
        provider = TracerProvider(
            resource=Resource(RESOURCE, schema_url="https://opentelemetry.io/schemas/1.21.0"),
            span_limits=SpanLimits(max_span_attributes=9, max_events=2, max_links=4),
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.add_span_processor(SimpleSpanProcessor(_span_exporter(transport, collector)))
        _record_spans(provider)
        provider.shutdown()
        sent = memory.get_finished_spans()
        rows = eventually(
            lambda: len(r := store.query(f"SELECT {SPAN_FIELDS} FROM spans")) == 2 and r
        )
    by_id = {row[1]: row for row in rows}
    names = [f.strip() for f in SPAN_FIELDS.split(",")]
    sent_links = {
        span.span_id.hex(): list(span.links)
        for rs in encode_spans(sent).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    for span in sent:
        row = dict(zip(names, by_id[format(span.context.span_id, "016x")], strict=True))
        assert row["trace_id"] == format(span.context.trace_id, "032x")
        assert row["parent_span_id"] == format(span.parent.span_id, "016x")
        assert row["trace_state"] == span.context.trace_state.to_header()
        assert row["flags"] == 0x100 | (0x200 if span.parent.is_remote else 0)
        assert row["service_name"] == "checkout"
        assert row["span_name"] == span.name
        assert row["span_kind"] == span.kind.value + 1
        assert (
            row["status_code"] == {StatusCode.OK: 1, StatusCode.ERROR: 2}[span.status.status_code]
        )
        assert row["status_message"] == (span.status.description or "")
        assert (row["scope_name"], row["scope_version"]) == ("shop.checkout", "1.2.3")
        assert row["scope_schema_url"] == "https://opentelemetry.io/schemas/1.24.0"
        assert _json_attributes(row["scope_attrs"]) == {"scope.kind": "lib"}
        assert row["start_ns"] == span.start_time
        assert row["duration_ns"] == span.end_time - span.start_time
        attributes = _attributes(row["attr_keys"], row["attr_types"], row["attr_values"])
        assert attributes == {k: _python(v) for k, v in span.attributes.items()}
        resource = _attributes(
            row["resource_attr_keys"], row["resource_attr_types"], row["resource_attr_values"]
        )
        assert resource == {k: _python(v) for k, v in span.resource.attributes.items()}
        assert row["resource_schema_url"] == "https://opentelemetry.io/schemas/1.21.0"
        assert row["resource_dropped_attributes_count"] == 0
        assert row["dropped_attributes_count"] == span.dropped_attributes
        assert row["dropped_events_count"] == span.dropped_events
        assert row["dropped_links_count"] == span.dropped_links
        assert list(row["event_names"]) == [e.name for e in span.events]
        assert list(row["event_times_ns"]) == [e.timestamp for e in span.events]
        assert [_json_attributes(a) for a in row["event_attrs"]] == [
            dict(e.attributes) for e in span.events
        ]
        assert list(row["event_dropped_attributes_counts"]) == [
            e.dropped_attributes for e in span.events
        ]
        assert list(row["link_trace_ids"]) == [
            format(link.context.trace_id, "032x") for link in span.links
        ]
        assert list(row["link_span_ids"]) == [
            format(link.context.span_id, "016x") for link in span.links
        ]
        # The SDK does not put link trace state on the wire: compare with what it sends.
        assert list(row["link_trace_states"]) == [
            link.trace_state for link in sent_links[row["span_id"]]
        ]
        assert [_json_attributes(a) for a in row["link_attrs"]] == [
            dict(link.attributes) for link in span.links
        ]
        assert list(row["link_dropped_attributes_counts"]) == [
            link.dropped_attributes for link in span.links
        ]
        assert list(row["link_flags"]) == [0x300 for _ in span.links]
    dropped = [
        (r[names.index("dropped_attributes_count")], r[names.index("dropped_events_count")])
        for r in rows
    ]
    assert sorted(dropped) == [(0, 0), (2, 1)]  # the limits made the SDK drop these


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sum_and_histogram_metrics_read_back(store, tmp_path, transport):
    with running_collector(store, tmp_path / "spool") as collector:
        reader = PeriodicExportingMetricReader(
            _metric_exporter(transport, collector), export_interval_millis=3_600_000
        )
        provider = MeterProvider(
            resource=Resource({"service.name": "checkout"}), metric_readers=[reader]
        )
        meter = provider.get_meter("shop.metrics")
        requests = meter.create_counter("http.server.requests", unit="1")
        latency = meter.create_histogram("http.server.duration", unit="ms")
        requests.add(3, {"route": "/cart"})
        requests.add(2, {"route": "/cart"})
        requests.add(7, {"route": "/pay"})
        for value in (4, 40, 400):
            latency.record(value, {"route": "/cart"})
        provider.shutdown()
        rows = eventually(
            lambda: (
                len(
                    r := store.query(
                        "SELECT metric_name, metric_type, unit, temporality, is_monotonic, "
                        "attr_keys, attr_values, value, count, sum, bucket_bounds, bucket_counts, "
                        "service_name, scope_name, time_ns FROM metric_points "
                        "ORDER BY metric_name, attr_values"
                    )
                )
                == 3
                and r
            )
        )
    duration, cart, pay = rows
    assert cart[:8] == ("http.server.requests", 2, "1", 2, 1, ["route"], ["/cart"], 5.0)
    assert pay[6:8] == (["/pay"], 7.0)
    assert duration[:7] == ("http.server.duration", 3, "ms", 2, 0, ["route"], ["/cart"])
    assert (duration[8], duration[9]) == (3, 444.0)
    bounds, counts = list(duration[10]), list(duration[11])
    assert len(counts) == len(bounds) + 1 and sum(counts) == 3
    assert [counts[sum(b < v for b in bounds)] >= 1 for v in (4, 40, 400)] == [True] * 3
    assert {r[12] for r in rows} == {"checkout"} and {r[13] for r in rows} == {"shop.metrics"}
    assert all(r[14] > 0 for r in rows)
