"""The sidecar's bulk OTLP encoder agrees with the OpenTelemetry SDK's encoder."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sidecar.hostport import split_host_port
from sidecar.otlp_encode import (
    SCOPE_NAME,
    SCOPE_VERSION,
    SpanEncoder,
    encode_red_metrics,
    span_fields,
)
from sidecar.telemetry_record import CLIENT, GRPC, HTTP, SERVER, TCP, Record

T, S, P = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00f067aa0ba902b7"
BASE = dict(
    trace_id=T, span_id=S, parent_id=P, parent_remote=True, start_ns=1_700_000_000_000_000_000,
    end_ns=1_700_000_000_001_234_567, method="GET", target="/users/42?q=1", status=200,
    server_address="api.local", server_port=8080, peer_address="10.0.0.7", peer_port=51000,
    protocol_version="1.1", user_agent="curl/8", error_type="", peer="", bytes_in=0, bytes_out=0,
)  # fmt: skip
RECORDS = [
    Record(HTTP, SERVER, **BASE),
    Record(HTTP, SERVER, **{**BASE, "status": 503, "parent_id": ""}),
    Record(HTTP, CLIENT, **{**BASE, "parent_remote": False, "peer_address": "10.0.0.9"}),
    Record(HTTP, CLIENT, **{**BASE, "status": 502, "error_type": "connect_error"}),
    Record(GRPC, SERVER, **{**BASE, "method": "/pkg.Svc/Get", "target": "", "status": 5}),
    Record(TCP, SERVER, **{**BASE, "method": "", "target": "", "bytes_in": 8, "bytes_out": 26}),
]
KINDS = {SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}


def _reference(rec: Record, route: str, resource: Resource) -> ReadableSpan:
    name, attrs, error = span_fields(rec, route)
    flags = TraceFlags(TraceFlags.SAMPLED)
    parent = (
        SpanContext(int(T, 16), int(rec.parent_id, 16), rec.parent_remote, flags)
        if rec.parent_id
        else None
    )
    return ReadableSpan(
        name=name,
        context=SpanContext(int(T, 16), int(rec.span_id, 16), False, flags),
        parent=parent,
        resource=resource,
        attributes=attrs,
        kind=KINDS[rec.kind],
        status=Status(StatusCode.ERROR, rec.error_type or None) if error else Status(),
        start_time=rec.start_ns,
        end_time=rec.end_ns,
        instrumentation_scope=InstrumentationScope(SCOPE_NAME, SCOPE_VERSION),
    )


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: f"{r.protocol}-{r.kind}-{r.status}")
def test_encoded_span_matches_sdk_encoder(rec: Record) -> None:
    resource_attrs = {"service.name": "svc", "k8s.pod.name": "pod-1"}
    ours = SpanEncoder(resource_attrs).encode([(rec, "/users/{id}"), (rec, "/users/{id}")])
    sdk = encode_spans([_reference(rec, "/users/{id}", Resource(resource_attrs))])
    [ours_rs], [sdk_rs] = ours.resource_spans, sdk.resource_spans
    assert ours_rs.resource == sdk_rs.resource
    assert ours_rs.scope_spans[0].scope == sdk_rs.scope_spans[0].scope
    sdk_span = sdk_rs.scope_spans[0].spans[0]
    sdk_span.ClearField("flags")  # ours also carries the W3C sampled bit
    assert len(ours_rs.scope_spans[0].spans) == 2  # the second comes from the encoder's cache
    for ours_span in ours_rs.scope_spans[0].spans:
        assert ours_span.flags & 0x1  # sampled
        ours_span.ClearField("flags")
        assert ours_span == sdk_span


def test_span_fields_semantic_conventions() -> None:
    name, attrs, error = span_fields(RECORDS[0], "/users/{id}")
    assert name == "GET /users/{id}" and not error
    assert attrs["url.path"] == "/users/42" and attrs["url.query"] == "q=1"
    assert attrs["http.response.status_code"] == 200 and attrs["client.address"] == "10.0.0.7"
    name, attrs, error = span_fields(RECORDS[1], "")
    assert name == "GET" and error and attrs["error.type"] == "503"
    name, attrs, error = span_fields(RECORDS[2], "")
    assert attrs["url.full"] == "http://api.local:8080/users/42?q=1" and "url.path" not in attrs
    name, attrs, error = span_fields(RECORDS[4], "")
    assert name == "pkg.Svc/Get" and not error  # NOT_FOUND is the caller's, not the server's
    assert (attrs["rpc.service"], attrs["rpc.method"], attrs["rpc.grpc.status_code"]) == (
        "pkg.Svc", "Get", 5,
    )  # fmt: skip


SERVER_ERRORS = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                 "DATA_LOSS"}  # fmt: skip
GRPC_CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]  # fmt: skip


@pytest.mark.parametrize(("code", "name"), list(enumerate(GRPC_CODES)))
@pytest.mark.parametrize("kind", [SERVER, CLIENT])
def test_grpc_status_is_an_error_per_span_kind(code: int, name: str, kind: int) -> None:
    """RPC conventions: a server span fails only for the six server-side codes, a client
    span for every code but OK; error.type names the code."""
    rec = Record(GRPC, kind, **{**BASE, "method": "/pkg.Svc/Get", "target": "", "status": code})
    _, attrs, error = span_fields(rec, "")
    expected = name in SERVER_ERRORS if kind == SERVER else name != "OK"
    assert error is expected
    assert attrs.get("error.type") == (name if expected else None)


@pytest.mark.parametrize(
    ("host", "peer", "address", "port", "full"),
    [
        # Host names the server; the original destination is only the network peer
        ("inventory.shop:8080", ("10.96.0.12", 8080), "inventory.shop", 8080,
         "http://inventory.shop:8080/users/42?q=1"),
        ("inventory", ("10.96.0.12", 80), "inventory", 80, "http://inventory/users/42?q=1"),
        ("inventory", ("10.96.0.12", 8080), "inventory", 8080, "http://inventory/users/42?q=1"),
        ("[fd00::1]:9000", ("fd00::1", 9000), "fd00::1", 9000,
         "http://[fd00::1]:9000/users/42?q=1"),
    ],
)  # fmt: skip
def test_client_span_server_is_the_host_and_the_peer_the_destination(
    host: str, peer: tuple, address: str, port: int, full: str
) -> None:
    rec = Record(
        HTTP, CLIENT,
        **{**BASE, "server_address": host, "server_port": 0, "peer_address": peer[0],
           "peer_port": peer[1]},
    )  # fmt: skip
    _, attrs, _ = span_fields(rec, "")
    assert (attrs["server.address"], attrs["server.port"], attrs["url.full"]) == (
        address, port, full,
    )  # fmt: skip
    assert (attrs["network.peer.address"], attrs["network.peer.port"]) == peer
    assert "client.address" not in attrs


@pytest.mark.parametrize(
    ("method", "expected", "name"),
    [
        ("GET", "GET", "GET /users/{id}"),
        ("PATCH", "PATCH", "PATCH /users/{id}"),
        ("PURGE", "_OTHER", "HTTP /users/{id}"),
        ("PROPFIND", "_OTHER", "HTTP /users/{id}"),
    ],
)
def test_non_standard_methods_are_other(method: str, expected: str, name: str) -> None:
    span_name, attrs, _ = span_fields(
        Record(HTTP, SERVER, **{**BASE, "method": method}), "/users/{id}"
    )
    assert (attrs["http.request.method"], span_name) == (expected, name)
    assert attrs.get("http.request.method_original") == (None if method == expected else method)
    # no configured route: the name is the method alone, nothing from the path
    assert span_fields(Record(HTTP, SERVER, **{**BASE, "method": method}), "")[0] == name.split()[0]


def test_red_metrics_request_shape() -> None:
    key = ("inbound", "GET", "/x", "2xx", "")
    request = ExportMetricsServiceRequest.FromString(
        encode_red_metrics({"service.name": "svc"}, {key: (3, 0.5, [1, 2] + [0] * 13)}, 1, 2)
    )
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in metrics] == ["sidetrace.requests", "sidetrace.request.duration"]
    assert metrics[0].sum.data_points[0].as_int == 3 and metrics[0].sum.is_monotonic
    point = metrics[1].histogram.data_points[0]
    assert (point.count, point.sum, sum(point.bucket_counts)) == (3, 0.5, 3)
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api.local:8080", ("api.local", 8080)),
        ("api.local", ("api.local", 80)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 80)),
        ("host:bad", None),
        ("host:70000", None),
        ("[::1", None),
        ("", None),
    ],
)
def test_split_host_port(value: str, expected: tuple | None) -> None:
    assert split_host_port(value, 80) == expected


def _reference_metrics(resource: dict[str, str], snapshot: dict, start: int, now: int):
    """The metrics request built with the protobuf classes (the encoder before it wrote
    wire bytes itself): the oracle for ``encode_red_metrics``."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope as Scope
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourcePb

    from sidecar.red_metrics import DURATION_BUCKETS_S, LABELS, OVERFLOW_KEY
    from sidecar.resource import SCHEMA_URL

    counts, histograms = [], []
    for key, (count, total, buckets) in snapshot.items():
        attrs = (
            [KeyValue(key="otel.metric.overflow", value=AnyValue(bool_value=True))]
            if key == OVERFLOW_KEY
            else [
                KeyValue(key=f"sidetrace.{n}", value=AnyValue(string_value=v))
                for n, v in zip(LABELS, key, strict=True)
            ]
        )
        times = {"start_time_unix_nano": start, "time_unix_nano": now}
        counts.append(m.NumberDataPoint(attributes=attrs, as_int=count, **times))
        histograms.append(
            m.HistogramDataPoint(
                attributes=attrs, count=count, sum=total, bucket_counts=buckets,
                explicit_bounds=DURATION_BUCKETS_S, **times,
            )
        )  # fmt: skip
    cumulative = m.AGGREGATION_TEMPORALITY_CUMULATIVE
    metrics = [
        m.Metric(
            name="sidetrace.requests", unit="{request}",
            description="Requests proxied by the sidecar",
            sum=m.Sum(data_points=counts, aggregation_temporality=cumulative, is_monotonic=True),
        ),
        m.Metric(
            name="sidetrace.request.duration", unit="s",
            description="Duration of requests proxied by the sidecar",
            histogram=m.Histogram(data_points=histograms, aggregation_temporality=cumulative),
        ),
    ]  # fmt: skip
    attributes = [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in resource.items()]
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=ResourcePb(attributes=attributes),
                scope_metrics=[
                    m.ScopeMetrics(
                        scope=Scope(name=SCOPE_NAME, version=SCOPE_VERSION),
                        metrics=metrics,
                        schema_url=SCHEMA_URL,
                    )
                ],
                schema_url=SCHEMA_URL,
            )
        ]
    )


def test_red_metrics_bytes_equal_the_protobuf_built_request() -> None:
    from sidecar.red_metrics import OVERFLOW_KEY

    snapshot = {
        ("inbound", "GET", "/users/{id}", "2xx", "svc-b"): (3, 0.5, [1, 2] + [0] * 13),
        ("outbound", "_OTHER", "", "error", ""): (2**40, 1e-9, [0] * 14 + [2**40]),
        OVERFLOW_KEY: (7, 12.25, [7] + [0] * 14),
    }
    resource = {"service.name": "svc", "k8s.pod.name": "pod-ü"}
    ours = encode_red_metrics(resource, snapshot, 1_700_000_000_000_000_000, 2**63 + 5)
    expected = _reference_metrics(resource, snapshot, 1_700_000_000_000_000_000, 2**63 + 5)
    assert ExportMetricsServiceRequest.FromString(ours) == expected
