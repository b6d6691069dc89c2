"""Burn-rate and budget math against hand-computed tables (SRE workbook numbers)."""

from __future__ import annotations

import random

import pytest

from tracestore.latency_buckets import bucket_of, edge_ns, fraction_at_or_under
from tracestore.slo_math import (
    bucket_cut,
    budget_remaining,
    burn_rate,
    burndown,
    cumulate,
    effective_threshold_ns,
    quantile_above,
    sli,
    time_to_exhaustion,
    windows_exceed,
)

DAY = 86400.0


@pytest.mark.parametrize(
    ("good", "total", "target", "expected"),
    [
        (990, 1000, 0.99, 1.0),  # exactly the allowed 1% bad
        (900, 1000, 0.99, 10.0),
        (856, 1000, 0.99, 14.4),  # the page threshold for a 99% SLO
        (940, 1000, 0.99, 6.0),
        (995, 1000, 0.999, 5.0),
        (1000, 1000, 0.999, 0.0),
        (0, 1000, 0.99, 100.0),  # everything slow
        (0, 0, 0.99, 0.0),  # no traffic never burns
    ],
)
def test_burn_rate_table(good: int, total: int, target: float, expected: float) -> None:
    assert burn_rate(good, total, target) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("good", "total", "target", "expected"),
    [
        (995, 1000, 0.99, 0.5),
        (990, 1000, 0.99, 0.0),
        (980, 1000, 0.99, -1.0),
        (1000, 1000, 0.995, 1.0),
        (0, 0, 0.99, 1.0),
        (99_750, 100_000, 0.995, 0.5),
    ],
)
def test_budget_remaining_table(good: int, total: int, target: float, expected: float) -> None:
    assert budget_remaining(good, total, target) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("remaining", "rate", "window", "expected"),
    [
        (1.0, 1.0, 30 * DAY, 30 * DAY),  # burn rate 1 spends the budget in one window
        (1.0, 14.4, 30 * DAY, 50 * 3600.0),  # 14.4x: 2% per hour, gone in 50 h
        (0.5, 14.4, 30 * DAY, 25 * 3600.0),
        (1.0, 6.0, 30 * DAY, 5 * DAY),  # 6x: 5% in 6 h, gone in 5 days
        (0.25, 3.0, 30 * DAY, 2.5 * DAY),
        (0.0, 10.0, 30 * DAY, 0.0),
        (-0.3, 10.0, 30 * DAY, 0.0),
        (0.7, 0.0, 30 * DAY, None),
    ],
)
def test_time_to_exhaustion_table(
    remaining: float, rate: float, window: float, expected: float | None
) -> None:
    result = time_to_exhaustion(remaining, rate, window)
    assert result == (None if expected is None else pytest.approx(expected))


def test_workbook_budget_consumption() -> None:
    """SRE workbook table: 14.4x over 1 h, 6x over 6 h, 3x over 1 d, 1x over 3 d of 30 d."""
    for factor, window, spent in ((14.4, 3600, 0.02), (6, 21600, 0.05), (3, DAY, 0.10)):
        assert factor * window / (30 * DAY) == pytest.approx(spent)
    one_x_over_3d = 1 * 3 * DAY / (30 * DAY)
    assert one_x_over_3d == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("factor", "long_rate", "short_rate", "fires"),
    [
        (14.4, 20.0, 20.0, True),
        (14.4, 20.0, 10.0, False),  # short window recovered: stop paging
        (14.4, 10.0, 20.0, False),  # a blip: long window not there yet
        (14.4, 14.4, 20.0, False),  # must exceed, not equal
        (1.0, 1.01, 1.5, True),
    ],
)
def test_both_windows_must_exceed(
    factor: float, long_rate: float, short_rate: float, fires: bool
) -> None:
    assert windows_exceed(factor, long_rate, short_rate) is fires


@pytest.mark.parametrize(
    ("good", "total", "quantile", "above"),
    [
        (990, 1000, 0.99, True),  # call #990 (0-based) is the first slow one
        (991, 1000, 0.99, False),
        (989, 1000, 0.99, True),
        (50, 100, 0.5, True),
        (51, 100, 0.5, False),
        (0, 1, 0.99, True),
        (1, 1, 0.99, False),
        (0, 0, 0.99, False),  # no calls, no alert
    ],
)
def test_quantile_above_table(good: int, total: int, quantile: float, above: bool) -> None:
    assert quantile_above(good, total, quantile) is above


def test_quantile_above_matches_sorted_durations() -> None:
    rng = random.Random(3)
    for _ in range(200):
        durations = sorted(rng.randint(1, 10**9) for _ in range(rng.randint(1, 300)))
        threshold = float(rng.randint(1, 10**9))
        q = rng.choice((0.5, 0.9, 0.99))
        good = sum(1 for d in durations if d <= threshold)
        rank = min(int(q * len(durations)), len(durations) - 1)
        assert quantile_above(good, len(durations), q) is (durations[rank] > threshold)


def test_bucket_cut_agrees_with_fraction_at_or_under() -> None:
    rng = random.Random(5)
    for _ in range(500):
        threshold = rng.uniform(1e3, 1e10)
        cut = bucket_cut(threshold)
        buckets = {k: rng.randint(1, 5) for k in range(cut - 4, cut + 4)}
        good, total = fraction_at_or_under(buckets, threshold)
        assert good == sum(c for k, c in buckets.items() if k < cut)
        assert total == sum(buckets.values())


def test_threshold_on_a_bucket_edge_is_exact() -> None:
    edge = edge_ns(1802)
    assert effective_threshold_ns(edge) == edge
    # every duration strictly below the edge is good, the edge bucket itself is not
    assert bucket_of(int(edge) - 1) < bucket_cut(edge)
    assert bucket_of(int(edge) + 1) >= bucket_cut(edge)


def test_threshold_between_edges_rounds_down_at_most_one_bucket() -> None:
    effective = effective_threshold_ns(300e6)
    assert effective <= 300e6
    assert effective == pytest.approx(299_140_913.4, rel=1e-9)
    assert 300e6 / effective < 2 ** (1 / 64)  # within one bucket (1.09%)


def test_sli() -> None:
    assert sli(995, 1000) == 0.995
    assert sli(0, 0) == 1.0


def test_burndown_table() -> None:
    steps = [(1.0, 99, 100), (2.0, 98, 100), (3.0, 100, 100)]
    # budget: 1% of 300 calls = 3 bad calls; spent 1, then 3, then 3
    assert burndown(steps, 0.99) == [
        (1.0, pytest.approx(2 / 3)),
        (2.0, pytest.approx(0.0)),
        (3.0, pytest.approx(0.0)),
    ]
    assert burndown([(1.0, 0, 0)], 0.99) == [(1.0, 1.0)]


def test_cumulate() -> None:
    assert cumulate([[1, 2], [3, 4], [0, 1]]) == [[1, 2], [4, 6], [4, 7]]
    assert cumulate([]) == []
