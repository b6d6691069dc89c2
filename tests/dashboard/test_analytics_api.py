"""Analytics JSON API, pages and the map layout (pure), through the real app."""

from __future__ import annotations

import math
import random
import time

import pytest

from collector.edge_rollup import compute_edges
from dashboard.analytics_layout import LINE_H, NODE_R, filter_graph, layout
from tests.support.analytics_traffic import Traffic, layered_topology, peer_name
from tests.support.dashboard_client import dashboard_client

TOPOLOGY = {"web": ["api"], "api": ["db-svc", ("database", {"db.system": "redis"})]}


@pytest.fixture
def client(store):
    traffic = Traffic(TOPOLOGY, {"web": "front", "api": "back", "db-svc": "back"})
    first = (int(time.time()) // 60 - 4) * 60
    for i in range(30):
        traffic.trace("web", (first + 4 * i) * 10**9, lambda c: 3_000_000, error_rate=0.2)
    store.insert("spans", traffic.columns)
    compute_edges(store, first, first + 180)
    with dashboard_client(store) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/latency",
        "/api/v1/latency?service=api&quantiles=1.5",
        "/api/v1/latency?service=api&quantiles=p50,abc",
        "/api/v1/latency?service=api&step=30s",
        "/api/v1/latency?service=api&step=banana",
        "/api/v1/latency?service=api&lookback=7d&step=1m",
        "/api/v1/latency?service=api&start=2026-13-01",
        "/api/v1/graph?hops=9",
        "/api/v1/graph?lookback=-1h",
    ],
)
def test_bad_parameters_are_400(client, url):
    response = client.get(url)
    assert response.status_code == 400
    assert response.json()["error"]


def test_latency_graph_and_dependencies(client):
    series = client.get("/api/v1/latency?service=api&quantiles=p50,0.99&lookback=15m").json()
    assert series["quantiles"] == ["p50", "p99"]
    busy = [p for p in series["points"] if p["calls"]]
    assert sum(p["calls"] for p in series["points"]) == 30
    assert all(p["quantiles"]["p99"] == pytest.approx(3.0, rel=0.006) for p in busy)
    graph = client.get("/api/v1/graph?lookback=15m").json()
    assert {n["id"]: n["kind"] for n in graph["nodes"]} == {
        "web": "service",
        "api": "service",
        "db-svc": "service",
        "redis": "database",
    }
    assert {(e["parent"], e["child"]): e["calls"] for e in graph["edges"]} == {
        ("web", "api"): 30,
        ("api", "db-svc"): 30,
        ("api", "redis"): 30,
    }
    focused = client.get("/api/v1/graph?lookback=15m&focus=db-svc&hops=1").json()
    assert {n["id"] for n in focused["nodes"]} == {"api", "db-svc"}
    back = client.get("/api/v1/graph?lookback=15m&namespace=back").json()
    assert {n["id"] for n in back["nodes"]} == {"api", "db-svc", "redis"}
    jaeger = client.get("/api/dependencies?lookback=3600000").json()
    assert sorted((d["parent"], d["child"], d["callCount"]) for d in jaeger["data"]) == [
        ("api", "db-svc", 30),
        ("api", "redis", 30),
        ("web", "api", 30),
    ]


def test_pages_render(client, store):
    assert "db-svc" in client.get("/services?lookback=15m").text
    now = int(time.time())
    store.insert(
        "metric_points",
        {
            "ts": [now - 120, now - 60],
            "time_ns": [(now - 120) * 10**9, (now - 60) * 10**9],
            "start_time_ns": [(now - 900) * 10**9] * 2,
            "service_name": ["api", "api"],
            "metric_name": ["sidetrace.request.duration"] * 2,
            "metric_type": [3, 3],
            "temporality": [2, 2],
            "attr_keys": [["sidetrace.direction", "status_class"]] * 2,
            "attr_values": [["inbound", "2xx"]] * 2,
            "count": [100, 160],
            "sum": [0.3, 0.48],
        },
    )
    table = client.get("/services?lookback=15m").text
    assert "Sidecar req/s" in table and "50.0%" in table  # 30 spans of 60 requests
    page = client.get("/services/api?lookback=15m").text
    assert "Operations" in page and "call db-svc" in page
    assert 'data-id="redis"' in client.get("/services/map?lookback=15m").text
    edge = client.get("/services/edge?parent=api&child=redis&kind=database&lookback=15m")
    assert edge.status_code == 200 and edge.text.count('class="mono trace-link"') == 30
    assert client.get("/services/edge?parent=api&child=redis&kind=bogus").status_code == 400
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/latency", "/api/v1/graph", "/api/v1/services"} <= set(spec["paths"])


def _label_boxes(placed) -> list[tuple[float, float, float, float]]:
    return [
        (p.x - p.label_w / 2, p.y + NODE_R, p.x + p.label_w / 2, p.y + NODE_R + 2 * LINE_H + 4)
        for p in placed.nodes.values()
    ]


@pytest.mark.parametrize("seed", range(8))
def test_layout_never_overlaps_labels_and_routes_every_edge(seed):
    rng = random.Random(seed)
    names = [f"service-{'x' * rng.randint(0, 20)}{i}" for i in range(rng.randint(2, 40))]
    pairs = {(rng.choice(names), rng.choice(names)) for _ in range(len(names) * 2)}
    labels = {n: [n, "1.23/s · 0.5% · p99 12ms"] for pair in pairs for n in pair}
    placed = layout(labels, sorted(pairs))
    boxes = _label_boxes(placed)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    assert set(placed.nodes) == set(labels)
    assert set(placed.edges) == {p for p in pairs if p[0] != p[1]}
    for (a, b), points in placed.edges.items():  # from one node's outline to the other's
        start, end = (placed.nodes[a].x, placed.nodes[a].y), (placed.nodes[b].x, placed.nodes[b].y)
        assert math.dist(points[0], start) == pytest.approx(NODE_R + 1, abs=0.2)
        assert math.dist(points[-1], end) == pytest.approx(NODE_R + 5, abs=0.2)


def test_layout_puts_callers_left_of_callees():
    topology = layered_topology(30)
    pairs = [
        (p, c if isinstance(c, str) else peer_name(c)) for p, cs in topology.items() for c in cs
    ]
    placed = layout({n: [n] for pair in pairs for n in pair}, pairs)
    assert all(placed.nodes[a].x < placed.nodes[b].x for a, b in pairs)


@pytest.mark.parametrize(
    ("namespace", "focus", "hops", "nodes"),
    [
        (None, None, 1, {"a", "b", "c", "d", "x"}),
        ("n1", None, 1, {"a", "b"}),
        (None, "b", 1, {"a", "b", "c"}),
        (None, "b", 2, {"a", "b", "c", "d"}),
        (None, "a", 5, {"a", "b", "c", "d"}),
        ("n1", "b", 2, {"a", "b"}),
        (None, "missing", 1, set()),
    ],
)
def test_filter_graph(namespace, focus, hops, nodes):
    graph_nodes = [
        {"id": n, "namespace": ns}
        for n, ns in [("a", "n1"), ("b", "n1"), ("c", "n2"), ("d", "n2"), ("x", "n3")]
    ]
    edges = [{"parent": p, "child": c} for p, c in [("a", "b"), ("b", "c"), ("c", "d")]]
    kept_nodes, kept_edges = filter_graph(graph_nodes, edges, namespace, focus, hops)
    assert {n["id"] for n in kept_nodes} == nodes
    assert all({e["parent"], e["child"]} <= nodes for e in kept_edges)
