"""Service page charts: legends, the SLO threshold line, the partial last interval marked,
loading, empty and error states, latency points that open the calls near that latency,
hover and keyboard tooltips, and drag-to-zoom with a reset."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import trace_generator as gen
from tests.support.browser_site import served

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


def band_of(link: str) -> tuple[float, float | None]:
    """The (min, max) ms a latency point's search asks for (max None: the tail)."""
    q = parse_qs(urlsplit(link).query)
    top = q.get("maxDuration", [None])[0]
    return float(q["minDuration"][0][:-2]), (float(top[:-2]) if top else None)


def opened_traces(page, link: str, site: str) -> dict[str, float]:
    """Trace id -> duration (ms) of the results the search page lists for ``link``."""
    page.goto(site + link)
    page.wait_for_selector("#results li, #results .notice, .notice", state="attached")
    return page.eval_on_selector_all(
        ".trace-item",
        "items => Object.fromEntries(items.map(i => [i.querySelector('a').getAttribute('href'),"
        " Number(i.querySelector('.dur').dataset.durationNs) / 1e6]))",
    )


def test_latency_points_open_the_calls_near_that_latency(site, page):
    """Exemplars: p50 and p99 of one step open disjoint calls, each near its own value."""
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    t = (
        page.locator("#chart-latency circle[data-series='p99']:not(.partial)")
        .nth(2)
        .get_attribute("data-t")
    )
    links, values = {}, {}
    for series in ("p50", "p99"):
        point = page.locator(f"#chart-latency circle[data-series='{series}'][data-t='{t}']")
        links[series] = point.locator("xpath=..").get_attribute("href")
        values[series] = float(
            page.evaluate(
                "([t, s]) => fetch(`/api/v1/latency?service=payments&lookback=15m"
                "&quantiles=p50,p90,p95,p99`).then(r => r.json())"
                ".then(d => d.points.find(p => String(p.t) === t).quantiles[s])",
                [t, series],
            )
        )
    (lo50, hi50), (lo99, hi99) = band_of(links["p50"]), band_of(links["p99"])
    assert lo50 <= values["p50"] <= hi50 < values["p99"]
    assert hi50 <= lo99 <= values["p99"] and hi99 is None
    assert (
        parse_qs(urlsplit(links["p50"]).query)["start"]
        == parse_qs(urlsplit(links["p99"]).query)["start"]
    )
    near50 = opened_traces(page, links["p50"], site)
    near99 = opened_traces(page, links["p99"], site)
    assert near50 and near99
    assert not set(near50) & set(near99)
    assert all(lo50 - 1 <= d <= hi50 + 1 for d in near50.values())
    assert all(d >= lo99 - 1 for d in near99.values())


def test_tooltip_shows_each_series_at_the_hovered_time(site, page):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    box = page.locator("#chart-latency").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator("#chart-latency ~ .chart-tip")
    tip.wait_for()
    rows = tip.locator(".tip-row").all_inner_texts()
    assert [r.split()[0] for r in rows] == ["p50", "p95", "p99"]
    assert all(r.endswith(" ms") for r in rows)
    assert "calls" in tip.locator(".tip-time").inner_text()
    assert page.locator("#chart-latency line.crosshair").count() == 1
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] + 200)
    tip.wait_for(state="detached")
    # Keyboard: a focused chart reads the steps with the arrow keys.
    page.focus("#chart-rate")
    last = page.inner_text("#chart-rate ~ .chart-tip .tip-time")
    page.keyboard.press("ArrowLeft")
    before = page.inner_text("#chart-rate ~ .chart-tip .tip-time")
    assert before != last and page.inner_text("#chart-rate ~ .chart-tip .tip-row").startswith(
        "rate "
    )


def test_drag_zooms_the_page_window_and_reset_restores_it(site, page, artifacts):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    assert not page.is_visible("#zoom-reset")
    start, end = (int(page.get_attribute("#charts", a)) for a in ("data-start", "data-end"))
    box = page.locator("#chart-latency").bounding_box()
    y = box["y"] + box["height"] * 0.4
    page.mouse.move(box["x"] + box["width"] * 0.55, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=5)
    assert page.locator("#chart-latency .zoom-sel").count() == 1
    page.screenshot(path=str(artifacts / "service-chart-zoom.png"))
    page.mouse.up()
    page.wait_for_url("**was=**")
    page.wait_for_selector("#charts[data-loaded='1']")
    z0, z1 = (int(page.get_attribute("#charts", a)) for a in ("data-start", "data-end"))
    assert start < z0 < z1 < end and z1 - z0 < (end - start) / 2
    query = parse_qs(urlsplit(page.url).query)
    assert query["lookback"] == ["custom"] and query["was"] == ["lookback=15m"]
    assert page.is_visible(".range-absolute")  # the form shows the zoomed range
    page.click("#zoom-reset")
    page.wait_for_url("**/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    assert not page.is_visible("#zoom-reset")


def test_keyboard_zooms_and_the_operation_is_kept(site, page):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    page.select_option("#op-select", "Charge")
    page.wait_for_selector("#charts[data-loaded='1']")
    start, end = (int(page.get_attribute("#charts", a)) for a in ("data-start", "data-end"))
    page.focus("#chart-rate")
    for _ in range(4):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("+")
    page.wait_for_url("**was=**")
    page.wait_for_selector("#charts[data-loaded='1']")
    z0, z1 = (int(page.get_attribute("#charts", a)) for a in ("data-start", "data-end"))
    # half the window about the step under the cursor, never past now (the page loaded at end)
    assert start <= z0 < z1 <= time.time() + 1 and abs((z1 - z0) - (end - start) / 2) <= 120
    assert parse_qs(urlsplit(page.url).query)["operation"] == ["Charge"]
    assert page.input_value("#op-select") == "Charge"
    page.focus("#chart-rate")
    page.keyboard.press("-")
    page.wait_for_function(f"Number(document.getElementById('charts').dataset.start) < {z0}")
    page.wait_for_selector("#charts[data-loaded='1']")
    assert parse_qs(urlsplit(page.url).query)["was"] == ["lookback=15m"]


def test_click_on_a_point_still_opens_its_traces(site, page):
    page.goto(f"{site}/services/payments?lookback=15m")
    page.wait_for_selector("#charts[data-loaded='1']")
    page.locator("#chart-errors a.point-link").first.click()
    page.wait_for_url("**/search?**")
    assert parse_qs(urlsplit(page.url).query)["errors"] == ["1"]


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
