"""Layout: every page usable at 800 px (no sideways scroll, the nav wraps) and a styled 404
and error pages instead of Starlette's bare "Not Found"."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.support import trace_generator as gen
from tests.support.browser_site import served, strict_page

pytestmark = pytest.mark.browser


class Data:
    def __init__(self) -> None:
        rng, ids, now = random.Random(8), gen.Ids(8), gen.now_ns()
        self.traces = [
            gen.random_trace(rng, ids, now - (30 + 40 * i) * 10**9, size=12) for i in range(8)
        ]
        self.deep = gen.deep(ids, 30, now - 90 * 10**9)
        self.calls = [span for i in range(6) for span in call(ids, now - (20 + i) * 10**9, i)]

    def spans(self) -> list[gen.GenSpan]:
        return [s for t in self.traces for s in t] + self.deep + self.calls


def call(ids: gen.Ids, start: int, i: int) -> list[gen.GenSpan]:
    """frontend calls checkout: a client span and the server span under it."""
    trace_id, ms = ids.trace(), 10**6
    dur = (7 * i % 5 + 1) * 10 * ms
    root = gen.GenSpan(trace_id, ids.span(), "", "frontend", "GET /", start, dur + 2 * ms)
    status = 2 if i == 2 else 0
    client = gen.GenSpan(trace_id, ids.span(), root.span_id, "frontend", "POST /checkout",
                         start + ms, dur, kind=gen.KIND_CLIENT, status_code=status)  # fmt: skip
    server = gen.GenSpan(trace_id, ids.span(), client.span_id, "checkout", "POST /checkout",
                         start + ms, dur - ms)  # fmt: skip
    return [root, client, server]


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    data = Data()
    with served(clickhouse_server, data.spans(), "browser_layout") as url:
        yield url, data


def pages(data: Data) -> list[str]:
    a, b = data.traces[0][0].trace_id, data.traces[1][0].trace_id
    return [
        "/search?lookback=1h",
        "/search?minDuration=soon",
        f"/trace/{data.deep[0].trace_id}?span={data.deep[-1].span_id}",
        f"/trace/{a}",
        "/services",
        "/services/frontend",
        "/services/map",
        "/services/edge?parent=frontend&child=checkout",
        "/slos",
        "/alerts",
        f"/compare?a={a}&b={b}",
        "/no/such/page",
        "/trace/" + "0" * 32,
    ]


@pytest.mark.parametrize("width", [800])
def test_no_page_scrolls_sideways_at_800_px(site, browser, artifacts, width):
    url, data = site
    with strict_page(browser, viewport={"width": width, "height": 900}) as page:
        wide = {}
        for path in pages(data):
            page.goto(url + path, wait_until="networkidle")
            if path.startswith("/trace/") and "0" * 32 not in path:
                page.wait_for_selector("#trace-app[data-loaded]")
            over = page.evaluate("document.documentElement.scrollWidth") - width
            if over > 0:
                wide[path] = over
        assert wide == {}, f"pages wider than {width} px (by px): {wide}"
        # The waterfall keeps service names whole at this width, with a span's detail open.
        root = data.traces[0][1]
        page.goto(f"{url}/trace/{root.trace_id}?span={root.span_id}")
        page.wait_for_selector("#span-detail:not([hidden])")
        clipped = page.eval_on_selector_all(
            "#rows .row .name",
            """names => names.filter(n => {
                const svc = n.querySelector('.svc');
                return svc.getBoundingClientRect().right > n.getBoundingClientRect().right;
            }).map(n => n.textContent)""",
        )
        assert clipped == []
        page.screenshot(path=str(artifacts / "trace-800px.png"))
        # The nav wraps rather than pushing the page wide.
        page.goto(url + "/search?lookback=1h")
        links = page.locator(".topbar nav a")
        boxes = [links.nth(i).bounding_box() for i in range(links.count())]
        assert all(box["x"] + box["width"] <= width for box in boxes)
        page.screenshot(path=str(artifacts / "search-800px.png"))


def test_unknown_urls_get_a_styled_404_and_apis_json(site, browser, artifacts):
    url, _ = site
    with strict_page(browser) as page:
        response = page.goto(url + "/dashboards/checkout-latency")
        assert response.status == 404
        assert page.inner_text("h1") == "Page not found"
        assert "/dashboards/checkout-latency" in page.inner_text("#message")
        assert page.locator(".topbar #trace-id-box").count() == 1  # the site's own frame
        assert page.locator("link[href='/static/base.css']").count() == 1
        page.screenshot(path=str(artifacts / "not-found.png"))
        response = page.goto(url + "/api/v1/no-such-api")
        assert response.status == 404 and "/api/v1/no-such-api" in response.json()["error"]
        response = page.goto(url + "/search?limit=0")
        assert response.status == 400 and "limit" in page.inner_text("#search-error")
        assert page.locator("#search-form").count() == 1  # the form stays, with its values
        assert page.input_value("#f-limit") == "0"
        response = page.goto(url + "/trace/not-hex")
        assert response.status == 400 and page.inner_text("h1") == "Not a trace id"
        assert page.get_attribute("#error-page", "data-status") == "400"


def test_edge_calls_sort_by_duration_and_status(site, browser):
    url, _ = site
    with strict_page(browser) as page:
        page.goto(url + "/services/edge?parent=frontend&child=checkout&lookback=1h")
        rows = page.locator("#edge-traces tbody tr")
        assert rows.count() >= 6

        def column(i: int) -> list[float]:
            return [float(v) for v in page.eval_on_selector_all(
                "#edge-traces tbody tr", f"rs => rs.map(r => r.cells[{i}].dataset.v)"
            )]  # fmt: skip

        page.click("#edge-traces th:nth-child(3)")
        page.click("#edge-traces th:nth-child(3)")  # second click: slowest first
        assert column(2) == sorted(column(2), reverse=True)
        page.click("#edge-traces th:nth-child(4)")
        page.click("#edge-traces th:nth-child(4)")  # errors first
        assert column(3) == sorted(column(3), reverse=True)
