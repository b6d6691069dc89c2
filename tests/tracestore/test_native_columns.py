"""INSERT columns encoded in C (``tracestore/native_columns.py``) against the driver's own.

Two ways: for generated values of every column type the encoder takes, its bytes
are the bytes clickhouse-driver's ``write_column`` writes (or it declines, and the
driver writes them); and spans and metric points decoded from generated requests
(every field kind) and inserted through a real clickhouse-server with the encoder
read back exactly as the same columns inserted by the driver alone.
"""

from __future__ import annotations

import pytest
from clickhouse_driver import Client
from clickhouse_driver.bufferedwriter import BufferedSocketWriter
from clickhouse_driver.columns import service
from clickhouse_driver.streams import native
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from collector.writer import without_defaults
from tests.support.otlp_protos import proto_requests
from tests.support.otlp_wire import NOW, doubles, texts
from tests.support.store_urls import fresh_store_url
from tracestore import native_columns
from tracestore.compiled_columns import CompiledTraceColumns, _otlpdecode
from tracestore.migrate import migrate
from tracestore.otlp_columns import Limits, MetricColumns
from tracestore.store import StoreRefused, open_store, parse_url

pytestmark = pytest.mark.skipif(_otlpdecode is None, reason="tracestore._otlpdecode not built")

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
INTS = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1),
    "DateTime": (0, 2**32 - 1),
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
FEW_KEYS = st.sampled_from(["", "a", "service.name", "é", "x" * 70])


def values(spec: str) -> st.SearchStrategy:
    """Values the encoder takes for a column of type ``spec`` (bools are ints too)."""
    if spec in INTS:
        lo, hi = INTS[spec]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi]), st.booleans())
    if spec == "Float64":
        return doubles
    if spec == "LowCardinality(String)":
        return st.one_of(FEW_KEYS, texts)
    return texts


SCALARS = sorted(native_columns.SCALARS)
columns = st.sampled_from(SCALARS).flatmap(
    lambda spec: st.one_of(
        st.tuples(st.just(spec), st.lists(values(spec), max_size=40)),
        st.tuples(
            st.just(f"Array({spec})"),
            st.lists(
                st.one_of(
                    st.lists(values(spec), max_size=6),
                    st.lists(values(spec), max_size=3).map(tuple),
                ),
                max_size=20,
            ),
        ),
    )
)


class Sink:
    """What the driver's buffered writer sends, kept."""

    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data) -> None:
        self.data += bytes(data)


@pytest.fixture(scope="module")
def context(clickhouse_server):
    """A connected driver's context: the server's revision and time zone, the defaults."""
    parsed = parse_url(clickhouse_server.url(database="default"))
    client = Client(parsed.host, port=parsed.port, user=parsed.user, password=parsed.password)
    client.connection.force_connect()
    yield client.connection.context
    client.disconnect()


def drivers_bytes(context, spec: str, items: list) -> bytes:
    sink = Sink()
    buf = BufferedSocketWriter(sink, 1 << 16)
    service.write_column(context, "c", spec, list(items), buf)
    buf.flush()
    return bytes(sink.data)


@PROPERTY
@given(column=columns)
def test_encoded_columns_are_the_drivers_bytes(context, column):
    spec, items = column
    assert native_columns.encode(spec, items) == drivers_bytes(context, spec, items)


@pytest.mark.parametrize("keys", [255, 256, 65535, 65536])
def test_low_cardinality_index_widths_are_the_drivers(context, keys):
    items = [str(i) for i in range(keys)] + ["0", ""]
    for spec, column in [
        ("LowCardinality(String)", items),
        ("Array(LowCardinality(String))", [items[:10], [], items[10:]]),
    ]:
        assert native_columns.encode(spec, column) == drivers_bytes(context, spec, column)


@pytest.mark.parametrize(
    "spec, items",
    [
        ("UInt8", [1, 256]),
        ("UInt32", [-1]),
        ("Int8", [128]),
        ("UInt64", [2**64]),
        ("UInt64", [1.0]),
        ("Float64", [1]),
        ("String", ["ok", "\udc80"]),  # not UTF-8: the driver's UnicodeEncodeError
        ("String", [b"bytes"]),
        ("String", [None]),
        ("LowCardinality(String)", ["a", 1]),
        ("Array(String)", [["a"], None]),
        ("Array(UInt8)", [[1, 300]]),
        ("Nullable(String)", ["a"]),
        ("Array(Array(String))", [[["a"]]]),
        ("Decimal(9, 2)", [1]),
    ],
)
def test_values_that_need_the_driver_are_left_to_it(spec, items):
    assert native_columns.encode(spec, items) is None


def _rows(store, table: str) -> list[str]:
    return sorted(repr(row) for row in store.query(f"SELECT * FROM {table}"))


def _insert_both(stores, table: str, columns: dict, monkeypatch) -> list:
    """Insert ``columns`` with the encoder into the first store and with the driver
    alone into the second; each outcome: the rows read back, or the refusal."""
    outcomes = []
    for store, ours in zip(stores, (True, False), strict=True):
        store.execute(f"TRUNCATE TABLE {table}")
        with monkeypatch.context() as patch:
            if not ours:
                patch.setattr(native, "write_column", service.write_column)
            assert (native.write_column is native_columns.write_column) is ours
            try:
                store.insert(table, columns)
            except StoreRefused as exc:
                outcomes.append(("refused", type(exc.__cause__)))
                continue
        outcomes.append(_rows(store, table))
    return outcomes


@pytest.fixture(scope="module")
def store_pair(clickhouse_server, chdb_path):
    stores = [open_store(fresh_store_url("native", clickhouse_server, chdb_path)) for _ in "ab"]
    for store in stores:
        migrate(store)
    assert native.write_column is native_columns.write_column, "the hook is not installed"
    yield stores
    for store in stores:
        store.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    requests=st.lists(proto_requests(), min_size=1, max_size=3),
    sparse=st.booleans(),
    any_kind=st.integers(0, 9),
)
def test_spans_read_back_as_the_driver_writes_them(
    store_pair, monkeypatch, requests, sparse, any_kind
):
    """Mostly storable spans; now and then a span kind past UInt8, refused alike."""
    builder = CompiledTraceColumns(Limits())
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    span.kind = span.kind if any_kind == 0 else span.kind % 6
        builder.add(request.SerializeToString(), NOW)
    if not len(builder):
        return
    columns = builder.columns
    if sparse:  # as the writer sends them: columns of defaults left out
        columns = without_defaults(columns, ("ts", "trace_id", "span_id"))
    ours, drivers = _insert_both(store_pair, "spans", columns, monkeypatch)
    assert ours == drivers


def _metrics_request(service: str, value: float, bounds: list[float]) -> bytes:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "m"
    gauge = Metric(name="queue.depth", unit="1")
    point = gauge.gauge.data_points.add(time_unix_nano=NOW, as_double=value)
    point.attributes.append(KeyValue(key="queue", value=AnyValue(string_value="é")))
    histogram = Metric(name="latency", unit="ms")
    histogram.histogram.aggregation_temporality = 2
    bucket = histogram.histogram.data_points.add(
        time_unix_nano=NOW, start_time_unix_nano=NOW - 10, count=7, sum=value * 7
    )
    bucket.explicit_bounds.extend(bounds)
    bucket.bucket_counts.extend(range(len(bounds) + 1))
    scope.metrics.extend([gauge, histogram])
    return request.SerializeToString()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    points=st.lists(
        st.tuples(texts, doubles, st.lists(doubles.filter(lambda d: d == d), max_size=4)),
        min_size=1,
        max_size=4,
    )
)
def test_metric_points_read_back_as_the_driver_writes_them(store_pair, monkeypatch, points):
    builder = MetricColumns(Limits())
    for service_name, value, bounds in points:
        builder.add(_metrics_request(service_name, value, sorted(bounds)), NOW)
    ours, drivers = _insert_both(store_pair, "metric_points", builder.columns, monkeypatch)
    assert ours == drivers
