"""A 100k-span trace: the view opens it, scrolls to its last span and finds a span by id
(virtualized: only the rows in view are in the DOM), loads that span's attributes on
demand, and zooms it from the minimap and the flame graph. Timings are in
bench/trace_view.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import big_trace_view as big
from tests.support.browser_site import chromium, served, strict_page

pytestmark = pytest.mark.browser
_WINDOW = ("data-view-start-ns", "data-view-end-ns")


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, list]]:
    spans = big.big_trace()
    with served(clickhouse_server, spans, "browser_100k", max_trace_spans=big.SPANS) as url:
        yield url, spans


def test_open_scroll_and_find_in_a_100k_span_trace(site):
    url, spans = site
    with chromium() as browser, strict_page(browser) as page:
        page.set_default_timeout(120_000)
        big.open_trace(page, url, spans[0].trace_id)
        assert page.get_attribute("#trace-app", "data-loaded") == str(big.SPANS)
        assert page.locator("#left-out").count() == 0
        big.scroll_to_end(page, big.SPANS)
        assert page.locator("#rows .row").count() < 200
        target = spans[len(spans) // 2]
        big.find_span(page, target)
        assert page.inner_text("#find-count") == "1 of 1"
        assert target.span_id in page.inner_text("#span-overview")
        assert str(len(spans) // 2) in page.inner_text("#span-attributes")  # fetched per span
        assert page.get_attribute("#minimap", "data-rows") == str(big.SPANS)

        page.focus("#minimap")  # zoom in twice: a quarter of the trace
        page.keyboard.press("+")
        page.keyboard.press("+")
        start, end = (int(page.get_attribute("#trace-app", a)) for a in _WINDOW)
        assert end - start < (spans[0].duration_ns // 4) * 1.01

        page.click('.tab[data-tab="flame"]')
        page.wait_for_function(
            "() => Number(document.getElementById('flame-canvas').dataset.drawn) > 0"
        )
        page.click("#zoom-reset")
        assert page.get_attribute("#trace-app", "data-view-start-ns") == "0"
