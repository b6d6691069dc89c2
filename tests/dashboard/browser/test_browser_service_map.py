"""The service map in headless Chromium: edge labels beside their lines, pan and zoom (drag,
wheel, buttons, keys), readable at 800 px, and colour by latency or error rate."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from collector.edge_rollup import compute_edges
from tests.support import trace_generator as gen
from tests.support.browser_site import strict_page
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

pytestmark = pytest.mark.browser

MS = 10**6
CALLS = {
    "frontend": ["checkout", "search", "profile", "recommendations"],
    "checkout": ["payments", "inventory", "shipping", "cart"],
    "payments": ["fraud-check", "ledger"],
    "shipping": ["quotes"],
    "ledger": ["audit-log"],
    "recommendations": ["catalog"],
}
OWN_MS = {"payments": 320}  # the latency incident: slow, and no errors
ERRORS = {"search": 0.3}  # the error incident


def call_tree(ids: gen.Ids, rng: random.Random, start: int) -> list[gen.GenSpan]:
    """One request through the whole tree: a server span per service, a client span per call."""
    trace_id = ids.trace()
    spans: list[gen.GenSpan] = []

    def serve(service: str, parent_id: str, at: int) -> int:
        server = gen.GenSpan(trace_id, ids.span(), parent_id, service, f"{service} op", at, 0)
        spans.append(server)
        t = at + MS
        for callee in CALLS.get(service, []):
            client = gen.GenSpan(trace_id, ids.span(), server.span_id, service, f"call {callee}",
                                 t, 0, kind=gen.KIND_CLIENT)  # fmt: skip
            spans.append(client)
            took = serve(callee, client.span_id, t + MS // 10) + MS // 5
            client.duration_ns = took
            if rng.random() < ERRORS.get(callee, 0):
                client.status_code = 2
            t += took
        own = OWN_MS[service] * MS if service in OWN_MS else rng.randint(2_000, 9_000) * 1000
        server.duration_ns = t - at + own
        if rng.random() < ERRORS.get(service, 0):
            server.status_code = 2
        return server.duration_ns

    serve("frontend", "", start)
    return spans


FIRST_S = (gen.now_ns() // 10**9 // 60 - 5) * 60  # a whole minute, five minutes back


@pytest.fixture(scope="module")
def spans() -> list[gen.GenSpan]:
    """60 requests through the tree over four minutes, one every four seconds."""
    rng, ids = random.Random(3), gen.Ids(3)
    return [s for i in range(60) for s in call_tree(ids, rng, (FIRST_S + 4 * i) * 10**9)]


@pytest.fixture(scope="module")
def site(clickhouse_server, spans) -> Iterator[str]:
    """The dashboard over the requests, with the edge rollup run over them."""
    first = FIRST_S
    store = open_store(clickhouse_server.url(database=f"browser_map_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    gen.insert(store, spans)
    compute_edges(store, first, first + 300)
    try:
        with live_dashboard(store) as url:
            yield url
    finally:
        store.close()


LABELS_ON_LINES = """() => {
  const svg = document.getElementById('service-map');
  const lines = Array.from(svg.querySelectorAll('g.edge .edge-line'), (l) =>
    Array.from(l.points, (p) => new DOMPoint(p.x, p.y)));
  const out = [];
  svg.querySelectorAll('g.edge').forEach((g) => {
    const text = g.querySelector('.edge-label');
    const box = text.getBBox();  // in the label's own (turned) frame
    const turn = text.transform.baseVal.consolidate();
    const toLocal = turn ? turn.matrix.inverse() : new DOMMatrix();
    lines.forEach((line, k) => {
      const local = line.map((p) => p.matrixTransform(toLocal));
      for (let i = 1; i < local.length; i++) {
        for (let t = 0; t <= 1; t += 0.005) {  // sample along the segment
          const x = local[i - 1].x + (local[i].x - local[i - 1].x) * t;
          const y = local[i - 1].y + (local[i].y - local[i - 1].y) * t;
          if (x > box.x && x < box.x + box.width && y > box.y && y < box.y + box.height) {
            out.push(g.dataset.parent + '>' + g.dataset.child + ' on line ' + k);
            return;
          }
        }
      }
    });
  });
  return out;
}"""

LABEL_CORNERS = """() => Array.from(document.querySelectorAll(
  '#service-map .edge-label, #service-map .node-label'), (t) => {
    const b = t.getBBox();
    const turn = t.transform.baseVal.consolidate();
    const m = turn ? turn.matrix : new DOMMatrix();
    const [x0, y0, x1, y1] = [b.x, b.y, b.x + b.width, b.y + b.height];
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
      .map(([x, y]) => { const p = new DOMPoint(x, y).matrixTransform(m); return [p.x, p.y]; });
  })"""


def _separated(p: list[list[float]], q: list[list[float]]) -> bool:
    """Separating-axis test for two convex polygons."""
    for poly in (p, q):
        for (ax, ay), (bx, by) in zip(poly, poly[1:] + poly[:1], strict=True):
            axis = (ay - by, bx - ax)
            sp = [x * axis[0] + y * axis[1] for x, y in p]
            sq = [x * axis[0] + y * axis[1] for x, y in q]
            if max(sp) <= min(sq) or max(sq) <= min(sp):
                return True
    return False


def overlapping(polygons: list[list[list[float]]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(polygons)
        for j, b in enumerate(polygons[i + 1 :], i + 1)
        if not _separated(a, b)
    ]


def view_box(page) -> list[float]:
    return [float(v) for v in page.get_attribute("#service-map", "viewBox").split()]


def scale(page) -> float:
    return float(page.get_attribute("#service-map", "data-scale"))


def test_edge_labels_sit_beside_their_lines(site, page, artifacts):
    page.goto(f"{site}/services/map?lookback=15m")
    page.wait_for_selector("#service-map[data-labels-placed]")
    assert page.locator("#service-map g.edge").count() == sum(map(len, CALLS.values()))
    assert page.evaluate(LABELS_ON_LINES) == []
    assert overlapping(page.evaluate(LABEL_CORNERS)) == []
    assert page.get_attribute("#service-map", "data-labels-placed") == "0"  # none crowded
    page.click("#map-fit")
    page.locator("#map-viewport").screenshot(path=str(artifacts / "service-map-edges.png"))


def test_at_800_px_the_map_is_readable_and_pans_and_zooms(site, browser, artifacts):
    with strict_page(browser, viewport={"width": 800, "height": 900}) as page:
        page.goto(f"{site}/services/map?lookback=15m")
        page.wait_for_selector("#service-map[data-scale]")
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        # Labels at a readable size, not shrunk to fit the window (they were 5 px).
        height = page.evaluate(
            "() => document.querySelector('#service-map .node-name').getBoundingClientRect().height"
        )
        assert scale(page) >= 0.9 and height >= 10
        page.screenshot(path=str(artifacts / "service-map-800px.png"))

        # Drag pans; a drag that ends on an edge or node does not open it.
        viewport = page.locator("#map-viewport").bounding_box()
        cx, cy = viewport["x"] + viewport["width"] / 2, viewport["y"] + viewport["height"] / 2
        before = view_box(page)
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx - 300, cy - 40, steps=8)
        page.mouse.up()
        after = view_box(page)
        assert after[0] > before[0] + 200 and after[2:] == before[2:]
        assert "/services/map" in page.url

        # The wheel zooms about the pointer; the buttons zoom, fit and restore full size.
        s = scale(page)
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, -300)
        page.wait_for_function(
            f"Number(document.getElementById('service-map').dataset.scale) > {s}"
        )
        page.click("#map-fit")
        fit = scale(page)
        assert fit < 0.9
        x, y, w, h = view_box(page)
        graph = page.evaluate("() => { const b = document.getElementById('service-map').getBBox();"
                              " return [b.x, b.y, b.width, b.height]; }")  # fmt: skip
        assert x <= graph[0] and y <= graph[1]
        assert x + w >= graph[0] + graph[2] and y + h >= graph[1] + graph[3]
        page.click("#map-zoom-in")
        assert scale(page) == pytest.approx(fit * 1.25, rel=0.01)
        page.click("#map-zoom-out")
        assert scale(page) == pytest.approx(fit, rel=0.01)
        page.click("#map-actual")
        assert scale(page) == 1

        # Keyboard: Tab reaches the buttons and the map; keys pan and zoom it.
        page.focus("#map-colour")
        reached = []
        for _ in range(7):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.id"))
        toolbar = ["map-zoom-in", "map-zoom-out", "map-fit", "map-actual", "map-viewport"]
        assert [r for r in reached if r in toolbar] == toolbar
        page.focus("#map-viewport")
        before = view_box(page)
        page.keyboard.press("ArrowRight")
        assert view_box(page)[0] > before[0]
        page.keyboard.press("-")
        assert scale(page) == pytest.approx(0.8, rel=0.01)
        page.keyboard.press("0")
        assert scale(page) == pytest.approx(fit, rel=0.01)


def test_colour_by_latency_and_error_rate(site, page, artifacts):
    page.goto(f"{site}/services/map?lookback=15m")
    page.wait_for_selector("#service-map[data-scale]")

    def band(kind: str, key: str) -> str | None:
        if kind == "node":
            return page.get_attribute(f'#service-map g.node[data-id="{key}"]', "data-band")
        parent, child = key.split(">")
        sel = f'#service-map g.edge[data-parent="{parent}"][data-child="{child}"]'
        return page.get_attribute(sel, "data-band")

    # Health (the default): no errors and no SLO, so the slow payments look like the rest.
    assert "failing" not in page.get_attribute('g.node[data-id="payments"]', "class")
    assert band("node", "payments") is None
    page.select_option("#map-colour", "latency")
    assert band("node", "payments") == "3"  # 250 ms – 1 s
    assert band("node", "inventory") == "0"  # under 25 ms
    assert band("edge", "checkout>payments") == "3"
    assert band("edge", "checkout>inventory") == "0"
    fill = page.evaluate(
        "() => getComputedStyle(document.querySelector("
        "'#service-map g.node[data-id=\"payments\"] circle')).fill"
    )
    assert fill == "rgb(224, 123, 46)"
    assert "250 ms–1 s" in page.inner_text("#map-legend")
    page.click("#map-fit")
    page.screenshot(path=str(artifacts / "service-map-latency.png"))

    # A drag that starts on a node pans; a click on it still opens the service.
    node = page.locator('#service-map g.node[data-id="payments"] circle').bounding_box()
    x, y = node["x"] + node["width"] / 2, node["y"] + node["height"] / 2
    before = view_box(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 30, steps=6)
    page.mouse.up()
    assert view_box(page)[0] < before[0] and "/services/map" in page.url
    page.locator('#service-map g.node[data-id="payments"] circle').click()
    page.wait_for_url("**/services/payments")
    page.go_back()
    page.wait_for_selector("#service-map[data-scale]")

    page.select_option("#map-colour", "errors")
    assert band("node", "search") == "4"  # ≥ 5 %
    assert band("node", "payments") == "0"
    assert parse_qs(urlsplit(page.url).query)["colour"] == ["errors"]
    page.reload()
    page.wait_for_selector("#service-map[data-scale]")
    assert page.input_value("#map-colour") == "errors" and band("node", "search") == "4"


def edge_calls(spans: list[gen.GenSpan], parent: str, child: str) -> list[tuple[int, float, bool]]:
    """(start ns, duration ms, failed) of each call ``parent`` made to ``child``."""
    by_parent = {}
    for s in spans:
        by_parent.setdefault(s.parent_span_id, []).append(s)
    return [
        (s.start_ns, s.duration_ns / 1e6, s.status_code == 2 or served.status_code == 2)
        for s in spans
        if s.service == parent and s.kind == gen.KIND_CLIENT
        for served in by_parent.get(s.span_id, [])
        if served.service == child
    ]


def shown(page) -> list[tuple[float, bool]]:
    return [
        (float(d), e == "1")
        for d, e in page.eval_on_selector_all(
            "#edge-traces tbody tr",
            "rs => rs.map(r => [r.cells[2].dataset.v, r.cells[3].dataset.v])",
        )
    ]


def test_edge_page_lists_the_slowest_and_failed_calls_of_the_whole_range(
    site, spans, page, artifacts
):
    """Sorted by the store over every call in the range, not the latest 50 re-sorted."""
    calls = edge_calls(spans, "checkout", "inventory")
    assert len(calls) == 60  # more than the page lists
    page.goto(f"{site}/services/map?lookback=15m")
    page.locator('g.edge[data-parent="checkout"][data-child="inventory"] .edge-label').click()
    page.wait_for_url("**/services/edge?**")
    assert page.get_attribute("#edge-sort-latest", "aria-current") == "page"
    page.click("#edge-sort-slowest")
    page.wait_for_url("**sort=slowest**")
    assert page.get_attribute("#edge-sort-slowest", "aria-current") == "page"
    durations = [d for d, _ in shown(page)]
    slowest = sorted((d for _, d, _ in calls), reverse=True)[:50]
    assert durations == pytest.approx(slowest, abs=0.002)
    assert "50 slowest calls" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "service-edge-slowest.png"))

    failed = edge_calls(spans, "frontend", "search")
    errors = sum(e for _, _, e in failed)
    assert 0 < errors < 50
    query = urlsplit(page.url).query.replace("checkout", "frontend").replace("inventory", "search")
    page.goto(f"{site}/services/edge?{query.replace('sort=slowest', 'sort=errors')}")
    flags = [e for _, e in shown(page)]
    assert flags[:errors] == [True] * errors and not any(flags[errors:])

    response = page.goto(f"{site}/services/edge?parent=a&child=b&sort=fastest")
    assert response.status == 400
    assert "sort must be one of latest, slowest, errors" in page.inner_text("main")
