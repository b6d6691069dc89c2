"""Hypothesis strategies for OTLP trace requests built with the protobuf classes: any
attribute value (nested arrays and lists too), spans with events and links, and requests
of several resources and scopes. ``otlp_wire`` writes what protobuf never would."""

from __future__ import annotations

from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.support import otlp_wire

any_values = st.deferred(
    lambda: st.one_of(
        st.builds(AnyValue),
        st.builds(AnyValue, string_value=otlp_wire.texts),
        st.builds(AnyValue, bool_value=st.booleans()),
        st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1)),
        st.builds(AnyValue, double_value=otlp_wire.doubles),
        st.builds(AnyValue, bytes_value=st.binary(max_size=20)),
        st.builds(
            AnyValue, array_value=st.builds(ArrayValue, values=st.lists(any_values, max_size=3))
        ),
        st.builds(
            AnyValue,
            kvlist_value=st.builds(KeyValueList, values=st.lists(key_values, max_size=3)),
        ),
    )
)
key_values = st.builds(KeyValue, key=st.sampled_from(otlp_wire.KEYS), value=any_values)
attributes = st.lists(key_values, max_size=6)


@st.composite
def proto_requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_spans = request.resource_spans.add(schema_url=draw(otlp_wire.texts))
        resource = resource_spans.resource
        resource.attributes.extend(draw(attributes))
        resource.dropped_attributes_count = draw(st.integers(0, 2**32 - 1))
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add(schema_url=draw(otlp_wire.texts))
            scope = scope_spans.scope
            scope.name, scope.version = draw(otlp_wire.texts), draw(otlp_wire.texts)
            scope.attributes.extend(draw(attributes))
            for _ in range(draw(st.integers(0, 4))):
                scope_spans.spans.append(draw(spans()))
    return request


@st.composite
def spans(draw) -> Span:
    span = Span(
        trace_id=draw(st.binary(min_size=16, max_size=16)),
        span_id=draw(st.binary(min_size=8, max_size=8)),
        parent_span_id=draw(st.sampled_from([b"", b"\x07" * 8])),
        trace_state=draw(otlp_wire.texts),
        flags=draw(st.integers(0, 2**32 - 1)),
        name=draw(otlp_wire.texts),
        kind=draw(st.integers(-(2**31), 2**31 - 1)),
        start_time_unix_nano=draw(otlp_wire.times),
        end_time_unix_nano=draw(otlp_wire.times),
        dropped_attributes_count=draw(st.integers(0, 2**32 - 1)),
        dropped_events_count=draw(st.integers(0, 9)),
        dropped_links_count=draw(st.integers(0, 9)),
    )
    span.attributes.extend(draw(attributes))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(otlp_wire.texts), time_unix_nano=draw(otlp_wire.times))
        event.attributes.extend(draw(attributes))
        event.dropped_attributes_count = draw(st.integers(0, 5))
    for _ in range(draw(st.integers(0, 2))):
        link = span.links.add(
            trace_id=draw(st.binary(max_size=16)),
            span_id=draw(st.binary(max_size=8)),
            trace_state=draw(otlp_wire.texts),
            flags=draw(st.integers(0, 2**32 - 1)),
            dropped_attributes_count=draw(st.integers(0, 5)),
        )
        link.attributes.extend(draw(attributes))
    if draw(st.booleans()):
        span.status.CopyFrom(Status(code=draw(st.integers(0, 2)), message=draw(otlp_wire.texts)))
    return span
