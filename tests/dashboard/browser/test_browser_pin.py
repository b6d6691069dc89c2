"""The trace page's "Keep this trace" button in headless Chromium (strict CSP, real fetch)."""

from __future__ import annotations

import time
import uuid

import pytest

from collector import tiering
from tests.support import trace_generator as gen
from tests.support.browser import launch_chromium
from tests.support.dashboard_client import live_dashboard
from tracestore import tier_queries
from tracestore.migrate import migrate
from tracestore.store import open_store

pytestmark = pytest.mark.browser


def test_keep_this_trace_button_pins(clickhouse_server):
    from playwright.sync_api import sync_playwright

    store = open_store(clickhouse_server.url(database=f"pin_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    spans = gen.deep(gen.Ids(77), 3)
    spans[1].status_code = 2
    gen.insert(store, spans)
    trace_id = spans[0].trace_id
    errors: list[str] = []
    with live_dashboard(store) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.goto(f"{url}/trace/{trace_id}")
            button = page.locator("#pin-trace")
            assert button.inner_text() == "Keep this trace" and button.is_enabled()
            button.click()
            page.wait_for_selector('#pin-trace:has-text("Kept (pinned)")')
            assert button.is_disabled()
            assert tier_queries.is_pinned(store, trace_id)
            page.reload()
            page.wait_for_selector('#pin-trace:has-text("Kept (pinned)")')  # survives a reload
            config = tiering.TieringConfig(keep_baseline=0.0, buckets=1)
            tiering.run_tiering(store, config, now_s=time.time() + 3600)
            page.reload()
            page.wait_for_selector('#tier-state:has-text("kept: error, pinned")')
        finally:
            browser.close()
    assert errors == []
