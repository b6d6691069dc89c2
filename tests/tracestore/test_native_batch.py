"""Native batches: the compiled decoder writing each INSERT column's bytes itself.

For every request, the bytes of a Native batch must be exactly what the column
encoder (``encode_column``, itself held to the driver's bytes by
``test_native_columns.py``) makes of the compiled decoder's lists, column by column,
for the ``spans`` types as the migration declares them (with LowCardinality strings
and without); the conversion counts must agree. A request the lists could only send
through the driver's conversion (a value outside its column's type) is refused with
``ColumnRefused``, and a refused request adds no rows. The server round trip is the
collector's own tests: their writer inserts Native batches into a real server.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import ROOT, otlp_wire
from tests.support.otlp_protos import proto_requests
from tests.support.otlp_wire import NOW, message
from tracestore.compiled_columns import (
    ColumnRefused,
    CompiledTraceColumns,
    EncodedColumn,
    NativeTraceColumns,
    _otlpdecode,
)
from tracestore.native_columns import column_code
from tracestore.otlp_columns import SPAN_COLUMNS, DecodeError, Limits

pytestmark = [
    pytest.mark.skipif(_otlpdecode is None, reason="tracestore._otlpdecode not built"),
    pytest.mark.slow,
]

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = [Limits(), Limits(max_attribute_length=3), Limits(max_attribute_length=0)]


def _declared_types() -> dict[str, str]:
    """The ``spans`` columns and types of the first migration, templates left in."""
    sql = (ROOT / "schemas" / "migrations" / "0001_spans.sql").read_text()
    body = sql.split("CREATE TABLE IF NOT EXISTS spans ", 1)[1].split("ENGINE", 1)[0]
    found = re.findall(r"^\s+(\w+) ([\w(){}]+?)(?: \{\{codec_\w+\}\})?,?$", body, re.M)
    return dict(found)


def _codes(lc_string: str) -> tuple[int, ...]:
    types = _declared_types()
    codes = tuple(column_code(types[n].replace("{{lc_string}}", lc_string)) for n in SPAN_COLUMNS)
    assert None not in codes, dict(zip(SPAN_COLUMNS, codes, strict=True))
    return codes  # type: ignore[return-value]


CODE_SETS = [_codes("LowCardinality(String)"), _codes("String")]


def request(service: str, name: str, attributes: int = 1) -> bytes:
    message_ = ExportTraceServiceRequest()
    spans = message_.resource_spans.add()
    spans.resource.attributes.add(key="service.name").value.string_value = service
    span = spans.scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=name, start_time_unix_nano=NOW
    )
    for i in range(attributes):
        span.attributes.add(key=f"key-{i}").value.int_value = i
    return message_.SerializeToString()


FIRST = request("f", "a")


def _encoded(lists: dict[str, list], codes: tuple[int, ...]) -> dict[str, bytes | None]:
    return {
        name: _otlpdecode.encode_column(code, lists[name])
        for name, code in zip(SPAN_COLUMNS, codes, strict=True)
    }


def assert_native_matches(payload: bytes, limits: Limits, codes: tuple[int, ...]) -> None:
    lists = CompiledTraceColumns(limits)
    native = NativeTraceColumns(limits, codes)
    for builder in (lists, native):
        builder.add(FIRST, NOW)
    before = snapshot(native)
    try:
        lists.add(payload, NOW)
    except DecodeError:  # (a value too wide for its column may be met first)
        with pytest.raises((DecodeError, ColumnRefused)):
            native.add(payload, NOW)
        assert_nothing_added(native, before)
        return
    expected = _encoded(lists.columns, codes)
    if None in expected.values():  # a value the column's type cannot hold as it is
        with pytest.raises(ColumnRefused, match="does not fit"):
            native.add(payload, NOW)
        assert_nothing_added(native, before)
        return
    native.add(payload, NOW)
    columns = native.columns
    assert len(native) == len(lists)
    for name in SPAN_COLUMNS:
        assert isinstance(columns[name], EncodedColumn)
        assert len(columns[name]) == len(lists)
        assert columns[name].data == expected[name], name
        assert columns[name].only_defaults is not any(lists.columns[name]), name
    assert native.stats == lists.stats


Snapshot = tuple[int, dict[str, bytes], tuple[bool, ...]]


def snapshot(native: NativeTraceColumns) -> Snapshot:
    """The rows, the columns' bytes and which hold only defaults, the batch left as it is."""
    columns = {
        name: _otlpdecode.native_column(native._batch, i) for i, name in enumerate(SPAN_COLUMNS)
    }
    return len(native), columns, _otlpdecode.native_defaults(native._batch)


def assert_nothing_added(native: NativeTraceColumns, before: Snapshot) -> None:
    """The rows are as before; a LowCardinality dictionary may keep keys no row uses."""
    rows, after, defaults = snapshot(native)
    assert rows == before[0] and defaults == before[2]
    assert len(native.columns["span_id"]) == rows
    for name, code in zip(SPAN_COLUMNS, native._codes, strict=True):
        if code & 0xFF != 11:  # not LowCardinality(String)
            assert after[name] == before[1][name], name


@PROPERTY
@given(proto_requests(), st.sampled_from(LIMITS), st.sampled_from(CODE_SETS))
def test_requests_built_with_protobuf_encode_as_the_lists_do(request, limits, codes):
    assert_native_matches(request.SerializeToString(), limits, codes)


@PROPERTY
@given(message("Request"), st.sampled_from(LIMITS), st.sampled_from(CODE_SETS))
def test_requests_written_field_by_field_encode_as_the_lists_do(payload, limits, codes):
    assert_native_matches(payload, limits, codes)


@PROPERTY
@given(st.data())
def test_cut_and_corrupted_requests_encode_alike_or_are_refused(data):
    valid = data.draw(message("Request", odd=False))
    assert_native_matches(
        data.draw(otlp_wire.corrupted(valid)),
        data.draw(st.sampled_from(LIMITS)),
        data.draw(st.sampled_from(CODE_SETS)),
    )


def test_many_requests_share_one_dictionary_per_column():
    """Keys past 255 widen the LowCardinality index as the driver's does."""
    lists, native = CompiledTraceColumns(Limits()), NativeTraceColumns(Limits(), CODE_SETS[0])
    for i in range(300):
        payload = request(f"service-{i % 7}", f"operation-{i}", attributes=i % 5)
        lists.add(payload, NOW)
        native.add(payload, NOW)
    expected = _encoded(lists.columns, CODE_SETS[0])
    assert {n: c.data for n, c in native.columns.items()} == expected


def test_batches_after_bigger_and_smaller_ones_encode_alike():
    """A new batch starts with the room the last taken batch used: sizes up and down."""
    for requests in (400, 3, 0, 900, 1):
        lists, native = CompiledTraceColumns(Limits()), NativeTraceColumns(Limits(), CODE_SETS[1])
        for builder in (lists, native):
            builder.add(FIRST, NOW)
            for i in range(requests):
                builder.add(request(f"service-{i % 3}", f"op-{i}", attributes=i % 4), NOW)
        expected = _encoded(lists.columns, CODE_SETS[1])
        assert {n: c.data for n, c in native.columns.items()} == expected


def test_a_taken_batch_takes_no_more_rows():
    native = NativeTraceColumns(Limits(), CODE_SETS[0])
    native.add(FIRST, NOW)
    columns = native.columns
    assert native.columns is columns and len(columns["trace_id"]) == 1
    with pytest.raises(RuntimeError, match="already taken"):
        native.add(FIRST, NOW)
    with pytest.raises(RuntimeError, match="already taken"):
        _otlpdecode.native_column(native._batch, 0)


def test_a_type_the_decoder_does_not_write_is_refused():
    codes = list(CODE_SETS[0])
    codes[SPAN_COLUMNS.index("trace_id")] = column_code("LowCardinality(String)")
    with pytest.raises(ValueError, match="column 3"):
        NativeTraceColumns(Limits(), tuple(codes))
    with pytest.raises(TypeError):
        NativeTraceColumns(Limits(), CODE_SETS[0][:-1])
