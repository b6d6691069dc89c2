"""The trace view's API on both backends: the columnar outline (the same tree, analysis and
statistics as the full trace API), one span's record on demand, find by attribute."""

from __future__ import annotations

import pytest

from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client


@pytest.fixture
def traces(store):
    ids = gen.Ids(23)
    skewed = gen.clock_skew(ids)
    skewed[3].status_code = 2
    skewed[3].attrs["Payment.Card"] = "VISA-4242"
    skewed[3].events = [(skewed[3].start_ns + 1000, "retry", {"attempt": 2})]
    orphaned = gen.missing_parent(ids)
    gen.insert(store, skewed + orphaned)
    return store, skewed, orphaned


def test_view_is_the_trace_as_columns(traces):
    store, skewed, orphaned = traces
    with dashboard_client(store) as client:
        for spans in (skewed, orphaned):
            full = client.get(f"/api/v1/traces/{spans[0].trace_id}").json()
            view = client.get(f"/api/v1/traces/{spans[0].trace_id}/view").json()
            for key in ("traceId", "startTimeUnixNano", "endTimeUnixNano", "durationNs"):
                assert view[key] == full[key], key
            for key in ("spanCount", "totalSpans", "leftOut", "leftOutReason"):
                assert view[key] == full[key], key
            cols, text = view["spans"], view["strings"]
            rows = sorted(full["spans"], key=lambda s: (s["offsetNs"], s["spanId"]))
            assert cols["spanId"] == [s["spanId"] for s in rows]  # start order
            for name in ("offsetNs", "durationNs"):
                assert cols[name] == [s[name] for s in rows], name
            assert [text[i] for i in cols["service"]] == [s["service"] for s in rows]
            assert [text[i] for i in cols["name"]] == [s["name"] for s in rows]
            assert [text[i] for i in cols["kind"]] == [s["kind"] for s in rows]
            assert [text[i] for i in cols["status"]] == [s["status"]["code"] for s in rows]
            parents = [
                cols["spanId"][p] if p >= 0 else {-1: "", -2: "missing"}[p] for p in cols["parent"]
            ]
            here = set(cols["spanId"])
            assert parents == [
                s["parentSpanId"]
                if s["parentSpanId"] in here or not s["parentSpanId"]
                else "missing"
                for s in rows
            ]
            assert len(set(text)) == len(text) and "attributes" not in cols


def test_span_record_on_demand(traces):
    store, skewed, _ = traces
    target = skewed[3]
    with dashboard_client(store) as client:
        full = client.get(f"/api/v1/traces/{target.trace_id}").json()
        expected = next(s for s in full["spans"] if s["spanId"] == target.span_id)
        got = client.get(f"/api/v1/traces/{target.trace_id}/spans/{target.span_id.upper()}")
        assert got.status_code == 200
        body = got.json()
        assert body == {k: v for k, v in expected.items() if k in body}
        assert {"key": "Payment.Card", "value": "VISA-4242"} in body["attributes"]
        assert body["events"][0]["name"] == "retry"
        assert body["status"]["code"] == "error"

        other = gen.Ids(99).span()
        missing = client.get(f"/api/v1/traces/{target.trace_id}/spans/{other}")
        assert missing.status_code == 404 and "not in trace" in missing.json()["error"]
        bad = client.get(f"/api/v1/traces/{target.trace_id}/spans/xyz")
        assert bad.status_code == 400 and "span id" in bad.json()["error"]
        unknown = client.get(f"/api/v1/traces/{'e' * 32}/spans/{target.span_id}")
        assert unknown.status_code == 404 and "searched" in unknown.json()


def test_find_by_attribute_key_or_value(traces):
    store, skewed, orphaned = traces
    trace_id = skewed[0].trace_id
    with dashboard_client(store) as client:

        def find(q: str) -> list[str]:
            r = client.get(f"/api/v1/traces/{trace_id}/find", params={"q": q})
            assert r.status_code == 200, r.text
            return r.json()["spanIds"]

        assert find("visa-42") == [skewed[3].span_id]  # a value, any case
        assert find("payment.card") == [skewed[3].span_id]  # a key
        assert find("no-such-text") == []
        assert find("%") == [] and find("_") == []  # plain text, not a pattern
        for q in ("", " ", "x" * 257):
            r = client.get(f"/api/v1/traces/{trace_id}/find", params={"q": q})
            assert r.status_code == 400 and "q must be" in r.json()["error"]
        assert client.get(f"/api/v1/traces/{trace_id}/find").status_code == 400
        assert client.get("/api/v1/traces/nothex/find?q=a").status_code == 400
        gone = client.get(f"/api/v1/traces/{'e' * 32}/find?q=a")
        assert gone.status_code == 404
        view = client.get(f"/api/v1/traces/{'e' * 32}/view")
        assert view.status_code == 404 and "searched" in view.json()
        assert client.get("/api/v1/traces/nothex/view").status_code == 400
