"""Records to OTLP: semantic-convention attributes, then protobuf wire bytes, in bulk.

The OpenTelemetry SDK's span encoder builds a protobuf object per attribute and
costs far more than the proxying itself; a sidecar's attributes repeat (method,
route, status, host), so each encoded key/value is cached and a span is a join
of byte strings. Metrics are few series, written the same way. Nothing here
imports protobuf: the exporters send these bytes as they are, and the sidecar's
resident memory does not carry the protobuf runtime and message classes
(``tests/sidecar/test_sidecar_otlp_encode.py`` parses the output with them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from sidecar._otlpspan import span_with_ids
from sidecar.hostport import split_host_port
from sidecar.red_metrics import DURATION_BUCKETS_S, LABELS, OVERFLOW_KEY, RedKey
from sidecar.resource import SCHEMA_URL
from sidecar.telemetry_record import GRPC, HTTP, SERVER, TCP, Record

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

SCOPE_NAME, SCOPE_VERSION = "sidetrace.sidecar", "0.1.0"
STATUS_UNSET, STATUS_ERROR = 0, 2
# Span.flags: W3C sampled bit, plus "has is_remote" (0x100) and "is_remote" (0x200).
FLAGS_LOCAL_PARENT, FLAGS_REMOTE_PARENT = 0x101, 0x301
_CACHE_LIMIT = 20_000
_KIND_FIELDS = {kind: bytes((6 << 3, kind)) for kind in range(6)}
Attributes = dict[str, str | int]


class EncodedSpans(NamedTuple):
    """An ``ExportTraceServiceRequest`` as wire bytes, and how many spans it holds."""

    payload: bytes
    span_count: int  # (not ``count``: that is tuple's method)


# The request methods HTTP semantic conventions know; any other is reported as _OTHER.
KNOWN_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)
OTHER_METHOD = "_OTHER"
# gRPC status codes by number, and those that make a server span an error (RPC
# semantic conventions; a client span is an error for every code but OK).
GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip
GRPC_SERVER_ERRORS = frozenset((2, 4, 12, 13, 14, 15))


def http_method(method: str) -> str:
    """``http.request.method``: the method when standard, else ``_OTHER``."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def grpc_error(kind: int, status: int) -> bool:
    return status in GRPC_SERVER_ERRORS if kind == SERVER else status != 0


def span_fields(rec: Record, route: str) -> tuple[str, Attributes, bool]:
    """Name, attributes (stable HTTP/RPC semantic conventions) and error flag of a record.

    ``route`` is a configured ``http.route`` template or empty: the name stays
    ``{method} {route}`` or ``{method}`` (``HTTP`` for a non-standard method), never
    anything taken from the path.
    """
    attrs: Attributes = {}
    error = bool(rec.error_type)
    address, port = rec.server_address, rec.server_port
    if rec.protocol == HTTP:
        method = http_method(rec.method)
        attrs["http.request.method"] = method
        if method == OTHER_METHOD:
            attrs["http.request.method_original"] = rec.method
        name = "HTTP" if method == OTHER_METHOD else method
        path, _, query = rec.target.partition("?")
        default_port = rec.peer_port if rec.kind != SERVER and rec.peer_port else 80
        if port == 0:  # the Host header as sent
            host = address
            address, port = split_host_port(address, default_port) or (address, default_port)
        else:
            host = f"{address}:{port}"
        if rec.kind == SERVER:
            attrs["url.path"] = path
            if query:
                attrs["url.query"] = query
            attrs["url.scheme"] = "http"
            if route:
                attrs["http.route"] = route
                name = f"{name} {route}"
            error = error or rec.status >= 500
        else:
            attrs["url.full"] = f"http://{host}{rec.target}"
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
        if rec.user_agent:
            attrs["user_agent.original"] = rec.user_agent
        name = f"{service}/{method}"
        if grpc_error(rec.kind, rec.status) and not rec.error_type:
            error = True
            attrs["error.type"] = GRPC_CODES[rec.status] if rec.status < 17 else str(rec.status)
    else:
        attrs["network.transport"] = "tcp"
        name = f"tcp {rec.server_port}"
    attrs["server.address"] = address
    attrs["server.port"] = port
    if rec.peer_address:
        if rec.kind == SERVER:
            attrs["client.address"] = rec.peer_address
            attrs["client.port"] = rec.peer_port
        attrs["network.peer.address"] = rec.peer_address
        attrs["network.peer.port"] = rec.peer_port
    if rec.protocol == TCP or rec.bytes_in or rec.bytes_out:
        attrs["sidetrace.bytes_in"] = rec.bytes_in
        attrs["sidetrace.bytes_out"] = rec.bytes_out
    if rec.error_type:
        attrs["error.type"] = rec.error_type
    return name, attrs, error


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_head(number: int, size: int) -> bytes:
    """Tag and length of a length-delimited field (wire type 2) of ``size`` bytes."""
    if size < 128 and number < 16:
        return bytes((number << 3 | 2, size))
    return _varint(number << 3 | 2) + _varint(size)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _field_head(number, len(payload)) + payload


def _any_value(value: str | int | bool) -> bytes:
    if isinstance(value, bool):
        return bytes((2 << 3, value))
    if isinstance(value, int):
        return _varint(3 << 3) + _varint(value & 0xFFFFFFFFFFFFFFFF)
    return _field(1, value.encode())


def _key_value(key: str, value: str | int | bool) -> bytes:
    """A ``KeyValue`` message's body."""
    return _field(1, key.encode()) + _field(2, _any_value(value))


def _resource(attributes: dict[str, str]) -> bytes:
    """A ``Resource`` message's body."""
    return b"".join(_field(1, _key_value(k, v)) for k, v in attributes.items())


def _scope() -> bytes:
    """The ``InstrumentationScope`` message's body."""
    return _field(1, SCOPE_NAME.encode()) + _field(2, SCOPE_VERSION.encode())


def _fixed64(number: int, value: int) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<Q", value)


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", value)


class SpanEncoder:
    """Encodes a batch of records as one ``ExportTraceServiceRequest`` (one resource)."""

    def __init__(self, resource_attributes: dict[str, str]):
        self._resource_field = _field(1, _resource(resource_attributes))
        self._scope_field = _field(1, _scope())
        self._schema_field = _field(3, SCHEMA_URL.encode())  # in ResourceSpans and ScopeSpans
        self._attr_cache: dict[tuple[str, str | int], bytes] = {}
        self._rest_cache: dict[tuple, bytes] = {}

    def _attribute(self, key: str, value: str | int) -> bytes:
        cache_key = (key, value)
        encoded = self._attr_cache.get(cache_key)
        if encoded is None:
            encoded = _field(9, _key_value(key, value))
            if len(self._attr_cache) >= _CACHE_LIMIT:
                self._attr_cache.clear()
            self._attr_cache[cache_key] = encoded
        return encoded

    def encode_span(self, rec: Record, route: str) -> bytes:
        # Everything but ids and times depends only on the record's other fields, which
        # repeat a lot (same route, peer, connection): encode once, reuse.
        key = (route, *rec[:2], rec[5], *rec[8:])
        rest = self._rest_cache.get(key)
        if rest is None:
            rest = self.encode_rest(rec, route)
            if len(self._rest_cache) >= _CACHE_LIMIT:
                self._rest_cache.clear()
            self._rest_cache[key] = rest
        return span_with_ids(
            rec.trace_id, rec.span_id, rec.parent_id, rec.start_ns, rec.end_ns, rest
        )

    def encode_rest(self, rec: Record, route: str) -> bytes:
        """Name, kind, attributes, status and flags of a span: all but its ids and times."""
        name, attrs, error = span_fields(rec, route)
        attribute = self._attribute
        parts = [_field(5, name.encode()), _KIND_FIELDS[rec.kind]]
        parts.extend(attribute(k, v) for k, v in attrs.items())
        if error:
            status = _varint(3 << 3) + _varint(STATUS_ERROR)
            if rec.error_type:
                status = _field(2, rec.error_type.encode()) + status
            parts.append(_field(15, status))
        else:
            parts.append(b"\x7a\x00")  # status {} (unset), as the SDK encoder writes it
        flags = FLAGS_REMOTE_PARENT if rec.parent_remote else FLAGS_LOCAL_PARENT
        parts.append(b"\x85\x01" + struct.pack("<I", flags))
        return b"".join(parts)

    def request_bytes(self, encoded_spans: Iterable[bytes]) -> bytes:
        """The wire bytes of an ``ExportTraceServiceRequest`` holding these encoded spans.

        Built with one join: wrapping the spans field by field would copy them once per
        enclosing message.
        """
        spans = list(encoded_spans)
        schema = self._schema_field
        scope_spans_size = len(self._scope_field) + sum(map(len, spans)) + len(schema)
        scope_spans_head = _field_head(2, scope_spans_size)
        resource_spans_size = (
            len(self._resource_field) + len(scope_spans_head) + scope_spans_size + len(schema)
        )
        return b"".join(
            (
                _field_head(1, resource_spans_size),
                self._resource_field,
                scope_spans_head,
                self._scope_field,
                *spans,
                schema,
                schema,
            )
        )

    def encode(self, spans: Iterable[tuple[Record, str]]) -> ExportTraceServiceRequest:
        """The request as a message (for tests and tools: the sidecar sends the bytes)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        encoded = self.request_bytes(self.encode_span(r, route) for r, route in spans)
        return ExportTraceServiceRequest.FromString(encoded)


def _metric_attributes(key: RedKey, number: int) -> bytes:
    """A data point's attributes (field ``number``): the RED labels, or the overflow mark."""
    if key == OVERFLOW_KEY:
        return _field(number, _key_value("otel.metric.overflow", True))
    return b"".join(
        _field(number, _key_value(f"sidetrace.{n}", v)) for n, v in zip(LABELS, key, strict=True)
    )


def encode_red_metrics(
    resource_attributes: dict[str, str],
    snapshot: dict[RedKey, tuple[int, float, list[int]]],
    start_ns: int,
    now_ns: int,
) -> bytes:
    """An ``ExportMetricsServiceRequest`` (wire bytes): a cumulative request counter and a
    duration histogram per RED key."""
    times = _fixed64(2, start_ns) + _fixed64(3, now_ns)
    bounds = _field(7, struct.pack(f"<{len(DURATION_BUCKETS_S)}d", *DURATION_BUCKETS_S))
    counts, histograms = [], []
    for key, (count, total, buckets) in snapshot.items():
        counts.append(
            _field(1, _metric_attributes(key, 7) + times + _varint(6 << 3 | 1)
                   + struct.pack("<q", count))
        )  # fmt: skip
        histograms.append(
            _field(
                1,
                _metric_attributes(key, 9) + times + _fixed64(4, count) + _double(5, total)
                + _field(6, struct.pack(f"<{len(buckets)}Q", *buckets)) + bounds,
            )
        )  # fmt: skip
    cumulative = bytes((2 << 3, 2))  # aggregation_temporality: CUMULATIVE
    requests = _field(7, b"".join(counts) + cumulative + bytes((3 << 3, 1)))  # monotonic
    duration = _field(9, b"".join(histograms) + cumulative)
    metrics = (
        _field(2, _field(1, b"sidetrace.requests") + _field(2, b"Requests proxied by the sidecar")
               + _field(3, b"{request}") + requests)
        + _field(2, _field(1, b"sidetrace.request.duration")
                 + _field(2, b"Duration of requests proxied by the sidecar")
                 + _field(3, b"s") + duration)
    )  # fmt: skip
    schema = _field(3, SCHEMA_URL.encode())
    scope_metrics = _field(2, _field(1, _scope()) + metrics + schema)
    return _field(1, _field(1, _resource(resource_attributes)) + scope_metrics + schema)
