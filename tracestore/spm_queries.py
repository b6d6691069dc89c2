"""Per-minute rollup rows for Jaeger's Service Performance Monitoring API.

Jaeger sums a window of ``ratePer`` ending at each point; the API module does
that summing, so this reads each group's rows of ``latency_minute`` once, with
their latency bucket counts, for every minute any window touches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tracestore.analytics_queries import TimeRange, latency_source
from tracestore.store import Store

_WHERE = "service_name IN %(services)s AND span_kind IN %(kinds)s"
# The group's key columns: by service, or by service and operation.
_KEYS = {False: "service_name", True: "service_name, span_name"}
_SQL = (
    "SELECT {keys}, m, n, e, tupleElement(bm, 1), tupleElement(bm, 2) FROM ("
    "SELECT {keys}, toUInt32(minute) AS m, countMerge(calls) AS n, sumMerge(errors) AS e, "
    "sumMapMerge(buckets) AS bm FROM {source} "
    "GROUP BY {keys}, minute)"
)


@dataclass
class Minute:
    """One minute of one group: calls, errors and latency bucket counts."""

    calls: int
    errors: int
    buckets: dict[int, int]


def minute_rows(
    store: Store,
    services: Sequence[str],
    kinds: Sequence[int],
    by_operation: bool,
    start_s: int,
    end_s: int,
) -> dict[tuple[str, ...], dict[int, Minute]]:
    """Per group ((service,) or (service, operation)) of ``services`` and span ``kinds``:
    its minute rows from ``start_s`` to ``end_s`` (Unix seconds), by minute start."""
    keys = _KEYS[bool(by_operation)]
    source = latency_source(TimeRange.of(start_s, end_s), _WHERE, hourly=False)
    rows = store.query(
        _SQL.format(keys=keys, source=source),
        {"services": tuple(services), "kinds": tuple(int(k) for k in kinds)},
    )
    width = 2 if by_operation else 1
    out: dict[tuple[str, ...], dict[int, Minute]] = defaultdict(dict)
    for row in rows:
        key = tuple(str(v) for v in row[:width])
        minute, calls, errors, ks, cs = row[width:]
        out[key][int(minute)] = Minute(
            int(calls), int(errors), {int(k): int(c) for k, c in zip(ks, cs, strict=False)}
        )
    return out
