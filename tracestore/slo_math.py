"""Pure SLO arithmetic: thresholds to buckets, SLI, burn rates, budgets, alert conditions.

Good events are calls at or under the latency threshold (and, when errors count
as bad, without error status). Counts come from the fixed log-scale buckets of
``tracestore.latency_buckets``: a call in bucket ``k`` is good when ``k < cut``,
where ``cut`` is the highest bucket edge at or under the threshold. Exact when
the threshold is a bucket edge; otherwise the threshold is rounded down to that
edge (at most 1.09% lower), which errs on the strict side.

Burn rate is the observed bad fraction over the allowed one, ``(1 - SLI) /
(1 - target)``: 1x spends exactly the budget over the SLO window. A window
without calls has SLI 1 and burn rate 0 (no traffic never pages).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from tracestore.latency_buckets import BUCKETS_PER_OCTAVE, edge_ns


def bucket_cut(threshold_ns: float) -> int:
    """Buckets below this index are at or under ``threshold_ns`` (same rule as
    ``latency_buckets.fraction_at_or_under``)."""
    limit = threshold_ns * (1 + 1e-12)
    cut = max(0, math.floor(math.log2(max(threshold_ns, 1.0)) * BUCKETS_PER_OCTAVE) + 1)
    while cut > 0 and edge_ns(cut) > limit:
        cut -= 1
    while edge_ns(cut + 1) <= limit:
        cut += 1
    return cut


def effective_threshold_ns(threshold_ns: float) -> float:
    """The bucket edge the threshold is rounded down to (equal to it on an edge)."""
    return edge_ns(bucket_cut(threshold_ns))


def sli(good: int, total: int) -> float:
    return 1.0 if total <= 0 else good / total


def burn_rate(good: int, total: int, target: float) -> float:
    """How many times faster than allowed the budget is spent over these counts."""
    if total <= 0:
        return 0.0
    return ((total - good) / total) / (1.0 - target)


def budget_remaining(good: int, total: int, target: float) -> float:
    """Fraction of the window's error budget left: 1 untouched, 0 spent, < 0 overspent."""
    if total <= 0:
        return 1.0
    return 1.0 - (total - good) / ((1.0 - target) * total)


def time_to_exhaustion(remaining: float, rate: float, window_s: float) -> float | None:
    """Seconds until the budget is spent at ``rate`` (None: never; 0: already spent).

    At burn rate 1 a whole budget lasts one window, so ``remaining`` lasts
    ``remaining * window / rate`` (assuming traffic keeps its volume).
    """
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return remaining * window_s / rate


def windows_exceed(factor: float, long_rate: float, short_rate: float) -> bool:
    """A multi-window condition: both windows burn faster than ``factor``."""
    return long_rate > factor and short_rate > factor


def quantile_above(good: int, total: int, quantile: float) -> bool:
    """True when the ``quantile`` of the calls lies above the threshold that split them.

    The quantile is the call at rank ``floor(q * n)`` (as ``latency_buckets.quantiles``
    and ClickHouse's quantileExact); it is at or under the threshold exactly when
    more than that many calls are good.
    """
    if total <= 0:
        return False
    return good <= min(math.floor(quantile * total), total - 1)


def burndown(steps: Iterable[tuple[float, int, int]], target: float) -> list[tuple[float, float]]:
    """Budget remaining after each step of a window: ``(time, good, total)`` in time order.

    The budget is that of the whole window (``(1 - target) * all calls``); each
    step's bad calls are subtracted in turn, so the line starts at 1 and ends at
    the window's budget remaining.
    """
    points = list(steps)
    total = sum(t for _, _, t in points)
    allowed = (1.0 - target) * total
    out, spent = [], 0
    for when, good, count in points:
        spent += count - good
        out.append((when, 1.0 if allowed <= 0 else 1.0 - spent / allowed))
    return out


def cumulate(values: Sequence[Sequence[int]]) -> list[list[int]]:
    """Running sums of equal-length rows: per-range counts -> per-window counts."""
    out: list[list[int]] = []
    running: list[int] = []
    for row in values:
        running = [a + b for a, b in zip(running, row, strict=True)] if running else list(row)
        out.append(running)
    return out
