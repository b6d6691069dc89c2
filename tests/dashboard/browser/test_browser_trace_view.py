"""The trace view: distinct, stable service colours; find within the trace with match
navigation; parent, service and operation as links; statistics whose totals add up."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.support import trace_generator as gen
from tests.support.browser_site import served

pytestmark = pytest.mark.browser

MS = 10**6
# The services whose colours the old hash put 3 degrees apart (frontend 322, orders 325).
SERVICES = ("frontend", "orders", "payments", "inventory", "shipping", "db", "cart", "auth")


def checkout(ids: gen.Ids, start: int) -> list[gen.GenSpan]:
    """frontend → frontend (client) → orders → each other service; nested same-service spans."""
    trace_id = ids.trace()

    def span(parent: gen.GenSpan | None, service: str, name: str, at: int, dur: int, **kw):
        return gen.GenSpan(
            trace_id, ids.span(), parent.span_id if parent else "", service, name,
            start + at * MS, dur * MS, **kw,
        )  # fmt: skip

    root = span(None, "frontend", "POST /checkout", 0, 100)
    client = span(root, "frontend", "POST /orders", 5, 90, kind=gen.KIND_CLIENT)
    orders = span(client, "orders", "CreateOrder", 6, 88)
    rest = [
        span(orders, service, f"call-{service}", 10 + 9 * k, 8, attrs={"user.id": f"u-{k}"})
        for k, service in enumerate(SERVICES[2:])
    ]
    rest[1].attrs["user.id"] = "u-4242"
    return [root, client, orders, *rest]


class Data:
    def __init__(self) -> None:
        ids, now = gen.Ids(5), gen.now_ns()
        self.big = checkout(ids, now - 120 * 10**9)
        trace_id = ids.trace()
        root = gen.GenSpan(trace_id, ids.span(), "", "frontend", "GET /", now - 60 * 10**9, MS)
        child = gen.GenSpan(trace_id, ids.span(), root.span_id, "orders", "List", root.start_ns, MS)
        self.small = [root, child]


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    data = Data()
    with served(clickhouse_server, data.big + data.small, "browser_trace_view") as url:
        yield url, data


def open_trace(page, url: str, trace_id: str) -> None:
    page.goto(f"{url}/trace/{trace_id}")
    page.wait_for_selector("#trace-app[data-loaded]")


def swatches(page) -> dict[str, tuple[int, ...]]:
    pairs = page.eval_on_selector_all(
        "#rows .row",
        """rows => rows.map(r => [r.querySelector('.svc').textContent,
            getComputedStyle(r.querySelector('.swatch')).backgroundColor])""",
    )
    return {svc: tuple(int(c) for c in rgb[4:-1].split(",")) for svc, rgb in pairs}


def test_service_colours_are_distinct_and_stable(site, page, artifacts):
    url, data = site
    open_trace(page, url, data.big[0].trace_id)
    colours = swatches(page)
    assert set(colours) == set(SERVICES)
    for (a, ca), (b, cb) in itertools.combinations(colours.items(), 2):
        distance = sum((x - y) ** 2 for x, y in zip(ca, cb, strict=True)) ** 0.5
        assert distance > 45, (a, ca, b, cb)
    page.screenshot(path=str(artifacts / "trace-colours.png"))
    open_trace(page, url, data.small[0].trace_id)
    again = swatches(page)
    assert again == {s: colours[s] for s in ("frontend", "orders")}


def test_find_within_the_trace_with_match_navigation(site, page, artifacts):
    url, data = site
    open_trace(page, url, data.big[0].trace_id)
    page.fill("#find", "frontend")
    expect(page.locator("#find-count")).to_have_text("1 of 2")
    assert page.locator("#rows .row.match").count() == 2
    first = page.get_attribute("#rows .row.selected", "data-span-id")
    page.press("#find", "Enter")
    expect(page.locator("#find-count")).to_have_text("2 of 2")
    second = page.get_attribute("#rows .row.selected", "data-span-id")
    assert {first, second} == {data.big[0].span_id, data.big[1].span_id}
    page.click("#find-next")  # wraps around
    assert page.inner_text("#find-count") == "1 of 2"
    page.click("#find-prev")
    assert page.inner_text("#find-count") == "2 of 2"

    # An attribute value finds its one span; so does a span id.
    target = data.big[4]
    page.fill("#find", "u-4242")
    expect(page.locator("#find-count")).to_have_text("1 of 1")
    assert page.get_attribute("#rows .row.selected", "data-span-id") == target.span_id
    assert "u-4242" in page.inner_text("#span-attributes")
    page.screenshot(path=str(artifacts / "trace-find.png"))
    page.fill("#find", data.big[6].span_id)
    page.press("#find", "Enter")
    page.wait_for_selector(f'#rows .row.selected[data-span-id="{data.big[6].span_id}"]')
    page.fill("#find", "no-such-thing")
    expect(page.locator("#find-count")).to_have_text("no match")


def test_parent_service_and_operation_are_links(site, page):
    url, data = site
    orders = data.big[2]
    page.goto(f"{url}/trace/{orders.trace_id}?span={orders.span_id}")
    page.wait_for_selector("#span-detail:not([hidden])")
    assert page.get_attribute("#service-link", "href") == "/services/orders"
    assert page.get_attribute("#operation-link", "href") == (
        "/search?service=orders&operation=CreateOrder&lookback=1h"
    )
    page.click("#parent-link")
    page.wait_for_selector(f'#rows .row.selected[data-span-id="{data.big[1].span_id}"]')
    assert page.url.endswith(f"?span={data.big[1].span_id}")
    page.click("#operation-link")
    page.wait_for_selector(f'a.trace-link[href="/trace/{orders.trace_id}"]')


def test_statistics_by_service_add_up(site, page):
    url, data = site
    open_trace(page, url, data.big[0].trace_id)
    page.click('.tab[data-tab="stats"]')
    headers = page.eval_on_selector_all(
        "#stats-services thead th", "hs => hs.map(h => h.textContent)"
    )
    assert "Operation" not in headers
    rows = page.eval_on_selector_all(
        "#stats-services tbody tr",
        """rows => rows.map(r => ({spans: Number(r.cells[1].textContent),
            wall: Number(r.dataset.wallNs), self: Number(r.dataset.selfNs)}))""",
    )
    assert sum(r["spans"] for r in rows) == len(data.big)
    duration = data.big[0].duration_ns
    assert all(0 < r["wall"] <= duration for r in rows)
    frontend_wall = max(r["wall"] for r in rows)
    assert frontend_wall == duration  # root and its nested client span counted once
    assert sum(r["self"] for r in rows) <= duration
    footer = page.inner_text("#stats-services tfoot")
    assert f"\t{len(data.big)}\t" in footer and "100%" in footer and "100.0ms" in footer


def window_ms(page) -> tuple[float, float]:
    """The time window the view shows, in ms from the trace start."""
    start, end = page.evaluate(
        "() => [document.getElementById('trace-app').dataset.viewStartNs,"
        " document.getElementById('trace-app').dataset.viewEndNs]"
    )
    return int(start) / MS, int(end) / MS


def drag(page, selector: str, x0: float, x1: float, y: float = 0.5) -> None:
    """Press at fraction ``x0`` of the element's width, move to ``x1``, release."""
    box = page.locator(selector).bounding_box()
    at_y = box["y"] + box["height"] * y
    page.mouse.move(box["x"] + box["width"] * x0, at_y)
    page.mouse.down()
    for fx in ((x0 + x1) / 2, x1):
        page.mouse.move(box["x"] + box["width"] * fx, at_y, steps=3)
    page.mouse.up()


def test_minimap_zooms_and_pans_the_waterfall(site, page, artifacts):
    url, data = site
    open_trace(page, url, data.big[0].trace_id)
    assert window_ms(page) == (0, 100)
    assert page.locator("#zoom-reset").is_hidden()
    outside, inside = data.big[3], data.big[7]  # call-payments 10-18 ms, call-shipping 46-54 ms

    drag(page, "#minimap", 0.4, 0.6)  # 40-60 ms of the 100 ms trace
    start, end = window_ms(page)
    assert 38 < start < 42 and 58 < end < 62, (start, end)
    assert page.locator("#zoom-reset").is_visible()
    ticks = page.eval_on_selector_all("#ruler-ticks span", "ts => ts.map(t => t.textContent)")
    assert ticks[0].startswith(("38", "39", "40", "41")) and ticks[-1].startswith(("5", "6"))
    # The waterfall shows the window: an 8 ms span fills ~40% of a 20 ms lane, one outside
    # the window has no bar.
    width = page.eval_on_selector(
        f'#rows .row[data-span-id="{inside.span_id}"] .bar', "b => parseFloat(b.style.width)"
    )
    assert 35 < width < 45, width
    assert page.locator(f'#rows .row[data-span-id="{outside.span_id}"] .bar').count() == 0
    page.screenshot(path=str(artifacts / "trace-minimap-zoom.png"))

    drag(page, "#minimap", 0.5, 0.6)  # inside the frame: pans it by 10 ms
    moved = window_ms(page)
    assert 8 < moved[0] - start < 12 and abs((moved[1] - moved[0]) - (end - start)) < 0.01

    page.focus("#minimap")  # the keyboard does the same: zoom in, then reset
    page.keyboard.press("+")
    narrower = window_ms(page)
    assert narrower[1] - narrower[0] < (moved[1] - moved[0]) * 0.6
    page.keyboard.press("0")
    assert window_ms(page) == (0, 100)
    assert page.locator("#zoom-reset").is_hidden()


def test_flame_graph_renders_and_click_zooms(site, page, artifacts):
    url, data = site
    open_trace(page, url, data.big[0].trace_id)
    colours = swatches(page)
    page.click('.tab[data-tab="flame"]')
    canvas = page.locator("#flame-canvas")
    expect(canvas).to_have_attribute("data-drawn", str(len(data.big)))
    assert page.locator("#waterfall").is_hidden()
    row_h = int(canvas.get_attribute("data-row-height"))
    box = canvas.bounding_box()
    # The root's box (depth 0, the whole width) is drawn in frontend's waterfall colour.
    pixel = page.evaluate(
        """([x, y]) => { const c = document.getElementById('flame-canvas');
        const r = window.devicePixelRatio || 1;
        const d = c.getContext('2d').getImageData(x * r, y * r, 1, 1).data;
        return [d[0], d[1], d[2]]; }""",
        [box["width"] / 2, row_h / 2],
    )
    assert tuple(pixel) == colours["frontend"]
    page.screenshot(path=str(artifacts / "trace-flame.png"))

    def click(depth: int, at_ms: float) -> None:
        start, end = window_ms(page)
        fx = (at_ms - start) / (end - start)
        now = canvas.bounding_box()  # the detail pane, once open, narrows the graph
        page.mouse.click(now["x"] + now["width"] * fx, now["y"] + depth * row_h + row_h / 2)

    orders, payments = data.big[2], data.big[3]  # CreateOrder 6-94 ms; call-payments 10-18 ms
    click(2, 50)
    expect(page.locator("#detail-title")).to_have_text("orders: CreateOrder")
    assert window_ms(page) == (6, 94)
    click(3, 14)
    expect(page.locator("#detail-title")).to_have_text("payments: call-payments")
    assert window_ms(page) == (10, 18)
    assert page.url.endswith(f"?span={payments.span_id}")
    assert orders.span_id != payments.span_id
    page.dblclick("#flame-canvas", position={"x": 5, "y": 5})
    assert window_ms(page) == (0, 100)

    # The double-click's clicks selected the root. The keyboard: down to a first child,
    # right to a sibling, Enter zooms, up to the parent, 0 resets.
    expect(page.locator("#detail-title")).to_have_text("frontend: POST /checkout")
    page.focus("#flame-canvas")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(page.locator("#detail-title")).to_have_text("payments: call-payments")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#detail-title")).to_have_text("inventory: call-inventory")
    page.keyboard.press("Enter")
    assert window_ms(page) == (19, 27)
    page.keyboard.press("ArrowUp")
    expect(page.locator("#detail-title")).to_have_text("orders: CreateOrder")
    page.keyboard.press("0")
    assert window_ms(page) == (0, 100)
