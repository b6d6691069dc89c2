"""OTLP → columns and validation, table-driven, without a server."""

from __future__ import annotations

import base64
import json

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector import otlp_json
from tests.support.collector_helpers import span_request
from tracestore.otlp_columns import (
    NS,
    DecodeError,
    Limits,
    MetricColumns,
    TraceColumns,
    validate_metrics,
    validate_traces,
)

NOW = 1_800_000_000 * NS


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


VALUES = [
    (AnyValue(string_value="hé"), 1, "hé"),
    (AnyValue(bool_value=True), 2, "true"),
    (AnyValue(bool_value=False), 2, "false"),
    (AnyValue(int_value=-(2**63)), 3, str(-(2**63))),
    (AnyValue(double_value=0.1), 4, "0.1"),
    (AnyValue(double_value=1e300), 4, "1e+300"),
    (AnyValue(bytes_value=b"\x00\xff"), 5, base64.b64encode(b"\x00\xff").decode()),
    (
        AnyValue(
            array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])
        ),
        6,
        '{"values":[{"intValue":"1"},{"stringValue":"a"}]}',
    ),
    (
        AnyValue(kvlist_value=KeyValueList(values=[_kv("k", AnyValue(bool_value=True))])),
        7,
        '{"values":[{"key":"k","value":{"boolValue":true}}]}',
    ),
    (AnyValue(), 0, ""),
]


def _one_span_request(*attributes: KeyValue) -> ExportTraceServiceRequest:
    request = span_request(1, start_ns=NOW)
    request.resource_spans[0].scope_spans[0].spans[0].attributes.extend(attributes)
    return request


def _columns(request: ExportTraceServiceRequest, limits: Limits | None = None) -> TraceColumns:
    builder = TraceColumns(limits or Limits())
    builder.add(request.SerializeToString(), NOW)
    return builder


@pytest.mark.parametrize(("value", "code", "text"), VALUES)
def test_attribute_values_are_typed_text(value, code, text):
    columns = _columns(_one_span_request(_kv("k", value))).columns
    assert (columns["attr_types"][0], columns["attr_values"][0]) == ([code], [text])


def test_nested_attributes_events_links_and_resource_columns():
    request = _one_span_request(*[_kv(f"k{i}", v) for i, (v, _, _) in enumerate(VALUES)])
    resource_spans = request.resource_spans[0]
    resource_spans.resource.dropped_attributes_count = 4
    resource_spans.schema_url = "https://r"
    scope_spans = resource_spans.scope_spans[0]
    scope_spans.scope.name, scope_spans.scope.version = "lib", "2.0"
    scope_spans.scope.attributes.append(_kv("s", AnyValue(int_value=1)))
    scope_spans.schema_url = "https://s"
    span = scope_spans.spans[0]
    event = span.events.add(name="e", time_unix_nano=NOW + 1, dropped_attributes_count=2)
    event.attributes.append(_kv("b", AnyValue(bytes_value=b"x")))
    link = span.links.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, trace_state="a=b", flags=0x301
    )
    link.attributes.append(_kv("n", AnyValue(double_value=2.5)))
    link.dropped_attributes_count = 1
    span.status.code, span.status.message = 2, "bad"
    columns = _columns(request).columns
    row = {name: values[0] for name, values in columns.items()}
    assert row["attr_types"] == [code for _, code, _ in VALUES]
    assert row["attr_values"] == [text for _, _, text in VALUES]
    assert row["resource_attr_keys"] == ["service.name"]
    assert row["resource_dropped_attributes_count"] == 4
    assert (row["resource_schema_url"], row["scope_schema_url"]) == ("https://r", "https://s")
    assert (row["scope_name"], row["scope_version"]) == ("lib", "2.0")
    assert json.loads(row["scope_attrs"]) == [["s", 3, "1"]]
    assert row["event_names"] == ["e"] and row["event_times_ns"] == [NOW + 1]
    assert json.loads(row["event_attrs"][0]) == [["b", 5, "eA=="]]
    assert row["event_dropped_attributes_counts"] == [2]
    assert row["link_trace_ids"] == ["01" * 16] and row["link_span_ids"] == ["02" * 8]
    assert row["link_trace_states"] == ["a=b"] and row["link_flags"] == [0x301]
    assert json.loads(row["link_attrs"][0]) == [["n", 4, "2.5"]]
    assert row["link_dropped_attributes_counts"] == [1]
    assert (row["status_code"], row["status_message"]) == (2, "bad")
    assert row["ts"] == NOW // NS


def test_long_strings_and_bytes_are_truncated_and_counted():
    request = _one_span_request(
        _kv("s", AnyValue(string_value="x" * 50)),
        _kv("b", AnyValue(bytes_value=b"y" * 50)),
        _kv("short", AnyValue(string_value="ok")),
    )
    builder = _columns(request, Limits(max_attribute_length=10))
    assert builder.columns["attr_values"][0] == [
        "x" * 10,
        base64.b64encode(b"y" * 10).decode(),
        "ok",
    ]
    assert builder.stats.truncated_attributes == 2


def _with_ids(**ids: bytes) -> ExportTraceServiceRequest:
    request = span_request(1, start_ns=NOW)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for name, value in ids.items():
        setattr(span, name, value)
    return request


@pytest.mark.parametrize(
    "ids",
    [
        {"trace_id": b"\x01" * 15},
        {"trace_id": bytes(16)},
        {"trace_id": b""},
        {"span_id": b"\x01" * 9},
        {"span_id": bytes(8)},
        {"parent_span_id": b"\x01" * 3},
    ],
)
def test_spans_with_invalid_ids_are_rejected_and_the_rest_kept(ids):
    request = span_request(3, start_ns=NOW)
    bad = _with_ids(**ids).resource_spans[0].scope_spans[0].spans[0]
    request.resource_spans[0].scope_spans[0].spans.insert(1, bad)
    good_ids = [s.span_id for s in request.resource_spans[0].scope_spans[0].spans if s != bad]
    verdict = validate_traces(request, request.SerializeToString(), Limits(), NOW)
    assert (verdict.accepted, verdict.rejected) == (3, 1)
    assert "invalid trace or span id" in verdict.message
    kept = ExportTraceServiceRequest.FromString(verdict.payload)
    assert [s.span_id for s in kept.resource_spans[0].scope_spans[0].spans] == good_ids


def test_valid_requests_are_spooled_as_received():
    raw = span_request(5, start_ns=NOW).SerializeToString()
    verdict = validate_traces(ExportTraceServiceRequest.FromString(raw), raw, Limits(), NOW)
    assert verdict.payload is raw and (verdict.accepted, verdict.rejected) == (5, 0)


@pytest.mark.parametrize("offset_s", [-2 * 86_400, 2 * 3_600])
def test_far_timestamps_are_rejected_under_the_reject_policy(offset_s):
    request = span_request(2, start_ns=NOW)
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano += offset_s * NS
    verdict = validate_traces(request, None, Limits(timestamp_policy="reject"), NOW)
    assert (verdict.accepted, verdict.rejected) == (1, 1)
    assert "outside the accepted window" in verdict.message


@pytest.mark.parametrize(("offset_s", "edge_s"), [(-30 * 86_400, -86_400), (10 * 3_600, 3_600)])
def test_far_timestamps_are_clamped_keeping_the_duration(offset_s, edge_s):
    request = span_request(1, start_ns=NOW + offset_s * NS)
    verdict = validate_traces(request, None, Limits(), NOW)
    assert verdict.rejected == 0
    builder = TraceColumns(Limits())
    builder.add(verdict.payload, NOW)
    assert builder.columns["start_ns"] == [NOW + edge_s * NS]
    assert builder.columns["duration_ns"] == [1000]
    assert builder.stats.clamped_timestamps == 1


def test_metric_points_outside_the_window_are_rejected_or_clamped():
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.gauge.data_points.add(time_unix_nano=NOW, as_int=4)
    metric.gauge.data_points.add(time_unix_nano=NOW - 5 * 86_400 * NS, as_double=1.5)
    clamped = MetricColumns(Limits())
    clamped.add(request.SerializeToString(), NOW)
    assert clamped.columns["time_ns"] == [NOW, NOW - 86_400 * NS]
    assert clamped.columns["value"] == [4.0, 1.5]
    verdict = validate_metrics(request, None, Limits(timestamp_policy="reject"), NOW)
    assert (verdict.accepted, verdict.rejected) == (1, 1)


def test_otlp_json_ids_are_hex_and_bad_hex_is_an_invalid_id():
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "",
                                "name": "ok",
                                "kind": 2,
                                "startTimeUnixNano": str(NOW),
                                "endTimeUnixNano": str(NOW + 5),
                                "links": [{"traceId": "00" * 15 + "01", "spanId": "ab" * 8}],
                                "unknownField": 1,
                            },
                            {"traceId": "not-hex", "spanId": "eee19b7ec3c1b174", "name": "bad"},
                        ]
                    }
                ],
            }
        ]
    }
    request = otlp_json.parse(ExportTraceServiceRequest, json.dumps(body).encode())
    verdict = validate_traces(request, None, Limits(), NOW)
    assert (verdict.accepted, verdict.rejected) == (1, 1)
    builder = TraceColumns(Limits())
    builder.add(verdict.payload, NOW)
    columns = builder.columns
    assert columns["trace_id"] == ["5b8efff798038103d269b633813fc60c"]
    assert columns["span_id"] == ["eee19b7ec3c1b174"] and columns["span_kind"] == [2]
    assert columns["link_trace_ids"] == [["00" * 15 + "01"]]


@pytest.mark.parametrize("body", [b"{", b"[1]", b'{"resourceSpans": 3}', b"\xff\xfe"])
def test_malformed_json_is_a_decode_error(body):
    with pytest.raises(DecodeError):
        otlp_json.parse(ExportTraceServiceRequest, body)
