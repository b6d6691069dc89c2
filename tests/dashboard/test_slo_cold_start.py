"""The evaluator's cache on real ClickHouse: it starts from the rollups, and late spans
count at the next evaluation without a reload."""

from __future__ import annotations

import time

from dashboard.slo_cache import RollupCache
from tests.support.slo_spans import CUTS, WINDOWS, insert_spans, spans_over
from tracestore.slo_queries import window_counts
from tracestore.store import Store


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
