"""Jaeger's query API v3 over HTTP, checked against the shapes Jaeger 2.x serves, on both backends.

Traces are parsed with the OpenTelemetry protobuf classes' strict JSON parser
(unknown fields and wrong types fail), after turning the hex ids OTLP/JSON uses
into the base64 that protobuf's JSON mapping expects for bytes.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client

# Jaeger's apiv3 JSON: GRPCGatewayError, GetServicesResponse, GetOperationsResponse and
# the trace-summaries types (cmd/jaeger/internal/extension/jaegerquery/internal/apiv3).
ERROR_DETAIL_KEYS = {"httpCode", "message"}
SUMMARY_KEYS = {
    "traceId",
    "rootServiceName",
    "rootOperationName",
    "minStartTimeUnixNano",
    "maxEndTimeUnixNano",
    "spanCount",
    "errorSpanCount",
    "orphanSpanCount",
    "services",
}
SERVICE_SUMMARY_KEYS = {"name", "spanCount", "errorSpanCount"}


def rfc3339(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{ns % 10**9:09d}Z"


def check_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_DETAIL_KEYS
    assert body["error"]["httpCode"] == status
    return body["error"]["message"]


def _ids_to_base64(obj):
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                assert len(value) in (16, 32) and value == value.lower()
                int(value, 16)
                value = base64.b64encode(bytes.fromhex(value)).decode()
            out[key] = _ids_to_base64(value)
        return out
    if isinstance(obj, list):
        return [_ids_to_base64(v) for v in obj]
    return obj


def parse_result(response) -> list[dict]:
    """The spans of a ``{"result": TracesData}`` answer, after a strict protobuf parse."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result"} and set(body["result"]) == {"resourceSpans"}
    json_format.ParseDict(_ids_to_base64(body["result"]), TracesData())  # raises on bad shape
    spans = []
    for rs in body["result"]["resourceSpans"]:
        service = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}["service.name"]
        for ss in rs["scopeSpans"]:
            assert ss["scope"] == {"name": "sidetrace.test", "version": "1.0"}
            for span in ss["spans"]:
                assert isinstance(span.get("kind", 0), int)  # 0 (unspecified) is left out
                assert span["startTimeUnixNano"].isdigit() and span["endTimeUnixNano"].isdigit()
                spans.append({**span, "service": service["stringValue"]})
    return spans


@pytest.fixture
def loaded(store):
    ids = gen.Ids(19)
    skewed = gen.clock_skew(ids)
    root = skewed[0]
    root.attrs = {"http.method": "GET", "http.status_code": 200, "ratio": 0.5, "cached": True}
    root.events = [(root.start_ns + 1000, "exception", {"exception.type": "ValueError"})]
    root.links = [("ab" * 16, "cd" * 8)]
    skewed[3].status_code = 2
    skewed[3].status_message = "card declined"
    orphaned = gen.missing_parent(ids)
    job = gen.GenSpan(ids.trace(), ids.span(), "", "cron", "tick", gen.now_ns() - 10**9, 5000)
    job.kind = 0
    inner = gen.GenSpan(job.trace_id, ids.span(), job.span_id, "cron", "step", job.start_ns, 10)
    inner.kind = gen.KIND_INTERNAL
    inner.attrs = {"weird": float("nan"), "huge": float("inf")}
    gen.insert(store, [*skewed, *orphaned, job, inner])
    return store, skewed, orphaned, (job, inner)


def test_services_and_operations(loaded):
    store, *_ = loaded
    with dashboard_client(store) as client:
        body = client.get("/api/v3/services").json()
        assert body == {"services": ["cart", "checkout", "cron", "db", "frontend", "payments"]}
        body = client.get("/api/v3/operations", params={"service": "frontend"}).json()
        assert body == {
            "operations": [
                {"name": "GET /", "spanKind": "server"},
                {"name": "POST /checkout", "spanKind": "client"},
            ]
        }
        for name in ("spanKind", "span_kind"):  # canonical and deprecated alias
            response = client.get(f"/api/v3/operations?service=frontend&{name}=client")
            body = response.json()
            assert body == {"operations": [{"name": "POST /checkout", "spanKind": "client"}]}
            # Jaeger's deprecation signals for the snake_case alias only
            assert response.headers.get("Deprecated-Params") == (
                "span_kind" if name == "span_kind" else None
            )
            assert response.headers.get("Deprecation") == ("true" if name == "span_kind" else None)
        # Jaeger v3 reports an operation without a kind as "internal"
        body = client.get("/api/v3/operations", params={"service": "cron"}).json()
        assert body == {
            "operations": [
                {"name": "step", "spanKind": "internal"},
                {"name": "tick", "spanKind": "internal"},
            ]
        }
        assert client.get("/api/v3/operations?service=nobody").json() == {"operations": []}
        check_error(client.get("/api/v3/operations"), 400)
        assert "spanKind" in check_error(
            client.get("/api/v3/operations?service=x&spanKind=up"), 400
        )


def test_trace_by_id(loaded):
    store, skewed, _, (job, inner) = loaded
    root, client_span, server, late = skewed
    with dashboard_client(store) as client:
        spans = parse_result(client.get(f"/api/v3/traces/{root.trace_id}"))
        by_id = {s["spanId"]: s for s in spans}
        assert set(by_id) == {s.span_id for s in skewed}
        jroot = by_id[root.span_id]
        assert jroot["traceId"] == root.trace_id and "parentSpanId" not in jroot
        assert jroot["name"] == "GET /" and jroot["kind"] == 2 and jroot["service"] == "frontend"
        assert jroot["startTimeUnixNano"] == str(root.start_ns)
        assert jroot["endTimeUnixNano"] == str(root.start_ns + root.duration_ns)
        attrs = {a["key"]: a["value"] for a in jroot["attributes"]}
        assert attrs == {
            "http.method": {"stringValue": "GET"},
            "http.status_code": {"intValue": "200"},
            "ratio": {"doubleValue": 0.5},
            "cached": {"boolValue": True},
        }
        assert jroot["events"] == [
            {
                "timeUnixNano": str(root.start_ns + 1000),
                "name": "exception",
                "attributes": [{"key": "exception.type", "value": {"stringValue": "ValueError"}}],
            }
        ]
        assert jroot["links"] == [{"traceId": "ab" * 16, "spanId": "cd" * 8}]
        assert by_id[server.span_id]["parentSpanId"] == client_span.span_id
        assert by_id[late.span_id]["status"] == {"code": 2, "message": "card declined"}
        assert by_id[root.span_id].get("status", {}) == {}
        # NaN and infinities travel as proto3 JSON spells them, never a 500
        spans = parse_result(client.get(f"/api/v3/traces/{job.trace_id}"))
        weird = {a["key"]: a["value"] for s in spans for a in s.get("attributes", [])}
        assert weird == {"weird": {"doubleValue": "NaN"}, "huge": {"doubleValue": "Infinity"}}
        # a short id is left-padded, as Jaeger pads it; time window parameters are accepted
        short = root.trace_id.lstrip("0")
        window = f"startTime={rfc3339(root.start_ns - 10**9)}&end_time={rfc3339(gen.now_ns())}"
        assert parse_result(client.get(f"/api/v3/traces/{short}?{window}"))
        assert check_error(client.get("/api/v3/traces/" + "e" * 32), 404) == "No traces found"
        for bad in ("xyz", "1" * 33):
            assert "trace_id" in check_error(client.get(f"/api/v3/traces/{bad}"), 400)
        message = check_error(client.get(f"/api/v3/traces/{root.trace_id}?startTime=yday"), 400)
        assert "startTime" in message
        message = check_error(client.get(f"/api/v3/traces/{root.trace_id}?raw_traces=eh"), 400)
        assert "raw_traces" in message


def _window(hours: float = 1) -> dict[str, str]:
    now = gen.now_ns()
    return {
        "query.startTimeMin": rfc3339(now - int(hours * 3600 * 10**9)),
        "query.startTimeMax": rfc3339(now + 60 * 10**9),
    }


def test_find_traces(loaded):
    store, skewed, orphaned, _ = loaded
    with dashboard_client(store) as client:
        query = {"query.serviceName": "frontend", **_window()}
        spans = parse_result(client.get("/api/v3/traces", params=query))
        assert {s["traceId"] for s in spans} == {skewed[0].trace_id, orphaned[0].trace_id}
        query = {**query, "query.operationName": "POST /checkout", "query.durationMin": "1ms"}
        spans = parse_result(client.get("/api/v3/traces", params=query))
        assert {s["traceId"] for s in spans} == {skewed[0].trace_id}
        old_names = {  # the snake_case aliases Jaeger still accepts
            "query.service_name": "payments",
            "query.start_time_min": _window()["query.startTimeMin"],
            "query.start_time_max": _window()["query.startTimeMax"],
            "query.num_traces": "1",
            "query.attributes": json.dumps({"http.method": "GET"}),
        }
        assert check_error(client.get("/api/v3/traces", params=old_names), 404) == "No traces found"
        response = client.get("/api/v3/traces", params=old_names)
        assert set(response.headers["Deprecated-Params"].split(",")) == {
            "query.service_name",
            "query.start_time_min",
            "query.start_time_max",
            "query.num_traces",
        }
        assert response.headers["Sunset"] and 'rel="deprecation"' in response.headers["Link"]
        logfmt = {
            "query.serviceName": "frontend",
            **_window(),
            "query.attributes": 'http.method=GET cached="true"',
        }
        spans = parse_result(client.get("/api/v3/traces", params=logfmt))
        assert {s["traceId"] for s in spans} == {skewed[0].trace_id}
        logfmt["query.attributes"] = "http.method=POST"
        assert check_error(client.get("/api/v3/traces", params=logfmt), 404) == "No traces found"
        old_names["query.attributes"] = "{}"
        assert (
            len(
                {s["traceId"] for s in parse_result(client.get("/api/v3/traces", params=old_names))}
            )
            == 1
        )
        # a range longer than 31 days is accepted, as Jaeger accepts it
        assert parse_result(client.get("/api/v3/traces", params={**query, **_window(24 * 90)}))


BAD_FINDS = [
    ({}, "query.startTimeMin and query.startTimeMax are required"),
    ({"query.startTimeMin": "2024-01-01T00:00:00Z"}, "required"),
    (
        {"query.startTimeMin": "NaN", "query.startTimeMax": "2024-01-01T00:00:00Z"},
        "query.startTimeMin",
    ),
    (
        {"query.start_time_min": "2024-01-01T00:00:00Z", "query.start_time_max": "x"},
        "query.start_time_max",
    ),
    ({"query.searchDepth": "NaN"}, "query.searchDepth"),
    ({"query.durationMin": "NaN"}, "query.durationMin"),
    ({"query.duration_max": "10"}, "query.duration_max"),
    ({"query.rawTraces": "foobar"}, "query.rawTraces"),
    ({"query.attributes": "[1]"}, "query.attributes"),
    ({"query.attributes": "novalue"}, "query.attributes"),
    ({"query.attributes": 'a="unclosed'}, "query.attributes"),
]


@pytest.mark.parametrize("path", ["/api/v3/traces", "/api/v3/trace-summaries"])
def test_search_errors(store, path):
    good = {
        "query.startTimeMin": "2024-01-01T00:00:00Z",
        "query.startTimeMax": "2024-01-01T01:00:00Z",
    }
    with dashboard_client(store) as client:
        for query, expected in BAD_FINDS:
            params = query if "start" in json.dumps(query) or not query else {**good, **query}
            assert expected in check_error(client.get(path, params=params), 400)


def test_trace_summaries(loaded):
    store, skewed, orphaned, _ = loaded
    with dashboard_client(store) as client:
        query = {"query.serviceName": "frontend", **_window()}
        body = client.get("/api/v3/trace-summaries", params=query).json()
        assert set(body) == {"summaries"}
        by_id = {s["traceId"]: s for s in body["summaries"]}
        assert set(by_id) == {skewed[0].trace_id, orphaned[0].trace_id}
        for summary in body["summaries"]:
            assert set(summary) == SUMMARY_KEYS
            for service in summary["services"]:
                assert set(service) == SERVICE_SUMMARY_KEYS
        s = by_id[skewed[0].trace_id]
        assert s["rootServiceName"] == "frontend" and s["rootOperationName"] == "GET /"
        assert s["spanCount"] == 4 and s["errorSpanCount"] == 1 and s["orphanSpanCount"] == 0
        assert s["minStartTimeUnixNano"] == str(min(x.start_ns for x in skewed))
        assert s["maxEndTimeUnixNano"] == str(max(x.start_ns + x.duration_ns for x in skewed))
        assert s["services"] == [
            {"name": "checkout", "spanCount": 1, "errorSpanCount": 0},
            {"name": "frontend", "spanCount": 2, "errorSpanCount": 0},
            {"name": "payments", "spanCount": 1, "errorSpanCount": 1},
        ]
        assert by_id[orphaned[0].trace_id]["orphanSpanCount"] == 1
        query = {"query.serviceName": "frontend", "query.searchDepth": "1", **_window()}
        assert len(client.get("/api/v3/trace-summaries", params=query).json()["summaries"]) == 1
        query = {"query.serviceName": "nobody", **_window()}
        assert client.get("/api/v3/trace-summaries", params=query).json() == {"summaries": []}
