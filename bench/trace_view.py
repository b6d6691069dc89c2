"""The trace view on a 100k-span trace in headless Chromium (Debian's package).

Starts a real clickhouse-server, loads one trace of 100,000 spans (a tree, fanout 8),
serves the dashboard with ``max_trace_spans`` raised to fit it, and times, in the page's
own clock: opening the trace (navigation start to the waterfall and minimap drawn),
scrolling to the last row, and finding a span by id. Also times, with an HTTP client, the
columnar outline the view loads (``/view``: load, analysis, JSON) and, once, the full
trace JSON that "Download JSON" serves. Prints ``name=value`` lines,
``trace_100k_open_ms`` last (target: 2,000).

    python bench/trace_view.py [--quick] [--spans N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from tests.support import big_trace_view as big  # noqa: E402
from tests.support.browser_site import chromium, served, strict_page  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402


def timed_get(url: str) -> float:
    t0 = time.perf_counter()
    httpx.get(url, timeout=300).raise_for_status()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k spans, one run")
    parser.add_argument("--spans", type=int, default=big.SPANS)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n, runs = (10_000, 1) if args.quick else (args.spans, args.runs)
    spans = big.big_trace(n)
    trace_id = spans[0].trace_id
    with ClickHouseServer() as server, served(server, spans, "bench_trace_view",
                                               max_trace_spans=n) as url:  # fmt: skip
        api, view = [], []
        for _ in range(runs):
            view.append(timed_get(f"{url}/api/v1/traces/{trace_id}/view"))
        view_bytes = len(httpx.get(f"{url}/api/v1/traces/{trace_id}/view", timeout=300).content)
        api.append(timed_get(f"{url}/api/v1/traces/{trace_id}"))  # the download: once
        opened, scrolled, found = [], [], []
        with chromium() as browser:
            for _ in range(runs):
                with strict_page(browser) as page:
                    page.set_default_timeout(300_000)
                    opened.append(big.open_trace(page, url, trace_id))
                    scrolled.append(big.scroll_to_end(page, n))
                    found.append(big.find_span(page, spans[n // 2]))
    print(f"spans={n}")
    print(f"runs={runs}")
    print(f"trace_full_api_ms={statistics.median(api):.0f}")
    print(f"trace_view_api_ms={statistics.median(view):.0f}")
    print(f"trace_view_api_mb={view_bytes / 1e6:.1f}")
    print(f"trace_scroll_to_end_ms={statistics.median(scrolled):.0f}")
    print(f"trace_find_span_ms={statistics.median(found):.0f}")
    name = "trace_100k_open_ms" if n == big.SPANS else f"trace_{n // 1000}k_open_ms"
    print(f"{name}={statistics.median(opened):.0f}")


if __name__ == "__main__":
    main()
