"""Jaeger's SPM API (``/api/metrics/...``) from the rollups, in Jaeger's MetricFamily shape."""

from __future__ import annotations

import datetime
import re

import pytest

from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client

# Jaeger's metrics.proto / openmetrics.proto as JSON (and the v1 envelope for errors)
FAMILY_KEYS = {"name", "type", "help", "metrics"}
METRIC_KEYS = {"labels", "metricPoints"}
LABEL_KEYS = {"name", "value"}
POINT_KEYS = {"gaugeValue", "timestamp"}
ENVELOPE_KEYS = {"data", "total", "limit", "offset", "errors"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MIN = 60


def check_family(body: dict) -> dict[tuple, dict[str, float]]:
    """Shape-checks a MetricFamily; returns {labels: {timestamp: value}}."""
    assert set(body) == FAMILY_KEYS and body["type"] == "GAUGE"
    assert isinstance(body["name"], str) and isinstance(body["help"], str)
    out = {}
    for metric in body["metrics"]:
        assert set(metric) == METRIC_KEYS
        for label in metric["labels"]:
            assert set(label) == LABEL_KEYS
        points = {}
        for point in metric["metricPoints"]:
            assert set(point) == POINT_KEYS and set(point["gaugeValue"]) == {"doubleValue"}
            assert TIMESTAMP.match(point["timestamp"])
            points[point["timestamp"]] = point["gaugeValue"]["doubleValue"]
        out[tuple((lb["name"], lb["value"]) for lb in metric["labels"])] = points
    return out


def check_error(response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == ENVELOPE_KEYS and body["data"] is None
    assert body["errors"][0]["code"] == 400
    return body["errors"][0]["msg"]


def stamp(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def traffic(store):
    """Service ``api``: minute A has 10 server calls of 10 ms (2 errors), minute B 10 of 100 ms."""
    ids = gen.Ids(23)
    end = (gen.now_ns() // 10**9 // MIN - 10) * MIN
    a, b = end - 3 * MIN, end - 2 * MIN
    spans = []
    for minute, duration, errors in ((a, 10_000_000, 2), (b, 100_000_000, 0)):
        for i in range(10):
            op = "GET /a" if i % 2 else "GET /b"
            s = gen.GenSpan(ids.trace(), ids.span(), "", "api", op, (minute + i) * 10**9, duration)
            s.status_code = 2 if i < errors else 0
            spans.append(s)
    call = gen.GenSpan(ids.trace(), ids.span(), "", "api", "call db", a * 10**9, 5_000_000)
    call.kind = gen.KIND_CLIENT
    spans.append(call)
    gen.insert(store, spans)
    base = {"service": "api", "endTs": str(end * 1000), "lookback": str(3 * MIN * 1000)}
    return store, end, {**base, "step": "60000", "ratePer": "120000"}


def test_calls_errors_latencies(traffic):
    store, end, query = traffic
    with dashboard_client(store) as client:
        body = client.get("/api/metrics/calls", params=query).json()
        assert body["name"] == "service_call_rate"
        assert body["help"] == "calls/sec, grouped by service"
        series = check_family(body)
        # points every minute; each counts the 2-minute window before it
        assert series == {
            (("service_name", "api"),): {
                stamp(end - 2 * MIN): pytest.approx(10 / 120),
                stamp(end - MIN): pytest.approx(20 / 120),
                stamp(end): pytest.approx(10 / 120),
            }
        }
        body = client.get("/api/metrics/errors", params=query).json()
        assert body["name"] == "service_error_rate"
        assert check_family(body)[(("service_name", "api"),)] == {
            stamp(end - 2 * MIN): pytest.approx(0.2),
            stamp(end - MIN): pytest.approx(0.1),
            stamp(end): 0.0,
        }
        body = client.get("/api/metrics/latencies", params={**query, "quantile": "0.5"}).json()
        assert body["name"] == "service_latencies"
        assert body["help"] == "0.50th quantile latency, grouped by service"
        values = check_family(body)[(("service_name", "api"),)]
        assert values[stamp(end - 2 * MIN)] == pytest.approx(10, rel=0.006)  # milliseconds
        assert values[stamp(end - MIN)] == pytest.approx(100, rel=0.006)
        assert values[stamp(end)] == pytest.approx(100, rel=0.006)
        # client spans only: the one call to the database
        body = client.get("/api/metrics/calls", params={**query, "spanKind": "client"}).json()
        assert check_family(body)[(("service_name", "api"),)][stamp(end - 2 * MIN)] == (
            pytest.approx(1 / 120)
        )
        body = client.get("/api/metrics/calls", params={**query, "service": "nobody"}).json()
        assert check_family(body) == {}


def test_group_by_operation(traffic):
    store, end, query = traffic
    with dashboard_client(store) as client:
        params = {**query, "groupByOperation": "true", "quantile": "0.95"}
        body = client.get("/api/metrics/calls", params=params).json()
        assert body["name"] == "service_operation_call_rate"
        series = check_family(body)
        assert set(series) == {
            (("operation", "GET /a"), ("service_name", "api")),
            (("operation", "GET /b"), ("service_name", "api")),
        }
        assert series[(("operation", "GET /a"), ("service_name", "api"))][stamp(end - MIN)] == (
            pytest.approx(10 / 120)
        )
        body = client.get("/api/metrics/latencies", params=params).json()
        assert body["name"] == "service_operation_latencies"
        assert len(check_family(body)) == 2


def test_minstep_and_errors(store):
    with dashboard_client(store) as client:
        body = client.get("/api/metrics/minstep").json()
        assert set(body) == ENVELOPE_KEYS and body["data"] == 60000
        assert "service" in check_error(client.get("/api/metrics/calls"))
        assert "quantile" in check_error(client.get("/api/metrics/latencies?service=a"))
        for bad in ("0", "1.5", "high"):
            check_error(client.get(f"/api/metrics/latencies?service=a&quantile={bad}"))
        for query in ("spanKind=sideways", "groupByOperation=maybe", "step=abc", "endTs=-1"):
            check_error(client.get(f"/api/metrics/errors?service=a&{query}"))
