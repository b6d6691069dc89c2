"""Trace-by-id and search queries on a real clickhouse-server and chDB, with generated traces."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from dashboard.trace_analysis import analyze
from tests.support import trace_generator as gen
from tracestore import trace_queries as tq
from tracestore.otlp_columns import Limits, TraceColumns

MINUTE_NS = 60 * 10**9


def window(minutes: int = 30) -> tuple[int, int]:
    now = gen.now_ns()
    return now - minutes * MINUTE_NS, now + MINUTE_NS


def test_normalize_trace_id():
    assert tq.normalize_trace_id("ABCDEF0123456789") == "0" * 16 + "abcdef0123456789"
    assert tq.normalize_trace_id(" " + "a" * 32 + " ") == "a" * 32
    for bad in ("", "xyz", "a" * 15, "a" * 33, "g" * 16, "a" * 31, "'; DROP TABLE spans; --"):
        with pytest.raises(tq.BadQuery):
            tq.normalize_trace_id(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http.method=GET", tq.AttributeFilter("http.method", "=", "GET")),
        ("code!=200", tq.AttributeFilter("code", "!=", "200")),
        ("user.id", tq.AttributeFilter("user.id", "exists")),
        (" k = a=b ", tq.AttributeFilter("k", "=", "a=b")),
    ],
)
def test_attribute_filter_parse(text, expected):
    assert tq.AttributeFilter.parse(text) == expected


@pytest.mark.parametrize("text", ["", "=x", "a b=c", "!=1"])
def test_attribute_filter_rejects(text):
    with pytest.raises(tq.BadQuery):
        tq.AttributeFilter.parse(text)


def test_deep_trace_by_id(store):
    ids = gen.Ids(1)
    spans = gen.deep(ids, 200)
    gen.insert(store, spans)
    trace = tq.load_trace(store, spans[0].trace_id, max_spans=10_000)
    assert trace is not None
    assert len(trace.spans) == 200 and trace.left_out == 0
    assert trace.summary.root_service == "frontend" and trace.summary.span_count == 200
    analysis = analyze(trace.spans)
    assert [analysis.info[s.span_id].depth for s in analysis.order] == list(range(200))
    assert all(analysis.info[s.span_id].critical for s in spans)
    first = trace.spans[0]
    assert first.attributes == [tq.Attribute("level", gen.INT, "0")]
    assert first.resource[0] == tq.Attribute("service.name", gen.STRING, "frontend")


def test_wide_trace_and_replayed_spans_deduplicated(store):
    spans = gen.wide(gen.Ids(2), 300)
    gen.insert(store, spans)
    gen.insert(store, spans[:50])  # a spool replay repeats some spans
    trace = tq.load_trace(store, spans[0].trace_id, max_spans=10_000)
    assert trace is not None
    assert len(trace.spans) == 301
    assert len({s.span_id for s in trace.spans}) == 301
    assert trace.summary.span_count == 301
    analysis = analyze(trace.spans)
    assert analysis.info[spans[0].span_id].child_count == 300


def test_missing_parents_are_kept(store):
    spans = gen.missing_parent(gen.Ids(3))
    gen.insert(store, spans)
    trace = tq.load_trace(store, spans[0].trace_id, max_spans=100)
    assert trace is not None and len(trace.spans) == 4
    analysis = analyze(trace.spans)
    root, child, orphan, under_orphan = spans
    assert analysis.info[orphan.span_id].orphan
    assert analysis.info[orphan.span_id].depth == 1
    assert not analysis.info[under_orphan.span_id].orphan
    assert analysis.info[under_orphan.span_id].depth == 2
    assert [s.span_id for s in analysis.order] == [s.span_id for s in spans]
    assert analysis.orphans == 1


def test_clock_skew_is_reported_not_fixed(store):
    spans = gen.clock_skew(gen.Ids(4))
    gen.insert(store, spans)
    trace = tq.load_trace(store, spans[0].trace_id, max_spans=100)
    assert trace is not None
    loaded = {s.span_id: s for s in trace.spans}
    root, client, server, late = spans
    assert loaded[server.span_id].start_ns == server.start_ns  # untouched
    info = analyze(trace.spans).info
    assert info[server.span_id].starts_before_parent_ns == 5_000_000
    assert info[late.span_id].ends_after_parent_ns == 4_000_000
    assert info[client.span_id].starts_before_parent_ns == 0  # same service: not skew


def test_ten_thousand_span_trace_and_cap(store):
    spans = gen.big(gen.Ids(5), 10_000)
    gen.insert(store, spans)
    trace = tq.load_trace(store, spans[0].trace_id, max_spans=10_000)
    assert trace is not None and len(trace.spans) == 10_000 and trace.left_out == 0
    analysis = analyze(trace.spans)
    assert len(analysis.order) == 10_000 and analysis.orphans == 0
    capped = tq.load_trace(store, spans[0].trace_id, max_spans=2_500)
    assert capped is not None and len(capped.spans) == 2_500 and capped.left_out == 7_500
    assert capped.spans[0].span_id == spans[0].span_id  # the earliest spans are kept


def test_unknown_trace(store):
    assert tq.load_trace(store, "f" * 32, max_spans=10) is None


def test_search_filters(store):
    rng = random.Random(7)
    ids = gen.Ids(7)
    start, end = window()
    spans = []
    for i in range(60):
        spans.extend(gen.random_trace(rng, ids, start + (i + 1) * 20 * 10**9, size=8))
    gen.insert(store, spans)
    roots = [s for s in spans if not s.parent_span_id]

    def ids_of(**kw) -> set[str]:
        q = tq.SearchQuery(start_ns=start, end_ns=end, limit=100, **kw)
        return set(tq.search_trace_ids(store, q))

    assert ids_of() == {r.trace_id for r in roots}
    assert ids_of(errors_only=True) == {s.trace_id for s in spans if s.status_code == 2}
    assert ids_of(service="frontend", operation="GET /") == {
        r.trace_id for r in roots if r.name == "GET /"
    }
    slow = {s.trace_id for s in spans if s.service == "frontend" and s.duration_ns >= 250_000_000}
    assert ids_of(service="frontend", min_duration_ns=250_000_000) == slow
    fast = {s.trace_id for s in spans if s.service == "cart" and s.duration_ns <= 5_000_000}
    assert ids_of(service="cart", max_duration_ns=5_000_000) == fast
    user = roots[0].attrs["user.id"]
    assert ids_of(attributes=[tq.AttributeFilter("user.id", "=", user)]) == {
        r.trace_id for r in roots if r.attrs["user.id"] == user
    }
    assert ids_of(attributes=[tq.AttributeFilter("http.status_code", "!=", "200")]) == {
        r.trace_id for r in roots if r.attrs["http.status_code"] != 200
    }
    assert ids_of(attributes=[tq.AttributeFilter("peer.service", "exists")]) == {
        s.trace_id for s in spans if "peer.service" in s.attrs
    }
    assert ids_of(attributes=[tq.AttributeFilter("service.name", "=", "db")]) == {
        s.trace_id for s in spans if s.service == "db"
    }
    hostile = tq.AttributeFilter("k'); DROP TABLE spans; --", "=", "x' OR 1=1 --")
    assert ids_of(attributes=[hostile]) == set()
    # latest first, limit honoured, summaries from the index
    latest = tq.search(store, tq.SearchQuery(start_ns=start, end_ns=end, limit=5))
    assert [s.trace_id for s in latest] == [r.trace_id for r in roots[::-1][:5]]
    assert latest[0].span_count == 8 and latest[0].root_service == "frontend"


def test_search_stays_in_time_range(store):
    ids = gen.Ids(8)
    now = gen.now_ns()
    old = gen.wide(ids, 3, start_ns=now - 3 * 3600 * 10**9)
    new = gen.wide(ids, 3, start_ns=now - 5 * MINUTE_NS)
    gen.insert(store, old + new)
    q = tq.SearchQuery(start_ns=now - 15 * MINUTE_NS, end_ns=now, limit=10)
    assert tq.search_trace_ids(store, q) == [new[0].trace_id]
    q = tq.SearchQuery(start_ns=now - 4 * 3600 * 10**9, end_ns=now - 2 * 3600 * 10**9, limit=10)
    assert tq.search_trace_ids(store, q) == [old[0].trace_id]


def test_services_and_operations(store):
    ids = gen.Ids(9)
    gen.insert(store, gen.wide(ids, 4) + gen.clock_skew(ids))
    start, end = window()
    assert tq.services(store, start, end) == ["cart", "checkout", "frontend", "payments"]
    assert tq.operations(store, "frontend", start, end) == [("GET /", 2), ("POST /checkout", 3)]
    assert tq.operations(store, "frontend", start, end, kind=3) == [("POST /checkout", 3)]


@pytest.mark.parametrize(
    "query",
    [
        tq.SearchQuery(start_ns=10, end_ns=5),
        tq.SearchQuery(start_ns=0, end_ns=10, limit=0),
        tq.SearchQuery(start_ns=0, end_ns=10, limit=tq.MAX_SEARCH_LIMIT + 1),
        tq.SearchQuery(start_ns=0, end_ns=10, min_duration_ns=5, max_duration_ns=4),
    ],
)
def test_search_validation(query):
    with pytest.raises(tq.BadQuery):
        query.validate()


def test_attribute_values_decode():
    array = '{"values":[{"stringValue":"x"},{"intValue":"5"}]}'
    assert tq.Attribute("a", tq.ATTR_ARRAY, array).typed() == ["x", 5]
    kvlist = '{"values":[{"key":"a","value":{"boolValue":true}}]}'
    assert tq.Attribute("k", tq.ATTR_KVLIST, kvlist).typed() == {"a": True}
    assert tq.Attribute("b", tq.ATTR_BYTES, "AAE=").typed() == "AAE="
    assert tq.Attribute("i", tq.ATTR_INT, "nope").typed() == "nope"  # shown as stored


def test_spans_written_by_the_collector_read_back(store):
    """The collector's own OTLP -> columns conversion, then this module's reading of it."""
    now = gen.now_ns()
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="api")))
    span = rs.scope_spans.add().spans.add(
        trace_id=bytes.fromhex("ab" * 16),
        span_id=bytes.fromhex("cd" * 8),
        name="GET /x",
        kind=2,
        start_time_unix_nano=now - 10**9,
        end_time_unix_nano=now - 10**9 + 5_000_000,
    )
    values = {
        "s": AnyValue(string_value="v"),
        "b": AnyValue(bool_value=True),
        "i": AnyValue(int_value=42),
        "d": AnyValue(double_value=1.5),
        "raw": AnyValue(bytes_value=b"\x00\x01"),
        "arr": AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])),
    }
    span.attributes.extend(KeyValue(key=k, value=v) for k, v in values.items())
    event = span.events.add(time_unix_nano=now - 10**9 + 1000, name="retry")
    event.attributes.append(KeyValue(key="attempt", value=AnyValue(int_value=2)))
    span.links.add(trace_id=bytes.fromhex("ef" * 16), span_id=bytes.fromhex("12" * 8))
    columns = TraceColumns(Limits())
    columns.add(request.SerializeToString(), now)
    store.insert("spans", columns.columns)

    trace = tq.load_trace(store, "ab" * 16, max_spans=10)
    assert trace is not None and len(trace.spans) == 1
    loaded = trace.spans[0]
    assert loaded.service == "api" and loaded.kind == 2
    typed = {a.key: a.typed() for a in loaded.attributes}
    assert typed == {"s": "v", "b": True, "i": 42, "d": 1.5, "raw": "AAE=", "arr": [1]}
    assert [(e["name"], e["attributes"]) for e in loaded.events] == [
        ("retry", [tq.Attribute("attempt", tq.ATTR_INT, "2")])
    ]
    assert [(lk["trace_id"], lk["span_id"]) for lk in loaded.links] == [("ef" * 16, "12" * 8)]


def test_read_columns_are_the_written_ones():
    """Rows → spans reads only columns OTLP → rows writes: a column renamed on one side fails
    here, by name, not as a ClickHouse error on the trace page."""
    from tracestore.otlp_columns import SPAN_COLUMNS as WRITTEN

    read = {c.removeprefix("toString(").removesuffix(")") for c in tq.SPAN_COLUMNS}
    assert read <= set(WRITTEN), sorted(read - set(WRITTEN))
