"""The evaluator's cache on real ClickHouse: it starts from the rollups, and late spans
count at the next evaluation without a reload."""

from __future__ import annotations

import time

from test_slo_evaluator import MS, insert_spans

from dashboard.slo_cache import RollupCache
from tracestore.slo_math import bucket_cut
from tracestore.slo_queries import window_counts
from tracestore.store import Store

CUTS = {"payments": [bucket_cut(300 * MS)]}
WINDOWS = [300.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0]


def spans_over(now: float, hours: float, count: int, name: str = "GET /pay") -> list:
    step = hours * 3600 / count
    return [(now - 1 - i * step, (80, 900)[i % 2], 0, name) for i in range(count)]


def test_first_evaluation_reads_rollups_not_raw_spans(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 600))
    expected = window_counts(store, CUTS, WINDOWS, now)
    store.execute("TRUNCATE TABLE spans")  # the rollups keep what the views wrote
    assert window_counts(store, CUTS, WINDOWS, now) == expected  # minute rollup, fresh read
    got = RollupCache().window_counts(store, CUTS, WINDOWS, now)
    assert got == expected
    assert got[86400.0][("payments", "GET /pay", 2)].calls > 400


def test_late_spans_count_at_the_next_evaluation(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 300))
    cache = RollupCache()
    assert cache.window_counts(store, CUTS, WINDOWS, now) == window_counts(
        store, CUTS, WINDOWS, now
    )
    # Late: 20 minutes, 3 hours and 20 hours old (the collector accepts a day back).
    late = [
        (now - age, 900, 0, "GET /pay") for age in (1200, 3 * 3600, 20 * 3600) for _ in range(7)
    ]
    insert_spans(store, late)
    later = now + 30
    got = cache.window_counts(store, CUTS, WINDOWS, later)
    assert got == window_counts(store, CUTS, WINDOWS, later)
