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
