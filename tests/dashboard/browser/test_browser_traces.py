"""The trace pages in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest

from tests.support import trace_generator as gen
from tests.support.browser import launch_chromium
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000


class Data:
    """The traces loaded for these tests."""

    def __init__(self) -> None:
        rng = random.Random(41)
        ids = gen.Ids(41)
        now = gen.now_ns()
        self.checkout = gen.random_trace(rng, ids, now - 90 * 10**9, size=24)
        self.checkout[0].name = "POST /checkout"
        self.checkout[0].attrs["http.route"] = "/checkout"
        self.checkout[5].status_code = 2
        self.checkout[5].status_message = "card declined"
        self.checkout[5].events = [(self.checkout[5].start_ns + 500, "exception", {"msg": "boom"})]
        self.background = [
            span
            for i in range(6)
            for span in gen.random_trace(rng, ids, now - (200 + 40 * i) * 10**9, size=6)
        ]
        self.skewed = gen.clock_skew(ids, start_ns=now - 300 * 10**9)
        self.big = gen.big(ids, 10_000, start_ns=now - 120 * 10**9)

    def spans(self) -> list[gen.GenSpan]:
        return self.checkout + self.background + self.skewed + self.big


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    store = open_store(clickhouse_server.url(database=f"browser_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    data = Data()
    gen.insert(store, data.spans())
    with live_dashboard(store) as url:
        yield url, data
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], errors


def wait_loaded(page) -> int:
    page.wait_for_selector("#trace-app[data-loaded]")
    return int(page.get_attribute("#trace-app", "data-loaded"))


def test_open_trace_from_search_and_inspect(site, page, artifacts):
    url, data = site
    root = data.checkout[0]
    page.goto(f"{url}/search?service=frontend&operation=POST+%2Fcheckout&lookback=15m")
    page.wait_for_selector("#results")
    page.screenshot(path=str(artifacts / "search.png"))
    page.click(f'a.trace-link[href="/trace/{root.trace_id}"]')
    assert wait_loaded(page) == 24
    assert page.url.endswith(f"/trace/{root.trace_id}")
    rows = page.locator("#rows .row")
    assert rows.count() == 24

    # collapse the root: only it remains; expand again
    page.click(f'#rows .row[data-span-id="{root.span_id}"] .toggle')
    assert rows.count() == 1
    page.click(f'#rows .row[data-span-id="{root.span_id}"] .toggle')
    assert rows.count() == 24

    # select the failing span: its attributes, status and event are shown
    failing = data.checkout[5]
    page.click(f'#rows .row[data-span-id="{failing.span_id}"]')
    detail = page.locator("#span-detail")
    assert detail.is_visible()
    assert "peer.service" in page.inner_text("#span-attributes")
    assert failing.service in page.inner_text("#span-attributes")
    assert "card declined" in page.inner_text("#span-overview")
    assert "exception" in detail.inner_text()
    assert page.url.endswith(f"?span={failing.span_id}")
    assert page.locator(".row.selected").get_attribute("data-span-id") == failing.span_id
    page.screenshot(path=str(artifacts / "trace-view.png"))

    # statistics tab
    page.click('.tab[data-tab="stats"]')
    assert "frontend" in page.inner_text("#stats-table")
    assert "All services" in page.inner_text("#stats-services")
    page.click('.tab[data-tab="waterfall"]')


def test_deep_link_into_ten_thousand_span_trace(site, page, artifacts):
    url, data = site
    target = data.big[-1]
    page.goto(f"{url}/trace/{target.trace_id}?span={target.span_id}")
    assert wait_loaded(page) == 10_000
    page.wait_for_selector(f'#rows .row.selected[data-span-id="{target.span_id}"]')
    assert "i" in page.inner_text("#span-attributes")
    assert str(len(data.big) - 1) in page.inner_text("#span-attributes")
    # virtualized: far fewer rows in the DOM than spans in the trace
    assert page.locator("#rows .row").count() < 200
    page.screenshot(path=str(artifacts / "trace-10k-deep-link.png"))

    # scroll to the top and back to the bottom; rows are rendered where we look
    page.evaluate("document.getElementById('viewport').scrollTop = 0")
    page.wait_for_selector(f'#rows .row[data-span-id="{data.big[0].span_id}"]')
    page.evaluate("const v = document.getElementById('viewport'); v.scrollTop = v.scrollHeight")
    last_row_top = f"{24 * 9_999}px"
    page.wait_for_function(
        "top => [...document.querySelectorAll('#rows .row')].some(r => r.style.top === top)",
        arg=last_row_top,
    )
    assert page.locator("#rows .row").count() < 200

    # collapse all leaves only the root and its direct children
    page.click("#collapse-all")
    assert page.locator("#rows .row").count() == 9
    page.click("#expand-all")
    assert int(page.evaluate("document.getElementById('rows').style.height")[:-2]) == 24 * 10_000


def test_clock_skew_and_time_zone_toggle(site, page):
    url, data = site
    page.goto(f"{url}/trace/{data.skewed[0].trace_id}")
    wait_loaded(page)
    assert "clock skew" in page.inner_text("#skew")
    assert page.locator("#rows .mark.skew").count() == 2
    started = page.locator(".trace-meta [data-ns]")
    local_text = started.inner_text()
    page.click("#tz-toggle")
    assert page.inner_text("#tz-toggle") == "UTC"
    assert started.inner_text().endswith("UTC") and started.inner_text() != local_text
    page.click("#tz-toggle")
    assert page.inner_text("#tz-toggle") == "Local"


def test_header_box_and_not_found(site, page):
    url, data = site
    page.goto(f"{url}/search")
    short = data.skewed[0].trace_id[16:]
    page.fill("#trace-id-box", data.skewed[0].trace_id.upper())
    page.press("#trace-id-box", "Enter")
    wait_loaded(page)
    page.fill("#trace-id-box", short)
    page.press("#trace-id-box", "Enter")
    page.wait_for_selector("#not-found")  # 16 hex = 64-bit id padded with zeros: not this trace
    assert "0" * 16 + short in page.inner_text("#not-found")
    assert "Searched" in page.inner_text("#not-found")
