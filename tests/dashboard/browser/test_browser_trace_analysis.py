"""The trace view's analysis in the browser (trace_analysis.js) gives the answers the
server's (dashboard/trace_analysis.py, in the full trace API) gives: tree order, depth,
children, orphans, self time, critical path, clock skew and statistics, on traces with
missing parents, parent cycles, several roots, clock skew, ties and a wide fan-out."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.support import trace_generator as gen
from tests.support.browser_site import served

pytestmark = pytest.mark.browser


def traces() -> list[list[gen.GenSpan]]:
    rng, ids, now = random.Random(23), gen.Ids(23), gen.now_ns()
    out = [
        gen.missing_parent(ids, now - 10**10),
        gen.clock_skew(ids, now - 10**10),
        gen.wide(ids, 40, now - 10**10),
        gen.big(ids, 3000, now - 10**10),
    ]
    for k in range(12):
        t = gen.random_trace(rng, ids, now - (20 + k) * 10**9, size=rng.randint(2, 40))
        if k % 4 == 1 and len(t) > 4:  # a parent cycle
            t[2].parent_span_id, t[3].parent_span_id = t[3].span_id, t[2].span_id
        if k % 4 == 2:  # a second root and a span that is its own parent
            t[-1].parent_span_id = ""
            t[1].parent_span_id = t[1].span_id
        if k % 4 == 3:  # siblings that start together (ties broken by span id)
            for s in t[1:]:
                s.start_ns = t[0].start_ns
        if k % 3 == 0:
            t[-1].status_code = 2
        out.append(t)
    return out


@pytest.fixture(scope="module")
def site(clickhouse_server) -> Iterator[tuple[str, list[list[gen.GenSpan]]]]:
    data = traces()
    with served(clickhouse_server, [s for t in data for s in t], "browser_analysis") as url:
        yield url, data


ANALYZE = """async (traceId) => {
  const view = await (await fetch(`/api/v1/traces/${traceId}/view`)).json();
  const a = window.sidetraceTrace.analyze(view);
  const c = a.col;
  return {spans: c.spanId.map((id, k) => ({spanId: id, depth: c.depth[k],
      childCount: c.childCount[k], selfNs: c.selfNs[k], orphan: (c.flags[k] & 1) === 1,
      critical: (c.flags[k] & 2) === 2,
      skew: a.skew[k] || [0, 0]})),
    stats: a.stats, orphans: a.orphans, skewedSpans: a.skewedSpans, errors: a.errors,
    services: a.services};
}"""


def test_browser_analysis_matches_the_server(site, page):
    url, data = site
    page.goto(f"{url}/trace/{data[0][0].trace_id}")
    page.wait_for_selector("#trace-app[data-loaded]")
    seen = {"orphans": 0, "skewedSpans": 0, "errors": 0, "not critical": 0}
    for spans in data:
        full = page.request.get(f"{url}/api/v1/traces/{spans[0].trace_id}").json()
        got = page.evaluate(ANALYZE, spans[0].trace_id)
        expected = [
            {
                "spanId": s["spanId"],
                "depth": s["depth"],
                "childCount": s["childCount"],
                "selfNs": s["selfNs"],
                "orphan": s["orphan"],
                "critical": s["critical"],
                "skew": [
                    s["clockSkew"]["startsBeforeParentNs"],
                    s["clockSkew"]["endsAfterParentNs"],
                ],
            }
            for s in full["spans"]
        ]
        assert got["spans"] == expected, spans[0].trace_id
        assert got["stats"] == full["stats"]
        for key in ("orphans", "skewedSpans", "errors", "services"):
            assert got[key] == full[key], key
        for key in ("orphans", "skewedSpans", "errors"):
            seen[key] += got[key]
        seen["not critical"] += sum(not s["critical"] for s in got["spans"])
    assert all(seen.values()), seen  # the traces exercise every case
