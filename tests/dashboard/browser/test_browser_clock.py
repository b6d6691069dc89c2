"""One clock: with the browser in Asia/Kolkata, times are typed and shown in the zone the
UTC/Local toggle names, From/To appear only for an absolute range, pre-filled, and a chart
point opens search with readable times."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.support import trace_generator as gen
from tests.support.browser_site import served, strict_page

pytestmark = pytest.mark.browser

KOLKATA = timezone(timedelta(hours=5, minutes=30))  # no daylight saving time
SHOWN = "%Y-%m-%d %H:%M:%S"


def shown(ns: int, zone: timezone) -> str:
    return datetime.fromtimestamp(ns / 1e9, zone).strftime(SHOWN)


class Data:
    def __init__(self) -> None:
        rng, ids = random.Random(23), gen.Ids(23)
        now = gen.now_ns()
        self.target = gen.random_trace(rng, ids, now - 20 * 60 * 10**9, size=5)
        self.others = [
            span
            for minutes in (5, 9, 14, 31, 40)
            for span in gen.random_trace(rng, ids, now - minutes * 60 * 10**9, size=4)
        ]


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    data = Data()
    with served(clickhouse_server, data.target + data.others, "browser_clock") as url:
        yield url, data


@pytest.fixture
def page(browser):
    with strict_page(browser, timezone_id="Asia/Kolkata") as pg:
        yield pg


def test_from_and_to_show_only_for_an_absolute_range_prefilled_in_local_time(site, page):
    url, _ = site
    page.goto(f"{url}/search?lookback=1h")
    page.wait_for_selector("#results")
    assert not page.is_visible("#f-start") and not page.is_visible("#f-end")
    assert "UTC" not in page.inner_text(".range-line")
    page.select_option("#f-lookback", "custom")
    assert page.is_visible("#f-start") and page.is_visible("#f-end")
    start = datetime.strptime(page.input_value("#f-start"), SHOWN).replace(tzinfo=KOLKATA)
    end = datetime.strptime(page.input_value("#f-end"), SHOWN).replace(tzinfo=KOLKATA)
    assert abs(end.timestamp() - time.time()) < 300
    assert end - start == timedelta(hours=1)
    assert page.inner_text(".range-line") == f"{start.strftime(SHOWN)} to {end.strftime(SHOWN)}"
    assert "local time" in page.inner_text("#absolute-range")


def test_a_time_typed_as_shown_is_read_in_the_toggled_zone(site, page):
    url, data = site
    root = data.target[0]
    page.goto(f"{url}/search?lookback=1h")
    listed = page.locator(f'.trace-item:has(a[href="/trace/{root.trace_id}"]) .start')
    assert listed.inner_text().startswith(shown(root.start_ns, KOLKATA))

    # Type a two-minute window around the trace, as the list shows times (Kolkata).
    page.select_option("#f-lookback", "custom")
    page.fill("#f-start", shown(root.start_ns - 60 * 10**9, KOLKATA))
    page.fill("#f-end", shown(root.start_ns + 60 * 10**9, KOLKATA))
    page.click("#f-submit")
    page.wait_for_selector(f'a.trace-link[href="/trace/{root.trace_id}"]')
    assert page.locator(".trace-item").count() == 1
    query = parse_qs(urlsplit(page.url).query)
    assert query["start"] == [
        datetime.fromtimestamp((root.start_ns // 10**9) - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ]
    # The form comes back in absolute mode, showing what was typed.
    assert page.is_visible("#f-start")
    assert page.input_value("#f-start") == shown(root.start_ns - 60 * 10**9, KOLKATA)

    # With the toggle on UTC, the same fields, the list and the range line read UTC,
    # and a time typed now is read as UTC.
    page.click("#tz-toggle")
    assert page.inner_text("#tz-toggle") == "UTC"
    assert page.input_value("#f-start") == shown(root.start_ns - 60 * 10**9, UTC) + " UTC"
    assert page.inner_text(".range-line").count("UTC") == 2
    assert "UTC" in page.inner_text("#absolute-range")
    page.fill("#f-start", shown(root.start_ns - 30 * 10**9, UTC))
    page.fill("#f-end", shown(root.start_ns + 30 * 10**9, UTC))
    page.click("#f-submit")
    page.wait_for_selector(f'a.trace-link[href="/trace/{root.trace_id}"]')
    assert page.locator(".trace-item").count() == 1
    page.click("#tz-toggle")


def test_lookback_mode_ignores_from_and_to(site, page):
    url, data = site
    page.goto(f"{url}/search?lookback=1h")
    page.select_option("#f-lookback", "custom")
    page.fill("#f-start", "2001-01-01 00:00:00")
    page.select_option("#f-lookback", "15m")
    page.click("#f-submit")
    page.wait_for_selector("#results")
    query = parse_qs(urlsplit(page.url).query)
    assert "start" not in query and query["lookback"] == ["15m"]


def test_a_chart_point_opens_search_with_readable_times(site, page):
    url, _ = site
    page.goto(f"{url}/services/frontend?lookback=1h")
    page.wait_for_selector("#charts[data-loaded]")
    page.locator("#chart-rate a.point-link").first.click()
    page.wait_for_selector("#results")
    query = parse_qs(urlsplit(page.url).query)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert iso.match(query["start"][0]) and iso.match(query["end"][0]), query
    assert page.is_visible("#f-start")
    start_ns = int(datetime.fromisoformat(query["start"][0]).timestamp()) * 10**9
    # The page's script writes the field in the toggle's zone after the results render.
    expect(page.locator("#f-start")).to_have_value(shown(start_ns, KOLKATA))
