"""Fixed log-scale latency buckets shared by the rollups, percentiles and SLOs.

Bucket ``k`` holds durations ``d`` (nanoseconds) with
``floor(log2(max(d, 1)) * BUCKETS_PER_OCTAVE) == k``: 64 buckets per doubling,
so each bucket is 1.09% wide and its geometric midpoint is within 0.55% of any
duration in it. That bounds the relative error of every percentile read from
the buckets, and makes "fraction of calls at or under T" exact whenever T is a
bucket edge (``edge_ns(k)``). The SQL expression below must stay the same
function as ``bucket_of``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

BUCKETS_PER_OCTAVE = 64
BUCKET_SQL = "toUInt16(floor(log2(greatest(duration_ns, 1)) * 64))"


def bucket_of(duration_ns: int) -> int:
    return int(math.floor(math.log2(max(duration_ns, 1)) * BUCKETS_PER_OCTAVE))


def edge_ns(bucket: int) -> float:
    """Lower edge of ``bucket`` (and upper edge of ``bucket - 1``), in nanoseconds."""
    return 2.0 ** (bucket / BUCKETS_PER_OCTAVE)


def midpoint_ns(bucket: int) -> float:
    return 2.0 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE)


def quantiles(buckets: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Quantiles (nanoseconds) from bucket counts; ``None`` when there is no data.

    Uses the same rank as ClickHouse's ``quantileExact`` (the element at
    ``floor(q * n)`` of the sorted values, clamped to the last).
    """
    items = sorted((k, c) for k, c in buckets.items() if c > 0)
    total = sum(c for _, c in items)
    out: list[float | None] = []
    for q in qs:
        if total == 0:
            out.append(None)
            continue
        rank = min(int(q * total), total - 1)
        seen = 0
        for k, c in items:
            seen += c
            if seen > rank:
                out.append(midpoint_ns(k))
                break
    return out


def fraction_at_or_under(buckets: Mapping[int, int], threshold_ns: float) -> tuple[int, int]:
    """(good, total): calls in buckets whose upper edge is at or under ``threshold_ns``.

    Exact when the threshold is a bucket edge; otherwise the threshold is rounded
    down to the edge below it (at most 1.09% lower), which errs on the strict side.
    """
    good = total = 0
    for k, c in buckets.items():
        total += c
        if edge_ns(k + 1) <= threshold_ns * (1 + 1e-12):
            good += c
    return good, total
