"""The Jaeger query API, compared with Jaeger's JSON shapes field by field, on both backends."""

from __future__ import annotations

import json

import pytest

from collector.edge_rollup import compute_edges
from dashboard import jaeger_api
from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client

# Jaeger's model/json types (jaeger/model/json/model.go) and query envelope.
ENVELOPE_KEYS = {"data", "total", "limit", "offset", "errors"}
TRACE_KEYS = {"traceID", "spans", "processes", "warnings"}
SPAN_KEYS = {
    "traceID",
    "spanID",
    "flags",
    "operationName",
    "references",
    "startTime",
    "duration",
    "tags",
    "logs",
    "processID",
    "warnings",
}
REFERENCE_KEYS = {"refType", "traceID", "spanID"}
KEYVALUE_KEYS = {"key", "type", "value"}
KEYVALUE_TYPES = {"string", "bool", "int64", "float64", "binary"}
LOG_KEYS = {"timestamp", "fields"}
PROCESS_KEYS = {"serviceName", "tags"}
ERROR_KEYS = {"code", "msg"}


def check_keyvalue(kv: dict) -> None:
    assert set(kv) == KEYVALUE_KEYS
    assert kv["type"] in KEYVALUE_TYPES
    expected = {"string": str, "bool": bool, "int64": int, "float64": float, "binary": str}
    assert isinstance(kv["value"], expected[kv["type"]])


def check_trace(trace: dict) -> None:
    assert set(trace) == TRACE_KEYS
    assert isinstance(trace["traceID"], str)
    for pid, process in trace["processes"].items():
        assert isinstance(pid, str)
        assert set(process) == PROCESS_KEYS
        for kv in process["tags"]:
            check_keyvalue(kv)
    for span in trace["spans"]:
        assert set(span) == SPAN_KEYS
        assert span["traceID"] == trace["traceID"]
        assert len(span["spanID"]) == 16
        assert isinstance(span["startTime"], int) and isinstance(span["duration"], int)
        assert span["processID"] in trace["processes"]
        for ref in span["references"]:
            assert set(ref) == REFERENCE_KEYS
            assert ref["refType"] in ("CHILD_OF", "FOLLOWS_FROM")
        for kv in span["tags"]:
            check_keyvalue(kv)
        for log in span["logs"]:
            assert set(log) == LOG_KEYS and isinstance(log["timestamp"], int)
            for kv in log["fields"]:
                check_keyvalue(kv)


def check_error(response, status: int) -> str:
    assert response.status_code == status
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["data"] is None
    assert len(body["errors"]) == 1 and set(body["errors"][0]) == ERROR_KEYS
    assert body["errors"][0]["code"] == status
    return body["errors"][0]["msg"]


@pytest.fixture
def loaded(store):
    """A store with a skewed trace (with an event, a link and typed attributes) and others."""
    ids = gen.Ids(11)
    skewed = gen.clock_skew(ids)
    root = skewed[0]
    root.attrs = {"http.method": "GET", "http.status_code": 200, "ratio": 0.5, "cached": True}
    root.events = [(root.start_ns + 1000, "exception", {"exception.type": "ValueError"})]
    root.links = [("ab" * 16, "cd" * 8)]
    skewed[3].status_code = 2
    skewed[3].status_message = "card declined"
    other = gen.wide(ids, 3)
    orphaned = gen.missing_parent(ids)
    gen.insert(store, skewed + other + orphaned)
    return store, skewed, other, orphaned


def test_services_and_operations(loaded):
    store, skewed, other, orphaned = loaded
    with dashboard_client(store) as client:
        body = client.get("/api/services").json()
        assert set(body) == ENVELOPE_KEYS and body["errors"] is None
        assert body["data"] == ["cart", "checkout", "db", "frontend", "payments"]
        assert body["total"] == 5
        body = client.get("/api/services/frontend/operations").json()
        assert body["data"] == ["GET /", "POST /checkout"]
        body = client.get("/api/operations", params={"service": "frontend"}).json()
        assert body["data"] == [
            {"name": "GET /", "spanKind": "server"},
            {"name": "POST /checkout", "spanKind": "client"},
        ]
        body = client.get("/api/operations", params={"service": "frontend", "spanKind": "client"})
        assert body.json()["data"] == [{"name": "POST /checkout", "spanKind": "client"}]
        assert "service" in check_error(client.get("/api/operations"), 400)
        check_error(client.get("/api/operations?service=x&spanKind=sideways"), 400)
        assert client.get("/api/services/nobody/operations").json()["data"] == []


def test_trace_by_id_shape(loaded):
    store, skewed, _, _ = loaded
    root, client_span, server, late = skewed
    with dashboard_client(store) as client:
        response = client.get(f"/api/traces/{root.trace_id}")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == ENVELOPE_KEYS and body["total"] == 1 and body["errors"] is None
        trace = body["data"][0]
        check_trace(trace)
        assert trace["traceID"] == root.trace_id
        spans = {s["spanID"]: s for s in trace["spans"]}
        assert set(spans) == {s.span_id for s in skewed}
        jroot = spans[root.span_id]
        assert jroot["operationName"] == "GET /"
        assert jroot["references"] == [
            {"refType": "FOLLOWS_FROM", "traceID": "ab" * 16, "spanID": "cd" * 8}
        ]
        assert jroot["startTime"] == root.start_ns // 1000  # microseconds
        assert jroot["duration"] == root.duration_ns // 1000
        tags = {t["key"]: t for t in jroot["tags"]}
        assert tags["http.method"] == {"key": "http.method", "type": "string", "value": "GET"}
        assert tags["http.status_code"] == {
            "key": "http.status_code",
            "type": "int64",
            "value": 200,
        }
        assert tags["ratio"] == {"key": "ratio", "type": "float64", "value": 0.5}
        assert tags["cached"] == {"key": "cached", "type": "bool", "value": True}
        assert tags["span.kind"]["value"] == "server"
        assert jroot["logs"] == [
            {
                "timestamp": (root.start_ns + 1000) // 1000,
                "fields": [
                    {"key": "event", "type": "string", "value": "exception"},
                    {"key": "exception.type", "type": "string", "value": "ValueError"},
                ],
            }
        ]
        jserver = spans[server.span_id]
        assert jserver["references"] == [
            {"refType": "CHILD_OF", "traceID": root.trace_id, "spanID": client_span.span_id}
        ]
        assert jserver["startTime"] == server.start_ns // 1000  # skew left as recorded
        jlate = spans[late.span_id]
        late_tags = {t["key"]: t["value"] for t in jlate["tags"]}
        assert late_tags["error"] is True
        assert late_tags["otel.status_description"] == "card declined"
        process = trace["processes"][jserver["processID"]]
        assert process["serviceName"] == "checkout"


def test_trace_by_short_id_and_errors(loaded):
    store, _, _, _ = loaded
    short = "00000000000000000123456789abcdef"
    gen.insert(store, [gen.GenSpan(short, "1" * 16, "", "svc", "op", gen.now_ns(), 1000)])
    with dashboard_client(store) as client:
        body = client.get("/api/traces/0123456789abcdef").json()
        assert body["data"][0]["traceID"] == "0123456789abcdef"  # Jaeger prints 64-bit ids short
        assert check_error(client.get("/api/traces/" + "e" * 32), 404) == "trace not found"
        for bad in ("xyz", "1" * 33, "g" * 32, "%27%20OR%201=1"):
            check_error(client.get(f"/api/traces/{bad}"), 400)
        # Jaeger accepts 1 to 32 hex digits and pads them
        tiny = "0" * 29 + "abc"
        gen.insert(store, [gen.GenSpan(tiny, "2" * 16, "", "svc", "op", gen.now_ns(), 1000)])
        assert client.get("/api/traces/abc").json()["data"][0]["traceID"] == "0" * 13 + "abc"
        assert client.get("/api/traces/0ABC").json()["data"][0]["traceID"] == "0" * 13 + "abc"


def test_trace_search(loaded):
    store, skewed, other, orphaned = loaded
    now_us = gen.now_ns() // 1000
    with dashboard_client(store) as client:
        body = client.get("/api/traces", params={"service": "frontend", "lookback": "1h"}).json()
        assert set(body) == ENVELOPE_KEYS
        found = {t["traceID"] for t in body["data"]}
        assert found == {skewed[0].trace_id, other[0].trace_id, orphaned[0].trace_id}
        for trace in body["data"]:
            check_trace(trace)
        params = {
            "service": "payments",
            "operation": "Charge",
            "tags": json.dumps({"error": "true"}),
            "start": str(now_us - 3600 * 10**6),
            "end": str(now_us + 60 * 10**6),
            "minDuration": "5ms",
            "limit": "10",
        }
        body = client.get("/api/traces", params=params).json()
        assert [t["traceID"] for t in body["data"]] == [skewed[0].trace_id]
        tags = json.dumps({"http.method": "GET"})
        body = client.get("/api/traces", params={"service": "frontend", "tags": tags}).json()
        assert [t["traceID"] for t in body["data"]] == [skewed[0].trace_id]
        body = client.get("/api/traces", params={"service": "frontend", "maxDuration": "1us"})
        assert body.json()["data"] == []
        body = client.get("/api/traces", params={"traceID": [other[0].trace_id]}).json()
        assert [t["traceID"] for t in body["data"]] == [other[0].trace_id]


BAD_SEARCHES = [
    {},
    {"service": "frontend", "limit": "abc"},
    {"service": "frontend", "limit": "100000"},
    {"service": "frontend", "limit": "0"},
    {"service": "frontend", "minDuration": "fast"},
    {"service": "frontend", "minDuration": "10"},
    {"service": "frontend", "minDuration": "2s", "maxDuration": "1s"},
    {"service": "frontend", "start": "yesterday"},
    {"service": "frontend", "start": "200", "end": "100"},
    {"service": "frontend", "lookback": "forever"},
    {"service": "frontend", "tags": "{not json"},
    {"service": "frontend", "tags": "[1,2]"},
    {"service": "frontend", "tag": "novalue"},
    {"traceID": "nothex"},
]


def test_trace_search_bad_parameters(store):
    with dashboard_client(store) as client:
        for query in BAD_SEARCHES:
            check_error(client.get("/api/traces", params=query), 400)


def test_dependencies(loaded):
    store, _, _, _ = loaded
    with dashboard_client(store) as client:
        body = client.get("/api/dependencies", params={"endTs": str(gen.now_ns() // 10**6)}).json()
        assert set(body) == ENVELOPE_KEYS and isinstance(body["data"], list), body
        for link in body["data"]:
            assert set(link) >= {"parent", "child", "callCount"}
        check_error(client.get("/api/dependencies?endTs=soon"), 400)
        check_error(client.get("/api/dependencies?lookback=-5"), 400)


def test_jaeger_trace_id_format():
    assert jaeger_api.jaeger_trace_id("0" * 16 + "a" * 16) == "a" * 16
    assert jaeger_api.jaeger_trace_id("1" + "0" * 31) == "1" + "0" * 31


def test_compare_lists_missing_trace_ids(loaded):
    """``/api/traces?traceID=A&traceID=B``: Jaeger lists each id it has not as an error."""
    store, skewed, other, _ = loaded
    missing = "f" * 32
    with dashboard_client(store) as client:
        query = {"traceID": [skewed[0].trace_id, missing, other[0].trace_id, "42"]}
        response = client.get("/api/traces", params=query)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == ENVELOPE_KEYS
        assert [t["traceID"] for t in body["data"]] == [skewed[0].trace_id, other[0].trace_id]
        assert body["errors"] == [
            {"msg": "trace not found", "traceID": missing},
            {"msg": "trace not found", "traceID": "0000000000000042"},
        ]
        body = client.get("/api/traces", params={"traceID": [skewed[0].trace_id]}).json()
        assert body["errors"] is None


def test_non_finite_doubles_and_kinds(store):
    """NaN/±Inf doubles never make a 500; internal spans say so; unspecified kind is empty."""
    ids = gen.Ids(5)
    root = gen.GenSpan(ids.trace(), ids.span(), "", "cron", "tick", gen.now_ns() - 10**9, 5000)
    root.kind = 0
    root.attrs = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "x": 1.5}
    inner = gen.GenSpan(root.trace_id, ids.span(), root.span_id, "cron", "step", root.start_ns, 9)
    inner.kind = gen.KIND_INTERNAL
    inner.events = [(root.start_ns, "retry", {"backoff": float("nan")})]
    gen.insert(store, [root, inner])
    with dashboard_client(store) as client:
        for path in (f"/api/traces/{root.trace_id}", "/api/traces?service=cron"):
            response = client.get(path)
            assert response.status_code == 200, response.text
            (trace,) = response.json()["data"]
            spans = {s["spanID"]: s for s in trace["spans"]}
            tags = {t["key"]: t for t in spans[root.span_id]["tags"]}
            assert tags["nan"] == {"key": "nan", "type": "float64", "value": "NaN"}
            assert tags["inf"]["value"] == "Infinity" and tags["ninf"]["value"] == "-Infinity"
            assert tags["x"] == {"key": "x", "type": "float64", "value": 1.5}
            assert "span.kind" not in tags
            inner_tags = {t["key"]: t["value"] for t in spans[inner.span_id]["tags"]}
            assert inner_tags["span.kind"] == "internal"
            assert spans[inner.span_id]["logs"][0]["fields"][1]["value"] == "NaN"
        response = client.get(f"/api/v1/traces/{root.trace_id}")
        assert response.status_code == 200, response.text
        attrs = {a["key"]: a["value"] for s in response.json()["spans"] for a in s["attributes"]}
        assert attrs["nan"] == "NaN" and attrs["inf"] == "Infinity" and attrs["x"] == 1.5
        body = client.get("/api/operations", params={"service": "cron"}).json()
        assert body["data"] == [
            {"name": "step", "spanKind": "internal"},
            {"name": "tick", "spanKind": ""},
        ]


def test_default_limit_and_long_ranges(store):
    """Jaeger's default search limit (100), and ranges over 31 days accepted as Jaeger does."""
    ids = gen.Ids(7)
    start = gen.now_ns() - 600 * 10**9
    spans = [
        gen.GenSpan(ids.trace(), ids.span(), "", "many", "op", start + i * 10**6, 1000)
        for i in range(30)
    ]
    gen.insert(store, spans)
    now_us = gen.now_ns() // 1000
    with dashboard_client(store) as client:
        body = client.get("/api/traces", params={"service": "many"}).json()
        assert len(body["data"]) == 30  # more than the old default of 20
        long_range = {"service": "many", "start": str(now_us - 90 * 86_400 * 10**6)}
        response = client.get("/api/traces", params={**long_range, "end": str(now_us)})
        assert response.status_code == 200 and len(response.json()["data"]) == 30
        query = {"endTs": str(now_us // 1000), "lookback": str(90 * 86_400_000)}
        assert client.get("/api/dependencies", params=query).status_code == 200
    assert jaeger_api.DEFAULT_LIMIT == 100


def test_dependencies_for_one_service(store):
    """``/api/dependencies?service=X`` keeps only links from or to X."""
    ids = gen.Ids(8)
    start = (gen.now_ns() // 10**9 // 60 - 5) * 60 * 10**9
    trace_id, parent, chain = ids.trace(), "", []
    for service, callee in (("frontend", "checkout"), ("checkout", "cart"), ("cart", "payments")):
        if not parent:
            chain.append(gen.GenSpan(trace_id, ids.span(), "", service, "in", start, 9000))
            parent = chain[-1].span_id
        call = gen.GenSpan(trace_id, ids.span(), parent, service, "out", start, 8000)
        call.kind = gen.KIND_CLIENT
        chain.append(call)
        chain.append(gen.GenSpan(trace_id, ids.span(), call.span_id, callee, "in", start, 7000))
        parent = chain[-1].span_id
    gen.insert(store, chain)
    compute_edges(store, start // 10**9 - 60, start // 10**9 + 120)
    end_ms = str(gen.now_ns() // 10**6)
    with dashboard_client(store) as client:
        everything = client.get("/api/dependencies", params={"endTs": end_ms}).json()["data"]
        pairs = {(d["parent"], d["child"]) for d in everything}
        assert {("frontend", "checkout"), ("checkout", "cart"), ("cart", "payments")} <= pairs
        body = client.get("/api/dependencies", params={"endTs": end_ms, "service": "cart"}).json()
        assert {(d["parent"], d["child"]) for d in body["data"]} == {
            ("checkout", "cart"),
            ("cart", "payments"),
        }
