"""Service page charts: legends, the SLO threshold line, the partial last interval marked,
loading, empty and error states, and latency points that open the calls at that latency."""

from __future__ import annotations

import random
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import trace_generator as gen
from tests.browser_site import served

pytestmark = pytest.mark.browser

MS = 10**6
SLO_FILE = """\
slos:
  - name: payments-fast
    service: payments
    span_kind: server
    threshold: 250ms
    target: 99
    alerts: [{severity: page, receivers: [hook]}]
receivers: [{name: hook, url: "http://127.0.0.1:1/unused"}]
"""


def payments() -> list[gen.GenSpan]:
    """Six minutes of payments calls, 10 to 400 ms."""
    rng, ids, now = random.Random(4), gen.Ids(4), gen.now_ns()
    return [
        gen.GenSpan(
            ids.trace(),
            ids.span(),
            "",
            "payments",
            "Charge",
            now - rng.randint(1, 360) * 10**9,
            rng.randint(10, 400) * MS,
        )  # fmt: skip
        for _ in range(600)
    ]


@pytest.fixture(scope="module")
def site(clickhouse_server, tmp_path_factory) -> Iterator[str]:
    slo_file = tmp_path_factory.mktemp("slo") / "slo.yaml"
    slo_file.write_text(SLO_FILE)
    with served(clickhouse_server, payments(), "browser_charts", slo_files=[str(slo_file)]) as url:
        yield url


def test_legends_threshold_and_partial_interval(site, page, artifacts):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    assert not page.is_visible("#charts-status")
    legend = page.inner_text("#chart-latency + .chart-legend")
    for name in ("p50", "p95", "p99", "SLO payments-fast: 250 ms", "last interval still filling"):
        assert name in legend
    assert page.locator("#chart-latency .threshold line").count() == 1
    assert page.locator("#chart-rate .partial-band").count() == 1
    assert page.locator("#chart-rate circle.pt.partial").count() == 1
    assert "range average" in page.inner_text("#summary")
    page.screenshot(path=str(artifacts / "service-charts.png"), full_page=True)


def test_latency_points_open_the_calls_at_that_latency(site, page):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    found = {}
    for series in ("p50", "p99"):
        point = page.locator(f"#chart-latency circle[data-series='{series}']:not(.partial)").first
        link = point.locator("xpath=..").get_attribute("href")
        found[series] = parse_qs(urlsplit(link).query)
    p50, p99 = (float(found[s]["minDuration"][0][:-2]) for s in ("p50", "p99"))
    assert 0 < p50 < p99
    assert found["p99"]["start"] == found["p50"]["start"]
    assert found["p99"]["sort"] == ["longest"]
    page.locator("#chart-latency circle[data-series='p99']:not(.partial)").first.click()
    page.wait_for_selector("#results li")
    durations = page.eval_on_selector_all(
        ".trace-item .dur", "ds => ds.map(d => Number(d.dataset.durationNs))"
    )
    assert durations and all(d >= p99 * MS - MS for d in durations)


def test_no_data_and_api_failure_say_so(site, page):
    page.goto(f"{site}/services/no-such-service?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']", state="attached")
    assert "No spans from no-such-service" in page.inner_text("#charts-status")
    assert not page.is_visible("#chart-latency")

    page.route("**/api/v1/latency?**", lambda route: route.fulfill(
        status=503, content_type="application/json", body='{"error": "storage unavailable"}'
    ))  # fmt: skip
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='error']", state="attached")
    assert page.inner_text("#charts-status") == "Could not load the charts: storage unavailable"
