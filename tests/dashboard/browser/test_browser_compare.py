""" "Why is it slow?" pages in headless Chromium: compare two traces (from search and from the
trace view), the slow-cohort page and the graph before and after a deploy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from collector.edge_rollup import compute_edges
from tests.support import trace_generator as gen
from tests.support.browser import launch_chromium
from tests.support.cohort_traffic import BAD_NODE, traffic
from tests.support.compare_traffic import checkout_calls
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000


class Site:
    def __init__(self, url: str, fast: str, slow: str, deploy_s: int) -> None:
        self.url, self.fast, self.slow, self.deploy_s = url, fast, slow, deploy_s


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[Site]:
    store = open_store(clickhouse_server.url(database=f"browser_cmp_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    now_s = gen.now_ns() // 10**9 // 60 * 60
    spans, slow_ids = traffic((now_s - 300) * 10**9)
    ids = gen.Ids(9)
    deploy_s = now_s - 30 * 60  # before and after: 20 to 40 minutes ago, apart from the rest
    for i in range(30):  # ten minutes of checkout 1.0, then 2.0 which also calls payments
        spans += checkout_calls(ids, (deploy_s - 600 + i * 20) * 10**9, "1.0", with_payments=False)
        spans += checkout_calls(ids, (deploy_s + i * 20) * 10**9, "2.0", with_payments=True)
    gen.insert(store, spans)
    compute_edges(store, deploy_s - 600, now_s)
    with live_dashboard(store) as url:
        yield Site(url, spans[0].trace_id, slow_ids[0], deploy_s)
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
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert errors == [], errors  # script errors and Content-Security-Policy violations


def test_pick_two_search_results_and_compare(site, page, artifacts):
    page.goto(
        f"{site.url}/search?service=frontend&operation=GET+%2Fcheckout&lookback=15m&limit=200"
    )
    button = page.locator("#compare-picked")
    assert button.is_disabled()
    page.check(f'input.pick[value="{site.fast}"]')
    assert button.is_disabled()
    page.check(f'input.pick[value="{site.slow}"]')
    assert button.is_enabled()
    button.click()
    page.wait_for_url(f"**/compare?a={site.fast}&b={site.slow}")
    first = page.locator("#slower li").first
    assert "payments" in first.inner_text() and "Charge" in first.inner_text()
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() == 8
    indent = page.eval_on_selector(
        "#compare-table tbody tr[data-depth='4'] td.op-cell", "td => td.style.paddingLeft"
    )
    assert indent == "64px"  # set by compare.js from data-depth
    page.screenshot(path=str(artifacts / "trace-compare.png"), full_page=True)
    page.check("#only-diff")
    visible = page.locator("#compare-table tbody tr:visible")
    assert visible.count() < 8
    assert "payments Charge" in visible.all_inner_texts()[4]  # the slowed call and its callers
    page.click("#link-b")
    page.wait_for_url(f"**/trace/{site.slow}")


def test_compare_with_from_the_trace_view(site, page):
    page.goto(f"{site.url}/trace/{site.fast}")
    page.wait_for_selector("#trace-app[data-loaded]")
    page.click("#compare-with")
    page.wait_for_url(f"**/compare?a={site.fast}")
    candidates = page.locator("#compare-candidates a.candidate")
    assert candidates.count() == 20
    candidates.first.click()
    page.wait_for_url(f"**/compare?a={site.fast}&b=*")
    assert page.locator("#compare-table tbody tr").count() == 8
    page.click("#swap")
    page.wait_for_url(f"**/compare?a=*&b={site.fast}")


def test_slow_cohort_page(site, page, artifacts):
    page.goto(f"{site.url}/cohort")
    page.fill("#cohort-service", "frontend")
    page.fill("#cohort-operation", "GET /checkout")
    page.fill("#cohort-percentile", "p90")
    page.click("#cohort-submit")
    page.wait_for_selector("#attribution")
    first = page.locator("#attribution tbody tr").first.inner_text()
    assert "payments" in first and "Charge" in first
    assert f"k8s.node.name={BAD_NODE}" in page.locator("#attributes tbody tr").first.inner_text()
    assert "20" in page.inner_text("#cohort-slow") and "180" in page.inner_text("#cohort-rest")
    width = page.eval_on_selector("#attribution .share span", "s => s.style.width")
    assert width.endswith("%") and float(width[:-1]) > 80
    page.screenshot(path=str(artifacts / "slow-cohort.png"), full_page=True)
    page.click("#slow-traces")
    page.wait_for_url("**/search?**")
    assert page.locator("#results .trace-item").count() == 20


def test_graph_before_and_after_a_deploy(site, page, artifacts):
    b_end = site.deploy_s + 600
    page.goto(
        f"{site.url}/graph-diff?a_start={(site.deploy_s - 600) * 1000}&a_end={site.deploy_s * 1000}"
        f"&b_start={site.deploy_s * 1000}&b_end={b_end * 1000}"
    )
    new = page.locator('#diff-edges tr[data-status="appeared"]')
    assert new.count() == 1
    assert new.get_attribute("data-parent") == "checkout"
    assert new.get_attribute("data-child") == "payments"
    assert "1.0 → 2.0" in page.inner_text("#deploys")
    assert page.locator('#diff-nodes tr[data-node="payments"][data-status="appeared"]').count()
    page.screenshot(path=str(artifacts / "graph-diff.png"), full_page=True)
    # the form: B as the last hour, A right before it
    page.fill("#diff-a-start", "")
    page.fill("#diff-a-end", "")
    page.fill("#diff-b-start", "")
    page.fill("#diff-b-end", "")
    page.click("#diff-submit")
    page.wait_for_selector("#diff-summary")


def test_deploy_marker_on_the_service_charts(site, page):
    page.goto(f"{site.url}/services/checkout?lookback=1h")
    page.wait_for_selector("#charts[data-loaded='1']")
    for chart in ("rate", "errors", "latency"):
        marker = page.locator(f'#chart-{chart} g.deploy[data-version="2.0"]')
        assert marker.count() == 1
    title = page.eval_on_selector("#chart-rate g.deploy title", "t => t.textContent")
    assert title.startswith("deploy 1.0 → 2.0")
    page.click("a.why-slow >> nth=0")
    page.wait_for_url("**/cohort?service=checkout**")
    page.wait_for_selector("#cohort-summary")
