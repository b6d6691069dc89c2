"""Accessibility: axe-core (vendored, tests/vendor/axe-core) over every dashboard page —
WCAG 2 A and AA rules, colour contrast included — and keyboard reach of the main controls."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.support import ROOT
from tests.support import trace_generator as gen
from tests.support.browser_site import served, strict_page

pytestmark = pytest.mark.browser

AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


class Data:
    def __init__(self) -> None:
        rng, ids, now = random.Random(12), gen.Ids(12), gen.now_ns()
        self.traces = [
            gen.random_trace(rng, ids, now - (20 + 30 * i) * 10**9, size=10) for i in range(6)
        ]

    def spans(self) -> list[gen.GenSpan]:
        return [s for t in self.traces for s in t]


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, Data]]:
    data = Data()
    with served(clickhouse_server, data.spans(), "browser_a11y") as url:
        yield url, data


def violations(page) -> list[str]:
    """axe-core's WCAG A/AA violations on the page, one line per rule and element."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """rules => axe.run(document, {runOnly: {type: 'tag', values: rules}}).then(
            r => r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' '))))""",
        RULES,
    )
    return found


def test_every_page_passes_axe(site, browser):
    url, data = site
    trace = data.traces[0]
    paths = [
        "/search?lookback=1h",
        "/search?lookback=custom",
        f"/trace/{trace[0].trace_id}?span={trace[1].span_id}",
        "/services",
        f"/services/{trace[0].service}",
        "/services/map",
        "/slos",
        "/alerts",
        "/no/such/page",
    ]
    # The policy forbids the injected script; the policy has its own test.
    with strict_page(browser, bypass_csp=True) as page:
        failures = {}
        for path in paths:
            page.goto(url + path, wait_until="networkidle")
            if path.startswith("/trace/"):
                page.wait_for_selector("#trace-app[data-loaded]")
            if path.startswith("/services/") and path != "/services/map":
                page.wait_for_selector("#charts[data-loaded]")
            found = violations(page)
            if found:
                failures[path] = found
        assert failures == {}, "\n".join(f"{p}: {v}" for p, vs in failures.items() for v in vs)


def test_search_and_trace_controls_are_reachable_by_keyboard(site, browser):
    url, data = site
    trace = data.traces[0]
    with strict_page(browser) as page:
        page.goto(url + "/search?lookback=1h")
        reached = set()
        for _ in range(60):
            page.keyboard.press("Tab")
            reached.add(
                page.evaluate(
                    "document.activeElement.id || document.activeElement.getAttribute('class')"
                )
            )
        assert {
            "trace-id-box",
            "tz-toggle",
            "f-service",
            "f-attrs",
            "f-submit",
            "f-sort",
        } <= reached
        page.goto(f"{url}/trace/{trace[0].trace_id}")
        page.wait_for_selector("#trace-app[data-loaded]")
        page.focus("#find")
        page.keyboard.type(trace[2].service)
        page.keyboard.press("Enter")
        page.wait_for_selector("#rows .row.selected")
        page.focus("#viewport")
        before = page.get_attribute("#rows .row.selected", "data-span-id")
        page.keyboard.press("ArrowDown")
        assert page.get_attribute("#rows .row.selected", "data-span-id") != before
