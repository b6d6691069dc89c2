"""The service graph before and after a deploy: pure diff, deploy markers, API on both backends."""

from __future__ import annotations

import pytest

from collector.edge_rollup import compute_edges
from dashboard.graph_diff import diff
from tests.support import trace_generator as gen
from tests.support.compare_traffic import checkout_calls
from tests.support.dashboard_client import dashboard_client
from tracestore.deploy_queries import markers

MS = 1_000_000


def graph(edges: list[tuple[str, str, float, float]], start: int = 0) -> dict:
    """A graph result from (parent, child, rate, p99) edges; nodes are the names seen."""
    names = sorted({n for e in edges for n in e[:2]})
    figures = {"calls": 1, "errors": 0, "error_rate": 0.0, "p50": 1.0, "p95": 2.0}
    return {
        "start": start,
        "end": start + 60,
        "nodes": [{"id": n, "kind": "service", "rate": 1.0, **figures, "p99": 3.0} for n in names],
        "edges": [
            {"parent": p, "child": c, "child_kind": "service", **figures, "rate": r, "p99": q}
            for p, c, r, q in edges
        ],
    }


@pytest.mark.parametrize(
    ("before", "after", "statuses", "nodes"),
    [
        pytest.param(
            [("a", "b", 1, 5)], [("a", "b", 1, 5)], {("a", "b"): "changed"}, {}, id="same"
        ),
        pytest.param(
            [("a", "b", 1, 5)],
            [("a", "b", 1, 5), ("b", "c", 2, 9)],
            {("b", "c"): "appeared", ("a", "b"): "changed"},
            {"c": "appeared"},
            id="new-edge-and-node",
        ),
        pytest.param(
            [("a", "b", 1, 5), ("a", "c", 1, 5)],
            [("a", "b", 1, 5)],
            {("a", "c"): "vanished", ("a", "b"): "changed"},
            {"c": "vanished"},
            id="edge-gone",
        ),
        pytest.param(
            [], [("a", "b", 1, 5)], {("a", "b"): "appeared"}, {"a": "appeared"}, id="empty-before"
        ),
    ],
)
def test_diff_statuses(before, after, statuses, nodes):
    d = diff(graph(before), graph(after, 3600))
    assert {(e["parent"], e["child"]): e["status"] for e in d["edges"]} == statuses
    for node, status in nodes.items():
        assert next(n for n in d["nodes"] if n["id"] == node)["status"] == status
    assert [e["status"] for e in d["edges"]] == sorted(
        (e["status"] for e in d["edges"]), key=["appeared", "vanished", "changed"].index
    )


def test_diff_red_deltas():
    d = diff(graph([("a", "b", 2.0, 10.0)]), graph([("a", "b", 5.0, 4.0)]))
    (edge,) = d["edges"]
    assert edge["delta"]["rate"] == 3.0 and edge["delta"]["p99"] == -6.0
    assert edge["before"]["rate"] == 2.0 and edge["after"]["p99"] == 4.0
    gone = diff(graph([("a", "b", 2.0, 10.0)]), graph([]))["edges"][0]
    assert gone["after"] is None and gone["delta"]["rate"] is None


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("api", "1.0", 100, 900)], []),
        (
            [("api", "1.0", 100, 500), ("api", "1.1", 480, 900), ("web", "7", 100, 900)],
            [("api", "1.1", "1.0", 480)],
        ),
        (
            [
                ("api", "2", 700, 900),
                ("api", "1", 100, 600),
                ("db", "b", 300, 900),
                ("db", "a", 0, 200),
            ],
            [("db", "b", "a", 300), ("api", "2", "1", 700)],
        ),
    ],
    ids=["one-version", "one-deploy", "two-services"],
)
def test_deploy_markers(rows, expected):
    found = [(m["service"], m["version"], m["previous"], m["at"]) for m in markers(rows)]
    assert found == expected


def test_new_edge_after_a_deploy(store):
    ids = gen.Ids(5)
    now_s = gen.now_ns() // 10**9 // 60 * 60
    a0, b0, b1 = now_s - 20 * 60, now_s - 10 * 60, now_s
    spans = []
    for i in range(60):  # ten minutes of v1, then ten of v2, which calls payments
        spans += checkout_calls(ids, (a0 + i * 10) * 10**9, "1.0", with_payments=False)
        spans += checkout_calls(ids, (b0 + i * 10) * 10**9, "2.0", with_payments=True)
    gen.insert(store, spans)
    compute_edges(store, a0, b1)
    with dashboard_client(store) as client:
        ranges = f"a_start={a0}000&a_end={b0}000&b_start={b0}000&b_end={b1}000"
        url = f"/api/v1/graph/diff?{ranges}"
        d = client.get(url).json()
        statuses = {(e["parent"], e["child"]): e["status"] for e in d["edges"]}
        assert statuses == {
            ("checkout", "payments"): "appeared",
            ("frontend", "checkout"): "changed",
        }
        assert d["edges"][0]["after"]["calls"] == 60
        assert {n["id"]: n["status"] for n in d["nodes"]}["payments"] == "appeared"
        assert d["summary"]["edges_appeared"] == 1 and d["summary"]["edges_vanished"] == 0
        assert [(m["service"], m["previous"], m["version"], m["at"]) for m in d["deploys"]] == [
            ("checkout", "1.0", "2.0", b0)
        ]
        # B alone defaults A to the same length right before it
        same = client.get(f"/api/v1/graph/diff?b_start={b0 * 1000}&b_end={b1 * 1000}").json()
        assert same["before"] == d["before"] and same["edges"] == d["edges"]
        deploys = client.get(f"/api/v1/deploys?service=checkout&start={a0 * 1000}").json()
        assert [m["version"] for m in deploys["deploys"]] == ["2.0"]
        page = client.get(url.replace("/api/v1/graph/diff", "/graph-diff"))
        assert page.status_code == 200 and 'data-status="appeared"' in page.text
        for bad in ("a_start=1000", "b_start=banana", "lookback=-5m"):
            assert client.get(f"/api/v1/graph/diff?{bad}").status_code == 400
            assert client.get(f"/graph-diff?{bad}").status_code == 400
        assert client.get("/api/v1/deploys?lookback=forever").status_code == 400
