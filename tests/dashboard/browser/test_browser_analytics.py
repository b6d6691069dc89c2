"""The analytics pages in headless Chromium: service map, services table, service charts."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from collector.edge_rollup import compute_edges
from tests.support.analytics_traffic import Traffic, layered_topology, peer_name
from tests.support.browser import launch_chromium
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

pytestmark = pytest.mark.browser

SERVICES = 30


def _pairs(topology) -> set[tuple[str, str]]:
    return {
        (parent, c if isinstance(c, str) else peer_name(c))
        for parent, callees in topology.items()
        for c in callees
    }


@pytest.fixture(scope="module")
def topology():
    return layered_topology(SERVICES)


@pytest.fixture(scope="module")
def base_url(clickhouse_server, topology) -> Iterator[str]:
    """A dashboard over 30 services' traffic of the last few minutes, served by uvicorn."""
    store = open_store(clickhouse_server.url(database=f"browser_analytics_{time.time_ns()}"))
    migrate(store)
    namespaces = {f"svc-{i:02d}": "edge" if i < 9 else "core" for i in range(SERVICES)}
    traffic = Traffic(topology, namespaces, rng=random.Random(5))
    first = (int(time.time()) // 60 - 6) * 60
    rng = random.Random(9)
    for minute in range(5):
        for i in range(24):
            traffic.trace(
                f"svc-0{i % 3}",
                (first + 60 * minute + 2 * i) * 10**9,
                duration=lambda child: rng.randint(2_000_000, 40_000_000),
                error_rate=0.03,
            )
    store.insert("spans", traffic.columns)
    compute_edges(store, first, first + 300)
    with live_dashboard(store) as url:
        yield url
    store.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def _map_state(page) -> dict:
    return page.evaluate(
        """() => ({
            nodes: Array.from(document.querySelectorAll('#service-map g.node')).map((n) => ({
                id: n.dataset.id,
                match: n.classList.contains('match'),
                dimmed: n.classList.contains('dimmed'),
                box: (() => { const r = n.querySelector('.node-label').getBoundingClientRect();
                              return [r.left, r.top, r.right, r.bottom]; })(),
            })),
            edges: Array.from(document.querySelectorAll('#service-map g.edge')).map(
                (e) => [e.dataset.parent, e.dataset.child]),
        })"""
    )


def _overlaps(boxes: list[list[float]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[i + 1 :], i + 1)
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]


def test_map_renders_every_node_and_edge_without_label_overlaps(
    page, base_url, topology, artifacts
):
    page.goto(f"{base_url}/services/map?lookback=1h")
    state = _map_state(page)
    pairs = _pairs(topology)
    assert {n["id"] for n in state["nodes"]} == {x for pair in pairs for x in pair}
    assert len(state["nodes"]) == SERVICES + 3
    assert {tuple(e) for e in state["edges"]} == pairs
    assert len(state["edges"]) == len(pairs)
    boxes = [n["box"] for n in state["nodes"]]
    assert all(b[2] - b[0] > 20 for b in boxes)  # labels really rendered
    assert _overlaps(boxes) == []
    page.locator("#service-map").screenshot(path=str(artifacts / "service-map.png"))


def test_map_focus_namespace_and_search_filters(page, base_url, topology, artifacts):
    pairs = _pairs(topology)
    focus = "svc-05"
    page.goto(f"{base_url}/services/map?lookback=1h")
    page.fill("#map-focus", focus)
    page.fill("#map-hops", "1")
    page.click("#map-apply")
    page.wait_for_url("**focus=svc-05**")
    state = _map_state(page)
    near = {focus} | {c for p, c in pairs if p == focus} | {p for p, c in pairs if c == focus}
    assert {n["id"] for n in state["nodes"]} == near
    assert {tuple(e) for e in state["edges"]} == {pr for pr in pairs if focus in pr}
    assert _overlaps([n["box"] for n in state["nodes"]]) == []
    page.screenshot(path=str(artifacts / "service-map-focus.png"), full_page=True)

    page.goto(f"{base_url}/services/map?lookback=1h&namespace=edge")
    ids = {n["id"] for n in _map_state(page)["nodes"]}
    assert ids == {f"svc-{i:02d}" for i in range(9)}

    page.goto(f"{base_url}/services/map?lookback=1h")
    page.fill("#map-search", "svc-1")
    state = _map_state(page)
    matched = {n["id"] for n in state["nodes"] if n["match"]}
    assert matched == {f"svc-{i}" for i in range(10, 20)}
    assert all(n["dimmed"] for n in state["nodes"] if n["id"] not in matched)
    page.fill("#map-search", "postgres")
    page.press("#map-search", "Enter")
    page.wait_for_url("**focus=postgresql**")
    ids = {n["id"] for n in _map_state(page)["nodes"]}
    assert ids == {"postgresql"} | {p for p, c in pairs if c == "postgresql"}


def test_edge_click_opens_the_traces_that_crossed_it(page, base_url, topology):
    parent, child = sorted(p for p in _pairs(topology) if p[0] == "svc-00")[0]
    page.goto(f"{base_url}/services/map?lookback=1h")
    edge = page.locator(f'#service-map g.edge[data-parent="{parent}"][data-child="{child}"]')
    edge.locator(".edge-label").click()
    page.wait_for_url("**/services/edge?**")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["parent"], query["child"]) == ([parent], [child])
    links = page.locator("#edge-traces a.trace-link")
    assert links.count() > 0
    links.first.click()
    page.wait_for_url("**/trace/**")


def test_services_table_sorts_and_chart_point_opens_matching_traces(page, base_url, artifacts):
    page.goto(f"{base_url}/services?lookback=1h")
    rows = page.locator("#services-table tbody tr")
    assert rows.count() == SERVICES
    page.click("#services-table th:nth-child(6)")  # p99, ascending
    p99 = [float(v) for v in page.eval_on_selector_all(
        "#services-table tbody tr td:nth-child(6)", "tds => tds.map(td => td.dataset.v)"
    )]  # fmt: skip
    assert p99 == sorted(p99)
    page.screenshot(path=str(artifacts / "services.png"), full_page=True)

    page.goto(f"{base_url}/services/svc-00?lookback=1h")
    page.wait_for_selector("#charts[data-loaded='1']")
    page.uncheck("#quantile-picker input[value='p50']")
    assert page.locator("#chart-latency circle[data-series='p50']").count() == 0
    points = page.locator("#chart-latency circle[data-series='p99']")
    assert points.count() >= 5
    page.screenshot(path=str(artifacts / "service-page.png"), full_page=True)
    t = int(points.first.get_attribute("data-t"))
    points.first.click()
    page.wait_for_url("**/search?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["service"] == ["svc-00"]
    readable = [datetime.fromisoformat(query[k][0]).timestamp() for k in ("start", "end")]
    assert readable == [t, t + 60]  # ISO-8601 in the URL, not epoch milliseconds
    results = page.locator("#results li")
    results.first.wait_for()
    assert results.count() > 0
