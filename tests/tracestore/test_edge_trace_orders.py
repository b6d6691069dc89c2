"""An edge's calls in each order the edge page offers, on both stores: the slowest and the
failed calls of the whole range, not only among the latest."""

from __future__ import annotations

import pytest

from tests.support import trace_generator as gen
from tracestore import analytics_queries as aq

MS = 10**6


def calls(n: int) -> list[gen.GenSpan]:
    """``n`` calls from web to api, one a second; the oldest are the slowest, every
    seventh fails."""
    ids, first = gen.Ids(11), gen.now_ns() - (n + 60) * 10**9
    out = []
    for i in range(n):
        trace, start = ids.trace(), first + i * 10**9
        root = gen.GenSpan(trace, ids.span(), "", "web", "GET /", start, (n - i + 5) * MS)
        client = gen.GenSpan(trace, ids.span(), root.span_id, "web", "GET api", start + MS,
                             (n - i) * MS, kind=gen.KIND_CLIENT,
                             status_code=2 if i % 7 == 0 else 0)  # fmt: skip
        server = gen.GenSpan(trace, ids.span(), client.span_id, "api", "GET /", start + MS,
                             (n - i - 1) * MS + MS // 2)  # fmt: skip
        out += [root, client, server]
    return out


def test_edge_calls_in_each_order(store):
    gen.insert(store, calls(30))
    now_s = gen.now_ns() // 10**9

    def listed(order: str) -> list[dict]:
        return aq.edge_traces(store, "web", "api", "service", now_s - 3600, now_s + 60, 5, order)

    latest = listed("latest")
    assert [c["duration_ms"] for c in latest] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [c["start_ns"] for c in latest] == sorted((c["start_ns"] for c in latest), reverse=True)
    assert [c["duration_ms"] for c in listed("slowest")] == [30.0, 29.0, 28.0, 27.0, 26.0]
    failed = listed("errors")
    assert [c["error"] for c in failed] == [True] * 5  # 0, 7, 14, 21, 28: five of thirty
    assert [c["duration_ms"] for c in failed] == [2.0, 9.0, 16.0, 23.0, 30.0]  # latest first
    with pytest.raises(ValueError, match="order must be one of latest, slowest, errors"):
        listed("fastest")
