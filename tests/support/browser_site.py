"""A dashboard over generated traces and pages in headless Chromium that fail on any JS error.

The SRE-facing browser tests share this: a real ClickHouse database per module, the app
served by uvicorn, and pages that record uncaught errors and Content-Security-Policy
violations so a test fails on either.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import trace_generator as gen
from tests.support.browser import launch_chromium
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

TIMEOUT_MS = 30_000


@contextmanager
def served(
    clickhouse_server: Any, spans: Iterable[gen.GenSpan], prefix: str, **settings: Any
) -> Iterator[str]:
    """The dashboard's URL over a fresh database holding ``spans`` (``settings`` as in
    DashboardContext)."""
    store = open_store(clickhouse_server.url(database=f"{prefix}_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    gen.insert(store, spans)
    try:
        with live_dashboard(store, **settings) as url:
            yield url
    finally:
        store.close()


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def strict_page(browser: Any, **context_options: Any) -> Iterator[Any]:
    """A page that fails the test on uncaught errors or CSP violations once it closes."""
    options = {"viewport": {"width": 1440, "height": 900}, **context_options}
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems
