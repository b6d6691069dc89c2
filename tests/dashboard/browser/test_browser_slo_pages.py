"""SLO pages: one page per SLO with links to its service, its bad-event traces and its alert
history; "Silence" on alert rows pre-fills the silence form, which keeps its values on an
error; the SLO and alert pages refresh themselves."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.support import trace_generator as gen
from tests.support.browser_site import served

pytestmark = pytest.mark.browser

MS = 10**6
SLO_FILE = """\
slos:
  - name: payments-latency
    description: Card payments answer within 300 ms
    service: payments
    span_kind: server
    threshold: 300ms
    target: 99
    errors_count_as_bad: true
    alerts:
      - severity: page
        receivers: [hook]
        annotations:
          runbook_url: https://runbooks.example/payments
receivers:
  - name: hook
    url: http://127.0.0.1:1/unused
"""


def payments(ids: gen.Ids) -> list[gen.GenSpan]:
    """A minute of payments calls, a third of them slow: the budget burns."""
    now = gen.now_ns()
    return [
        gen.GenSpan(
            ids.trace(),
            ids.span(),
            "",
            "payments",
            "Charge",
            now - (5 + i) * 10**9,
            (900 if i % 3 == 0 else 50) * MS,
        )  # fmt: skip
        for i in range(60)
    ]


@pytest.fixture(scope="module")
def site(clickhouse_server, tmp_path_factory) -> Iterator[str]:
    slo_file = tmp_path_factory.mktemp("slo") / "slo.yaml"
    slo_file.write_text(SLO_FILE)
    spans = payments(gen.Ids(3))
    with served(clickhouse_server, spans, "browser_slo", slo_files=[str(slo_file)]) as url:
        yield url


def evaluated(page, url: str, path: str) -> None:
    """Open ``path`` once the evaluator has produced the SLO (its first run is at startup)."""
    for _ in range(60):
        page.goto(url + path)
        if page.locator("#slo-payments-latency").count():
            return
        page.wait_for_timeout(1000)
    raise AssertionError("the SLO was never evaluated")


def test_a_page_per_slo_with_its_links(site, page, artifacts):
    evaluated(page, site, "/slos")
    page.click("#slo-payments-latency a.slo-link")
    page.wait_for_url("**/slos/payments-latency")
    assert "Card payments answer within 300 ms" in page.inner_text("#slo-payments-latency")
    assert page.get_attribute("a.slo-service", "href") == "/services/payments"
    assert page.get_attribute("a.runbook", "href") == "https://runbooks.example/payments"
    labels = page.eval_on_selector_all(".burndown .axis-label", "ts => ts.map(t => t.textContent)")
    assert labels[:2] == ["100%", "0%"]
    times = page.eval_on_selector_all(".burndown-times span", "ss => ss.map(s => s.textContent)")
    assert len(times) == 2 and all(t[:2] == "20" for t in times)  # start and end of the window
    height = float(page.get_attribute(".burndown", "height"))
    ys = [
        float(p.split(",")[1]) for p in page.get_attribute(".burndown polyline", "points").split()
    ]
    assert all(0 <= y <= height for y in ys)  # the line stays in its frame
    page.screenshot(path=str(artifacts / "slo-page.png"), full_page=True)
    page.click("a.bad-slow")
    page.wait_for_selector("#results")
    query = parse_qs(urlsplit(page.url).query)
    assert query["service"] == ["payments"] and query["minDuration"] == ["300.0ms"]
    assert page.locator(".trace-item").count() == 20  # the slow third of 60 calls
    response = page.goto(site + "/slos/no-such-slo")
    assert response.status == 404 and "no-such-slo" in page.inner_text("#message")


def test_silence_from_an_alert_row_and_the_form_keeps_values_on_error(site, page):
    evaluated(page, site, "/slos/payments-latency")
    page.click("#slo-payments-latency a.silence-alert")
    page.wait_for_url("**/alerts?**")
    assert page.input_value("form.silence input[name=matchers]") == 'alertname="payments-latency"'
    page.fill("form.silence input[name=matchers]", 'alertname=~"("')  # an invalid regex
    page.fill("form.silence input[name=created_by]", "oncall")
    page.fill("form.silence input[name=comment]", "card provider incident")
    page.click("form.silence button[type=submit]")
    page.wait_for_selector(".notice.error")
    assert page.input_value("form.silence input[name=matchers]") == 'alertname=~"("'
    assert page.input_value("form.silence input[name=created_by]") == "oncall"
    assert page.input_value("form.silence input[name=comment]") == "card provider incident"


def test_slo_and_alert_pages_refresh_themselves(site, page):
    evaluated(page, site, "/slos")
    for path in ("/slos/payments-latency?refresh=2", "/alerts?refresh=2"):
        page.goto(site + path)
        assert page.inner_text("#auto-refresh-seconds") == "2"
        page.evaluate("window.loadedOnce = true")
        page.wait_for_function("() => window.loadedOnce === undefined", timeout=20_000)
        # Unticked, the page stays.
        page.uncheck("#auto-refresh")
        page.evaluate("window.loadedOnce = true")
        page.wait_for_timeout(4000)
        assert page.evaluate("window.loadedOnce") is True
        page.check("#auto-refresh")
    expect(page.locator("#auto-refresh")).to_be_checked()


def test_the_service_map_shows_slo_health(site, page):
    evaluated(page, site, "/slos")
    page.goto(site + "/services/map?lookback=15m")
    page.wait_for_selector("#service-map[data-slos]")
    node = page.locator('#service-map g.node[data-id="payments"]')
    assert node.get_attribute("data-slo") == "breached"  # a third of the calls are too slow
    assert "payments-latency" in node.locator("title").last.text_content()
