"""Trace comparison through the real app on both backends: ``/api/v1/compare``, ``/compare``."""

from __future__ import annotations

import pytest

from tests.support import trace_generator as gen
from tests.support.compare_traffic import CHECKOUT, build, edit
from tests.support.dashboard_client import dashboard_client

MS = 1_000_000


@pytest.fixture
def pair(store):
    """A baseline trace and one where payments' query is 40 ms slower, cart makes a third
    query and the shipping quote is gone; and a third trace of the same root operation."""
    now = gen.now_ns() - 120 * 10**9
    base = edit(CHECKOUT, (), add=("shipping", "Quote", 92, 5, []))
    slow = edit(CHECKOUT, (1, 0), dur=50)
    slow = edit(slow, (0,), add=("db", "SELECT", 18, 2, []))
    a, b = build(base, 11, now), build(slow, 12, now + 10**9)
    other = build(CHECKOUT, 13, now + 2 * 10**9)
    gen.insert(store, a + b + other)
    with dashboard_client(store) as client:
        yield client, a, b, other


def test_api_finds_added_missing_and_slower_spans(pair):
    client, a, b, _ = pair
    body = client.get(f"/api/v1/compare?a={a[0].trace_id}&b={b[0].trace_id}").json()
    rows = body["rows"]
    only_a = [(r["service"], r["name"]) for r in rows if r["presence"] == "only_a"]
    only_b = [(r["service"], r["name"], r["position"]) for r in rows if r["presence"] == "only_b"]
    assert only_a == [("shipping", "Quote")]
    assert only_b == [("db", "SELECT", 2)]
    assert (body["onlyA"], body["onlyB"]) == (1, 1)
    slowest = rows[body["slower"][0]]
    assert (slowest["service"], slowest["name"], slowest["deltaNs"]) == ("db", "SELECT", 40 * MS)
    under = rows[slowest["index"] - 1]
    assert under["name"] == "Charge"  # the slower query is payments', not cart's
    assert body["a"]["traceId"] == a[0].trace_id and body["a"]["spanCount"] == 7
    assert all(rows[i]["a"]["critical"] for i in body["criticalPath"]["a"])
    assert rows[0]["a"]["durationNs"] == rows[0]["b"]["durationNs"] == 100 * MS


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("", 400, "'a'"),
        ("a=00000000000000aa", 400, "'b'"),
        ("a=xyz&b=00000000000000aa", 400, "a: trace id"),
        ("a=00000000000000aa&b=00000000000000bb", 404, "trace a"),
    ],
)
def test_api_bad_and_missing_ids(pair, query, status, needle):
    client, a, *_ = pair
    response = client.get(f"/api/v1/compare?{query}")
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_pages(pair):
    client, a, b, other = pair
    page = client.get(f"/compare?a={a[0].trace_id}&b={b[0].trace_id}")
    assert page.status_code == 200
    assert "only in A" in page.text and 'id="compare-table"' in page.text
    assert page.text.count('class="presence-') == 8
    pick = client.get(f"/compare?a={a[0].trace_id}")
    assert pick.status_code == 200
    assert f"b={other[0].trace_id}" in pick.text and f"b={b[0].trace_id}" in pick.text
    assert f"b={a[0].trace_id}" not in pick.text
    assert client.get("/compare").status_code == 200
    assert client.get("/compare?a=nothex").status_code == 400
    missing = client.get(f"/compare?a={a[0].trace_id}&b=00000000000000bb")
    assert missing.status_code == 404 and "trace b" in missing.text


def test_openapi_document_lists_the_new_apis(pair):
    client, *_ = pair
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/compare", "/api/v1/cohort", "/api/v1/graph/diff", "/api/v1/deploys"):
        assert "get" in paths[path], path
