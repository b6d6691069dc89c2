"""A 100k-span trace in the trace view: open it, scroll to its last span, find a span.

Shared by the browser test (behaviour) and ``bench/trace_view.py`` (timings), so both drive
the page the same way. Each step returns the milliseconds it took in the page.
"""

from __future__ import annotations

from typing import Any

from tests.support import trace_generator as gen

SPANS = 100_000


def big_trace(n: int = SPANS) -> list[gen.GenSpan]:
    return gen.big(gen.Ids(100), n, start_ns=gen.now_ns() - 300 * 10**9)


def open_trace(page: Any, url: str, trace_id: str) -> float:
    """Navigation start to the waterfall drawn (data-loaded set), per the page's own clock."""
    page.goto(f"{url}/trace/{trace_id}", wait_until="commit")
    page.wait_for_selector("#trace-app[data-loaded]", timeout=120_000)
    return page.evaluate(
        "() => Number(document.getElementById('trace-app').dataset.loadedAt)"
        " - performance.timeOrigin"
    )


def scroll_to_end(page: Any, n: int) -> float:
    """Scroll the waterfall to its end; the last of ``n`` rows must be rendered there."""
    started = page.evaluate(
        "() => { const v = document.getElementById('viewport');"
        " v.scrollTop = v.scrollHeight; return performance.now(); }"
    )
    page.wait_for_selector(f'#rows .row[data-index="{n - 1}"]')  # tree order: the last row
    return page.evaluate("() => performance.now()") - started


def find_span(page: Any, span: gen.GenSpan) -> float:
    """Type a span id into the find box; it must be selected and shown."""
    started = page.evaluate("() => performance.now()")
    page.fill("#find", span.span_id)
    page.press("#find", "Enter")
    page.wait_for_selector(f'#rows .row.selected[data-span-id="{span.span_id}"]')
    return page.evaluate("() => performance.now()") - started
