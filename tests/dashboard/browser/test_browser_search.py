"""Search that helps: the attribute example that matches what sidecars record, key
suggestions, a scatter fitted to the results with drag-to-zoom, sort orders, in-flight
traces labelled, full ids with copy buttons and every displayed id form opening its trace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.support import trace_generator as gen
from tests.support.browser_site import served, strict_page

pytestmark = pytest.mark.browser

MINUTE = 60 * 10**9
MS = 10**6


def trace(ids: gen.Ids, start: int, dur_ms: int, children: int, **root_kw) -> list[gen.GenSpan]:
    trace_id = ids.trace()
    root = gen.GenSpan(trace_id, ids.span(), "", "frontend", "GET /", start, dur_ms * MS, **root_kw)
    return [root] + [
        gen.GenSpan(trace_id, ids.span(), root.span_id, "orders", "Load", start + i * 1000, 1000)
        for i in range(children)
    ]


class Data:
    def __init__(self) -> None:
        ids, now = gen.Ids(77), gen.now_ns()
        # Eight traces over the last 50 minutes: durations and sizes in no particular order.
        shapes = [(3, 40, 2), (9, 5, 7), (15, 300, 1), (22, 12, 4), (28, 90, 9), (35, 1, 3),
                  (43, 150, 5), (50, 70, 6)]  # fmt: skip
        self.traces = [
            trace(ids, now - m * MINUTE, dur, n, attrs={"http.response.status_code": 200})
            for m, dur, n in shapes
        ]
        self.failed = trace(
            ids, now - 18 * MINUTE, 25, 2, status_code=2,
            attrs={"http.response.status_code": 500, "http.request.method": "POST"},
        )  # fmt: skip
        lost = ids.span()
        in_flight_id, stale_id = ids.trace(), ids.trace()
        self.in_flight = [
            gen.GenSpan(in_flight_id, ids.span(), lost, "payments", "Charge", now - 20 * 10**9, MS)
        ]
        self.rootless = [
            gen.GenSpan(stale_id, ids.span(), lost, "payments", "Charge", now - 45 * MINUTE, MS)
        ]

    def spans(self) -> list[gen.GenSpan]:
        everything = [s for t in self.traces for s in t]
        return everything + self.failed + self.in_flight + self.rootless


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    data = Data()
    with served(clickhouse_server, data.spans(), "browser_search") as url:
        yield url, data


def test_attribute_example_and_suggested_keys_find_traces(site, page):
    url, data = site
    page.goto(f"{url}/search?lookback=1h")
    assert page.get_attribute("#f-attrs", "placeholder") == "http.response.status_code=500"
    keys = page.eval_on_selector_all("#attribute-keys option", "os => os.map(o => o.value)")
    assert {"http.response.status_code", "http.request.method"} <= set(keys)
    page.fill("#f-attr-add", "http.response.status_code=500")
    page.press("#f-attr-add", "Enter")
    assert page.input_value("#f-attrs") == "http.response.status_code=500"
    page.click("#f-submit")
    page.wait_for_selector("#results")
    links = page.eval_on_selector_all("#results a.trace-link", "as => as.map(a => a.href)")
    assert [link.rsplit("/", 1)[1] for link in links] == [data.failed[0].trace_id]


def test_the_scatter_fits_the_results_and_a_drag_narrows_the_search(site, page, artifacts):
    url, data = site
    page.goto(f"{url}/search?lookback=24h&limit=50")
    xs = [
        float(x)
        for x in page.eval_on_selector_all(
            "#scatter circle", "cs => cs.map(c => c.getAttribute('cx'))"
        )
    ]
    assert len(xs) == 11
    # Results spread over the plot (not squeezed to the right edge of a 24 h axis).
    assert min(xs) < 60 + 0.1 * 830 and max(xs) > 60 + 0.9 * 830
    page.screenshot(path=str(artifacts / "search-scatter.png"))
    box = page.locator("#scatter").bounding_box()
    scale = box["width"] / 900

    def at(x: float) -> float:
        return box["x"] + x * scale

    y = box["y"] + 60 * scale
    lo, hi = sorted(xs)[2] - 3, sorted(xs)[6] + 3
    page.mouse.move(at(lo), y)
    page.mouse.down()
    page.mouse.move(at((lo + hi) / 2), y, steps=4)
    assert page.is_visible("#zoom-band")
    page.mouse.move(at(hi), y, steps=4)
    page.mouse.up()
    page.wait_for_url("**start=**")
    page.wait_for_selector("#results")
    query = parse_qs(urlsplit(page.url).query)
    assert query["lookback"] == ["custom"] and query["limit"] == ["50"]
    start = datetime.fromisoformat(query["start"][0]).timestamp() * 10**9
    end = datetime.fromisoformat(query["end"][0]).timestamp() * 10**9
    assert page.locator(".trace-item").count() == 5
    starts = page.eval_on_selector_all(".trace-item .start", "ss => ss.map(s => s.dataset.ns)")
    assert all(start <= int(ns) <= end for ns in starts)


@pytest.mark.parametrize(
    ("sort", "attribute", "reverse"),
    [("longest", "durationNs", True), ("newest", "startNs", True), ("spans", "spans", True)],
)
def test_sort_orders(site, page, sort, attribute, reverse):
    url, _ = site
    page.goto(f"{url}/search?lookback=1h&sort={sort}&limit=50")
    items = page.locator(".trace-item")
    assert items.count() == 11
    assert page.input_value("#f-sort") == sort
    values = page.eval_on_selector_all(
        ".trace-item",
        """items => items.map(i => ({
            durationNs: Number(i.querySelector('.dur').dataset.durationNs),
            startNs: Number(i.querySelector('.start').dataset.ns),
            spans: parseInt(i.querySelector('.meta span').textContent)}))""",
    )
    got = [v[attribute] for v in values]
    assert got == sorted(got, reverse=reverse)


def test_errors_first_and_a_bad_sort_is_a_clear_400(site, page):
    url, data = site
    page.goto(f"{url}/search?lookback=1h&sort=errors")
    first = page.locator(".trace-item").first
    assert data.failed[0].trace_id in first.inner_html() and "1 error" in first.inner_text()
    response = page.goto(f"{url}/search?lookback=1h&sort=sideways")
    assert response.status == 400
    assert "sort must be one of newest" in page.inner_text("#search-error")


def test_in_flight_traces_are_labelled_with_a_refresh(site, page):
    url, data = site
    page.goto(f"{url}/search?lookback=1h&limit=50")
    fresh = page.locator(f'.trace-item:has(a[href="/trace/{data.in_flight[0].trace_id}"])')
    assert "In flight" in fresh.inner_text() and "root span missing" not in fresh.inner_text()
    stale = page.locator(f'.trace-item:has(a[href="/trace/{data.rootless[0].trace_id}"])')
    assert "(root span missing)" in stale.inner_text()
    page.click("#refresh")
    page.wait_for_selector("#results")
    assert "lookback=1h" in page.url


def test_full_ids_copy_and_every_shown_form_opens_the_trace(site, browser):
    url, data = site
    trace_id = data.traces[3][0].trace_id
    with strict_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        page.goto(f"{url}/search?lookback=1h&limit=50")
        item = page.locator(f'.trace-item:has(a[href="/trace/{trace_id}"])')
        assert item.locator("code.trace-id").inner_text() == trace_id
        item.locator("button.copy").click()
        expect(item.locator("button.copy")).to_have_text("Copied")  # after the clipboard's promise
        assert page.evaluate("navigator.clipboard.readText()") == trace_id
        for shown in (trace_id[:16] + "…", trace_id[:16], trace_id[:12].upper(), f" {trace_id} "):
            page.fill("#trace-id-box", shown)
            page.press("#trace-id-box", "Enter")
            page.wait_for_selector("#trace-app[data-loaded]")
            assert page.url.endswith(f"/trace/{trace_id}"), shown
