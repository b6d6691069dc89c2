"""The bucket function: pure, table-driven."""

import random

import pytest

from tracestore.latency_buckets import (
    BUCKETS_PER_OCTAVE,
    bucket_of,
    edge_ns,
    fraction_at_or_under,
    quantiles,
)


@pytest.mark.parametrize(
    "duration, bucket",
    [(0, 0), (1, 0), (2, 64), (4, 128), (1024, 640), (1_000_000, 1275), (2**30, 30 * 64)],
)
def test_bucket_of(duration, bucket):
    assert bucket_of(duration) == bucket


def test_edges_are_exact_thresholds():
    k = 20 * BUCKETS_PER_OCTAVE  # 2**20 ns
    counts = {bucket_of(d): 0 for d in ()}
    for d in (2**20 - 5, 2**20 - 1, 2**20, 2**20 + 1):
        counts[bucket_of(d)] = counts.get(bucket_of(d), 0) + 1
    assert fraction_at_or_under(counts, edge_ns(k)) == (2, 4)


def test_quantiles_within_bound():
    rng = random.Random(7)
    values = sorted(int(rng.lognormvariate(15, 1.2)) for _ in range(20000))
    counts: dict[int, int] = {}
    for v in values:
        counts[bucket_of(v)] = counts.get(bucket_of(v), 0) + 1
    for q, estimate in zip((0.5, 0.9, 0.99), quantiles(counts, (0.5, 0.9, 0.99)), strict=True):
        exact = values[int(q * len(values))]
        assert abs(estimate - exact) / exact < 0.0055
    assert quantiles({}, [0.5]) == [None]
