"""The compiled span decoder (``tracestore/_otlpdecode.c``) against the Python one.

``otlp_columns.TraceColumns`` is the reference. For every request both must give
the same columns, value by value, and the same counts of truncated attributes and
clamped timestamps, or both must refuse it with ``DecodeError`` (and a refused
request adds no rows). Requests come three ways: built with the protobuf classes
(every field), written field by field on the wire (``tests/otlp_wire.py``: any
order, repeats, unknown fields and groups, wrong wire types, over-long varints,
bad UTF-8), and valid bytes cut short or corrupted.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import otlp_wire
from tests.support.otlp_protos import proto_requests
from tests.support.otlp_wire import END_GROUP, LEN, NOW, NS, START_GROUP, field, message, tag
from tracestore.compiled_columns import CompiledTraceColumns, _otlpdecode, check_traces
from tracestore.otlp_columns import (
    SPAN_COLUMNS,
    DecodeError,
    Limits,
    TraceColumns,
    decode,
    validate_traces,
)

pytestmark = [
    pytest.mark.skipif(_otlpdecode is None, reason="tracestore._otlpdecode not built"),
    pytest.mark.slow,  # hundreds of generated requests per property: CI runs them, -m unit not
]

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = [Limits(), Limits(max_attribute_length=3), Limits(max_attribute_length=0)]
DECODERS = (TraceColumns, CompiledTraceColumns)
REFUSED = "DecodeError"


def outcome(builder_type: type, payload: bytes, limits: Limits, received_ns: int = NOW):
    """What one decoder makes of one request, after one valid request already added."""
    builder = builder_type(limits)
    builder.add(_FIRST, received_ns)
    before = {name: list(values) for name, values in builder.columns.items()}
    try:
        builder.add(payload, received_ns)
    except DecodeError:
        assert builder.columns == before, "a refused request left rows behind"
        return REFUSED
    return builder.columns, builder.stats


def assert_same(payload: bytes, limits: Limits = LIMITS[0], received_ns: int = NOW):
    python, compiled = (outcome(d, payload, limits, received_ns) for d in DECODERS)
    if python == REFUSED or compiled == REFUSED:
        assert python == compiled, f"python: {python!r:.300}, compiled: {compiled!r:.300}"
        return python
    assert set(compiled[0]) == set(SPAN_COLUMNS)
    for name in SPAN_COLUMNS:
        assert compiled[0][name] == python[0][name], name
        # The driver needs the same Python types, not just equal values.
        assert [type(v) for v in compiled[0][name]] == [type(v) for v in python[0][name]], name
    assert compiled[1] == python[1]
    return python


def _first_request() -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add()
    spans.resource.attributes.add(key="service.name").value.string_value = "f"
    spans.scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="a", start_time_unix_nano=NOW
    )
    return request.SerializeToString()


_FIRST = _first_request()


@PROPERTY
@given(proto_requests(), st.sampled_from(LIMITS))
def test_requests_built_with_protobuf_decode_alike(request, limits):
    assert_same(request.SerializeToString(), limits)


# -- requests written on the wire ----------------------------------------------------------


@PROPERTY
@given(message("Request"), st.sampled_from(LIMITS))
def test_requests_written_field_by_field_decode_alike(payload, limits):
    assert_same(payload, limits)


@PROPERTY
@given(st.data())
def test_cut_and_corrupted_requests_decode_alike_or_are_refused_alike(data):
    valid = data.draw(message("Request", odd=False))
    assert_same(data.draw(otlp_wire.corrupted(valid)), data.draw(st.sampled_from(LIMITS)))


@settings(PROPERTY, max_examples=200)
@given(st.binary(max_size=64))
def test_random_bytes_are_refused_alike(payload):
    assert_same(payload)


# -- the edges, one by one -----------------------------------------------------------------


def _request(*span_fields: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    span = field(2, LEN, b"".join(span_fields))
    scope_spans = (field(1, LEN, scope) if scope else b"") + span
    resource_spans = (field(1, LEN, resource) if resource else b"") + field(2, LEN, scope_spans)
    return field(1, LEN, resource_spans)


def _groups(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = tag(20, START_GROUP) + inner + tag(20, END_GROUP)
    return inner


@pytest.mark.parametrize("depth", [90, 95, 96, 97, 98, 100, 101])
def test_nesting_limit_is_protobufs(depth):
    """upb refuses messages nested more than 100 deep; groups count as nesting."""
    assert_same(_request(field(1, LEN, b"\x01" * 16), _groups(depth)))


@pytest.mark.parametrize("depth", [85, 90, 91, 92, 93, 94, 95, 100])
def test_nested_array_values_keep_the_limit(depth):
    value = b""
    for _ in range(depth):
        value = field(5, LEN, field(1, LEN, value))
    assert_same(_request(field(9, LEN, field(1, LEN, b"k") + field(2, LEN, value))))


@pytest.mark.parametrize(
    "start",
    [0, NOW - 86_400 * NS - 1, NOW - 86_400 * NS, NOW, NOW + 3_600 * NS + 1, 2**63, 2**64 - 1],
)
def test_start_times_clamp_alike(start):
    start_field = field(7, otlp_wire.FIXED64, start)
    end_field = field(8, otlp_wire.FIXED64, 2**64 - 1)
    columns, stats = assert_same(_request(start_field, end_field))
    assert stats.clamped_timestamps == int(columns["start_ns"][-1] != start)


@pytest.mark.parametrize("received_ns", [0, 5 * NS, 2**64 - 1])
def test_windows_past_the_ends_of_u64_clamp_alike(received_ns):
    assert_same(_request(field(7, otlp_wire.FIXED64, 2**64 - 1)), received_ns=received_ns)


def test_merged_sub_messages_and_last_scalars():
    """A status, resource or value seen twice is merged; a repeated scalar keeps the last."""
    array_a = field(5, LEN, field(1, LEN, field(3, otlp_wire.VARINT, 1)))
    array_b = field(5, LEN, field(1, LEN, field(1, LEN, b"b")))
    value = field(2, LEN, array_a) + field(2, LEN, array_b)
    payload = _request(
        field(15, LEN, field(2, LEN, b"first")),
        field(5, LEN, b"one"),
        field(15, LEN, field(3, otlp_wire.VARINT, 2)),
        field(5, LEN, b"two"),
        field(9, LEN, field(1, LEN, b"k") + value),
        field(9, LEN, field(1, LEN, b"s") + field(2, LEN, field(1, LEN, b"x") + array_a)),
        resource=field(1, LEN, field(1, LEN, b"service.name") + field(2, LEN, field(1, LEN, b"a"))),
        scope=field(1, LEN, b"lib"),
    )
    columns, _ = assert_same(payload)
    assert columns["span_name"][-1] == "two"
    assert (columns["status_code"][-1], columns["status_message"][-1]) == (2, "first")
    assert columns["attr_values"][-1][0] == '{"values":[{"intValue":"1"},{"stringValue":"b"}]}'


def test_truncation_counts_code_points_and_bytes():
    long_text = "é" * 5 + "x"
    payload = _request(
        field(9, LEN, field(1, LEN, b"s") + field(2, LEN, field(1, LEN, long_text.encode()))),
        field(9, LEN, field(1, LEN, b"b") + field(2, LEN, field(7, LEN, b"\xff" * 9))),
        field(
            11,
            LEN,
            field(3, LEN, field(1, LEN, b"e") + field(2, LEN, field(1, LEN, b'"\n' * 4))),
        ),
        scope=field(3, LEN, field(1, LEN, b"q") + field(2, LEN, field(1, LEN, b"abcdef"))),
    )
    _, stats = assert_same(payload, Limits(max_attribute_length=4))
    assert stats.truncated_attributes == 4


def test_a_scope_without_spans_counts_no_truncation():
    scope = field(3, LEN, field(1, LEN, b"q") + field(2, LEN, field(1, LEN, b"abcdef")))
    payload = field(1, LEN, field(2, LEN, field(1, LEN, scope)))
    _, stats = assert_same(payload, Limits(max_attribute_length=2))
    assert stats.truncated_attributes == 0


def test_string_value_strindex_is_refused():
    """Profiles' dictionary-indexed strings have no meaning in a trace request:
    both decoders refuse the request with DecodeError (the reference once raised
    KeyError, which the writer would not quarantine)."""
    payload = _request(field(9, LEN, field(1, LEN, b"k") + field(2, LEN, b"\x40\x05")))
    for decoder in DECODERS:
        with pytest.raises(DecodeError, match="strindex"):
            decoder(Limits()).add(payload, NOW)
    assert assert_same(payload) == REFUSED


# -- the receiver's check from the bytes ---------------------------------------------------


def _python_verdict(payload: bytes, limits: Limits):
    try:
        request = decode(ExportTraceServiceRequest, payload)
    except DecodeError:
        return REFUSED
    verdict = validate_traces(request, payload, limits, NOW)
    return verdict.accepted, verdict.rejected


def _compiled_verdict(payload: bytes, limits: Limits):
    try:
        verdict = check_traces(payload, limits, NOW)
    except DecodeError:
        return REFUSED
    if verdict is None:
        return "drops"
    assert verdict.payload is payload
    return verdict.accepted, verdict.rejected


CHECK_LIMITS = [Limits(), Limits(timestamp_policy="reject")]


@PROPERTY
@given(
    st.one_of(message("Request"), proto_requests().map(lambda r: r.SerializeToString())),
    st.sampled_from(CHECK_LIMITS),
)
def test_the_receivers_check_from_bytes_agrees(payload, limits):
    python, compiled = _python_verdict(payload, limits), _compiled_verdict(payload, limits)
    if compiled == "drops":
        assert python != REFUSED and python[1] > 0
    else:
        assert compiled == python
