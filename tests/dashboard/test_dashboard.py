"""Dashboard pages, sidetrace's trace API, parameters, auth and trace analysis."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from dashboard import params
from dashboard.context import AuthSettings
from dashboard.trace_analysis import analyze, critical_path, self_time
from sidetrace.cli import build_parser
from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client, dashboard_process
from tracestore.migrate import migrate
from tracestore.store import open_store
from tracestore.trace_queries import BadQuery, Span


def span(span_id: str, parent: str, start: int, dur: int, service: str = "s") -> Span:
    return Span("t" * 32, span_id, parent, "", 0, service, span_id, 2, 0, "", "", "", start, dur,
                [], [], [], [])  # fmt: skip


# --- pure functions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("1.5s", 1_500_000_000),
        ("1m30s", 90 * 10**9),
        ("100us", 100_000),
        ("100µs", 100_000),
        ("7", 7_000_000),
        ("0", 0),
    ],
)
def test_parse_duration(text, ns):
    assert params.parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "fast", "10 ms", "ms", "1.2.3s", "-5ms", "99999d", "1s2"])
def test_parse_duration_rejects(text):
    with pytest.raises(BadQuery):
        params.parse_duration(text)


def test_parse_time_and_range():
    assert params.parse_time("1970-01-01T00:00:01Z") == 10**9
    assert params.parse_time("1970-01-01T01:00:01+01:00") == 10**9
    assert params.parse_time("1000") == 10**9  # Unix milliseconds
    for bad in ("yesterday", "2026-13-01", "99999999999999999"):
        with pytest.raises(BadQuery):
            params.parse_time(bad)
    start, end = params.time_range(None, "2026-01-01T00:00:00Z", "15m")
    assert end - start == 15 * 60 * 10**9
    with pytest.raises(BadQuery):
        params.time_range("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", None)
    with pytest.raises(BadQuery):
        params.time_range(None, None, "90d")


def test_self_time_clips_and_merges_children():
    parent = span("p", "", 0, 100)
    kids = [span("a", "p", 10, 30), span("b", "p", 20, 30), span("c", "p", 90, 50)]
    # covered: [10, 50) and [90, 100) -> 50
    assert self_time(parent, kids) == 50
    assert self_time(parent, []) == 100


def test_critical_path_follows_last_finishing_children():
    root = span("r", "", 0, 100)
    a = span("a", "r", 0, 40)
    b = span("b", "r", 10, 20)  # overlaps a, finishes earlier: not critical
    c = span("c", "r", 50, 45)
    c1 = span("c1", "c", 55, 30)
    children = {"r": [a, b, c], "c": [c1]}
    assert critical_path(root, children) == {"r", "a", "c", "c1"}


def test_analysis_of_deep_chain_needs_no_recursion():
    spans = gen.deep(gen.Ids(3), 5000)
    analysis = analyze(gen.to_spans(spans))
    assert analysis.info[spans[-1].span_id].depth == 4999
    assert analysis.info[spans[-1].span_id].critical


def test_auth_settings_from_flags():
    assert not AuthSettings().enabled
    settings = AuthSettings.from_flags(None, "admin:s3:cret")
    assert settings.basic_user == "admin" and settings.basic_password == "s3:cret"
    with pytest.raises(ValueError):
        AuthSettings.from_flags(None, "nopassword")


def test_dashboard_command_is_registered():
    args = build_parser().parse_args(
        ["dashboard", "--clickhouse", "chdb:x", "--slo", "a.yaml", "--slo", "b.yaml"]
    )
    assert args.port == 16686 and args.slo == ["a.yaml", "b.yaml"] and args.command == "dashboard"


# --- pages and API on both backends -----------------------------------------------------------


@pytest.fixture
def traces(store):
    ids = gen.Ids(21)
    skewed = gen.clock_skew(ids)
    skewed[3].status_code = 2
    orphaned = gen.missing_parent(ids)
    wide = gen.wide(ids, 30)
    gen.insert(store, skewed + orphaned + wide)
    return store, skewed, orphaned, wide


def test_trace_api(traces):
    store, skewed, orphaned, _ = traces
    with dashboard_client(store) as client:
        body = client.get(f"/api/v1/traces/{skewed[0].trace_id}").json()
        assert body["traceId"] == skewed[0].trace_id
        assert body["spanCount"] == 4 and body["leftOut"] == 0 and body["leftOutReason"] == ""
        assert body["skewedSpans"] == 2 and body["errors"] == 1
        by_id = {s["spanId"]: s for s in body["spans"]}
        server = by_id[skewed[2].span_id]
        assert server["clockSkew"] == {"startsBeforeParentNs": 5_000_000, "endsAfterParentNs": 0}
        assert server["offsetNs"] == 0  # the earliest span: shown where it was recorded
        assert by_id[skewed[0].span_id]["offsetNs"] == 4_000_000
        assert by_id[skewed[0].span_id]["critical"]
        stats = {(st["service"], st["name"]): st for st in body["stats"]}
        assert stats[("frontend", "GET /")]["count"] == 1
        assert stats[("payments", "Charge")]["errors"] == 1
        root = by_id[skewed[0].span_id]
        assert root["resource"] == [{"key": "service.name", "value": "frontend"}]
        assert root["kind"] == "server" and root["status"] == {"code": "unset", "message": ""}

        body = client.get(f"/api/v1/traces/{orphaned[0].trace_id}").json()
        assert body["orphans"] == 1
        assert [s["spanId"] for s in body["spans"]] == [s.span_id for s in orphaned]
        assert [s["depth"] for s in body["spans"]] == [0, 1, 1, 2]
        assert [s["orphan"] for s in body["spans"]] == [False, False, True, False]

        download = client.get(f"/api/v1/traces/{orphaned[0].trace_id}?download=1")
        assert "attachment" in download.headers["content-disposition"]
        assert client.get("/api/v1/traces/nothex").status_code == 400
        missing = client.get("/api/v1/traces/" + "e" * 32)
        assert missing.status_code == 404 and "searched" in missing.json()


def test_trace_cap_says_what_was_left_out(store):
    spans = gen.big(gen.Ids(22), 300)
    gen.insert(store, spans)
    with dashboard_client(store, max_trace_spans=100) as client:
        body = client.get(f"/api/v1/traces/{spans[0].trace_id}").json()
    assert body["spanCount"] == 100 and body["totalSpans"] == 300 and body["leftOut"] == 200
    assert "more than 100 spans" in body["leftOutReason"]


def test_search_api_and_page(traces):
    store, skewed, orphaned, wide = traces
    with dashboard_client(store) as client:
        body = client.get("/api/v1/search", params={"service": "payments", "errors": "1"}).json()
        assert [t["traceId"] for t in body["traces"]] == [skewed[0].trace_id]
        t = body["traces"][0]
        assert t["rootService"] == "frontend" and t["spanCount"] == 4 and t["errorCount"] == 1
        assert t["services"] == ["checkout", "frontend", "payments"]
        body = client.get("/api/v1/search", params={"attr": "service.name=cart", "limit": "5"})
        assert {t["traceId"] for t in body.json()["traces"]} == {
            orphaned[0].trace_id,
            wide[0].trace_id,
        }

        page = client.get("/search", params={"service": "frontend", "lookback": "15m"})
        assert page.status_code == 200
        for trace_id in (skewed[0].trace_id, orphaned[0].trace_id, wide[0].trace_id):
            assert f'href="/trace/{trace_id}"' in page.text
        assert 'id="scatter"' in page.text and "3 traces" in page.text
        assert '<option value="frontend" selected>' in page.text

        bad = client.get("/search", params={"minDuration": "soon"})
        assert bad.status_code == 400 and "bad duration" in bad.text
        assert client.get("/api/v1/search", params={"limit": "999999"}).status_code == 400
        assert client.get("/api/v1/search", params={"attr": "a b=c"}).status_code == 400
        assert client.get("/api/v1/services").json()["services"] == [
            "cart", "checkout", "db", "frontend", "payments"
        ]  # fmt: skip
        ops = client.get("/api/v1/services/frontend/operations").json()["operations"]
        assert {"name": "POST /checkout", "kind": "client"} in ops


def test_trace_page_and_lookup(traces):
    store, skewed, _, _ = traces
    trace_id = skewed[0].trace_id
    with dashboard_client(store) as client:
        page = client.get(f"/trace/{trace_id}?span={skewed[2].span_id}")
        assert page.status_code == 200
        assert f'data-trace-id="{trace_id}"' in page.text
        assert f'data-span="{skewed[2].span_id}"' in page.text
        assert 'href="/services/map"' in page.text and 'id="tz-toggle"' in page.text
        lookup = client.get("/trace", params={"id": trace_id.upper()})
        assert lookup.status_code == 302 and lookup.headers["location"] == f"/trace/{trace_id}"
        short = client.get("/trace", params={"id": "abcdef0123456789"})
        assert short.headers["location"] == "/trace/" + "0" * 16 + "abcdef0123456789"
        assert client.get("/trace", params={"id": "hello"}).status_code == 400
        assert client.get(f"/trace/{trace_id.upper()}").status_code == 302
        missing = client.get("/trace/" + "e" * 32)
        assert missing.status_code == 404
        assert "Trace not found" in missing.text and "all stored traces" in missing.text
        assert client.get("/trace/abc").status_code == 400
        assert client.get(f"/trace/{trace_id}?span=zz").status_code == 400
        assert client.get("/").headers["location"] == "/search"
        assert client.get("/static/trace.js").status_code == 200


def test_auth(store):
    token = AuthSettings(token="t0ken")
    with dashboard_client(store, auth=token) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/services").status_code == 401
        assert client.get("/search", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.get("/api/services", headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
    basic = AuthSettings(basic_user="ops", basic_password="pw")
    with dashboard_client(store, auth=basic) as client:
        good = "Basic " + base64.b64encode(b"ops:pw").decode()
        bad = "Basic " + base64.b64encode(b"ops:wrong").decode()
        assert (
            client.get("/api/v1/openapi.json", headers={"Authorization": good}).status_code == 200
        )
        denied = client.get("/api/v1/openapi.json", headers={"Authorization": bad})
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        assert client.get("/search", headers={"Authorization": "Basic !!!"}).status_code == 401


def test_openapi_document(store):
    with dashboard_client(store) as client:
        doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/traces/{trace_id}", "/api/v1/search", "/api/traces", "/api/services"):
        assert "get" in doc["paths"][path]


def test_dashboard_command_serves(clickhouse_server):
    """``sidetrace dashboard`` as its own process on a migrated native store, with a token."""
    url = clickhouse_server.url(database=f"dash_{uuid.uuid4().hex[:12]}")
    migrate(open_store(url))
    with dashboard_process(url, "--auth-token", "tok") as base:
        assert httpx.get(base + "/api/services", timeout=10).status_code == 401
        ok = httpx.get(base + "/api/services", headers={"Authorization": "Bearer tok"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["data"] == []
