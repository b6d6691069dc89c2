"""Good and total calls per series and window, computed in ClickHouse in one query.

Rows of ``latency_minute`` are finalized one by one (``finalizeAggregation``)
and split at each bucket cut with ``arrayFilter``/``arraySum``, so ClickHouse
returns small integers per (service, operation, kind, window range) and never
merges bucket maps. Windows are cumulative: the query groups rows into disjoint
age ranges and the caller adds them up.

Window alignment: a window of N whole minutes reads the minute rows from the one
holding ``now - N minutes`` to the current (partial) one, so it covers at least N
and at most N + 1 minutes of time. A window that is not a whole number of
minutes (only the test-only time scale makes those) is read from raw ``spans``
to the nanosecond instead, with the same bucket function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracestore.latency_buckets import BUCKET_SQL
from tracestore.slo_math import cumulate
from tracestore.store import Store

SeriesKey = tuple[str, str, int]  # service, span name, span kind

# One output row per (series, range, cut): ARRAY JOIN spreads each row over its
# service's cuts. (ClickHouse 18.16 cannot close nested lambdas over columns, so the
# cut comes in as a column rather than through arrayMap.)
_ROLLUP_SQL = """
SELECT svc, op, kind, r, ci, sum(c), sum(e),
    sum(arraySum(arrayFilter((v, k) -> k < x, b.2, b.1))),
    sum(arraySum(arrayFilter((v, k) -> k < x, ob.2, ob.1)))
FROM (
    SELECT
        toString(service_name) AS svc, toString(span_name) AS op, span_kind AS kind,
        {range} AS r,
        finalizeAggregation(calls) AS c,
        finalizeAggregation(errors) AS e,
        finalizeAggregation(buckets) AS b,
        finalizeAggregation(ok_buckets) AS ob,
        arrayElement(%(cuts)s, indexOf(%(services)s, svc)) AS cs
    FROM {table}
    WHERE service_name IN %(service_set)s
      AND minute >= toDateTime(%(start)s) AND minute <= toDateTime(%(end)s){hours}
)
ARRAY JOIN cs AS x, arrayEnumerate(cs) AS ci
GROUP BY svc, op, kind, r, ci
"""

_RAW_SQL = f"""
SELECT svc, op, kind, r, ci, count(), sum(e), sum(bucket < x), sum(bucket < x AND e = 0)
FROM (
    SELECT
        toString(service_name) AS svc, toString(span_name) AS op, span_kind AS kind,
        {{range}} AS r,
        toUInt64(status_code = 2) AS e,
        {BUCKET_SQL} AS bucket,
        arrayElement(%(cuts)s, indexOf(%(services)s, svc)) AS cs
    FROM spans
    WHERE service_name IN %(service_set)s AND {{where}}
)
ARRAY JOIN cs AS x, arrayEnumerate(cs) AS ci
GROUP BY svc, op, kind, r, ci
"""

_NS_SQL = "ts >= toDateTime(%(start_s)s) AND start_ns >= %(start)s AND start_ns <= %(end)s"
# Spans whose start second falls in the minute rows from `start` to `end`, as the
# materialized view files them (`toStartOfMinute(ts)`).
_MINUTES_SQL = "ts >= toDateTime(%(start)s) AND ts < toDateTime(%(end)s) + 60"

SPANS = "spans"  # step_rows source: raw spans, for minutes still within their retention


@dataclass(frozen=True)
class Counts:
    """Calls of one series in one window: all, errors, and good per cut of its service.

    ``good[i]`` counts calls below cut ``i``; ``ok_good[i]`` those also without error.
    """

    calls: int
    errors: int
    good: tuple[int, ...]
    ok_good: tuple[int, ...]


def is_whole_minutes(seconds: float) -> bool:
    return seconds >= 60 and abs(seconds / 60 - round(seconds / 60)) < 1e-9


def _range_sql(column: str, starts: Sequence[str]) -> str:
    """Index of the narrowest window a row falls in; ``starts`` are SQL literals, newest first.

    The starts are integers computed here, never user input, so they are inlined.
    """
    if len(starts) == 1:
        return "0"
    arms = ", ".join(f"{column} >= {start}, {i}" for i, start in enumerate(starts[:-1]))
    return f"multiIf({arms}, {len(starts) - 1})"


def _sparse(
    rows: Sequence[tuple], cuts: Mapping[str, Sequence[int]]
) -> dict[tuple[SeriesKey, int], list[int]]:
    """Rows ``(svc, op, kind, range, cut number, calls, errors, good, ok good)`` -> per
    (series, range): ``[calls, errors, good per cut..., ok good per cut...]``."""
    out: dict[tuple[SeriesKey, int], list[int]] = {}
    for svc, op, kind, r, ci, calls, errors, good, ok_good in rows:
        width = len(cuts[svc])
        key = ((str(svc), str(op), int(kind)), int(r))
        row = out.get(key)
        if row is None:
            row = out[key] = [0] * (2 + 2 * width)
        row[0], row[1] = int(calls), int(errors)
        row[1 + int(ci)], row[1 + width + int(ci)] = int(good), int(ok_good)
    return out


def _assemble(
    rows: Sequence[tuple], count: int, cuts: Mapping[str, Sequence[int]]
) -> dict[SeriesKey, list[Counts]]:
    """Per series, one (not cumulative) Counts per range, ``count`` ranges."""
    table: dict[SeriesKey, list[list[int]]] = {}
    for (key, r), row in _sparse(rows, cuts).items():
        width = len(cuts[key[0]])
        ranges = table.get(key)
        if ranges is None:
            ranges = table[key] = [[0] * (2 + 2 * width) for _ in range(count)]
        ranges[min(r, count - 1)] = row
    return {key: [_counts(row, len(cuts[key[0]])) for row in rows] for key, rows in table.items()}


def _counts(row: Sequence[int], width: int) -> Counts:
    return Counts(row[0], row[1], tuple(row[2 : 2 + width]), tuple(row[2 + width :]))


def _cumulative(per_range: dict[SeriesKey, list[Counts]]) -> dict[SeriesKey, list[Counts]]:
    out = {}
    for key, ranges in per_range.items():
        flat = [[c.calls, c.errors, *c.good, *c.ok_good] for c in ranges]
        width = len(ranges[0].good)
        out[key] = [_counts(row, width) for row in cumulate(flat)]
    return out


def _params(cuts: Mapping[str, Sequence[int]]) -> dict[str, object]:
    services = sorted(cuts)
    return {
        "services": services,
        "service_set": tuple(services),  # a tuple renders as (a, b) for IN
        "cuts": [list(cuts[s]) for s in services],
    }


def window_counts(
    store: Store, cuts: Mapping[str, Sequence[int]], windows: Sequence[float], now: float
) -> dict[float, dict[SeriesKey, Counts]]:
    """For each window length (seconds): the counts of every series of the given services."""
    if not cuts or not windows:
        return {}
    base = _params(cuts)
    result: dict[float, dict[SeriesKey, Counts]] = {w: {} for w in windows}

    minute_windows = sorted({w for w in windows if is_whole_minutes(w)})
    if minute_windows:
        current = math.floor(now / 60) * 60
        starts = [math.floor((now - w) / 60) * 60 for w in minute_windows]
        params = {**base, "start": starts[-1], "end": current}
        literals = [f"toDateTime({int(s)})" for s in starts]
        sql = _ROLLUP_SQL.format(
            range=_range_sql("minute", literals), table="latency_minute", hours=""
        )
        per_series = _cumulative(_assemble(store.query(sql, params), len(starts), cuts))
        for i, w in enumerate(minute_windows):
            result[w] = {key: counts[i] for key, counts in per_series.items()}

    raw_windows = sorted({w for w in windows if not is_whole_minutes(w)})
    if raw_windows:
        now_ns = int(now * 1e9)
        starts = [now_ns - int(w * 1e9) for w in raw_windows]
        params = {**base, "start": starts[-1], "start_s": starts[-1] // 10**9, "end": now_ns}
        sql = _RAW_SQL.format(range=_range_sql("start_ns", [str(s) for s in starts]), where=_NS_SQL)
        per_series = _cumulative(_assemble(store.query(sql, params), len(starts), cuts))
        for i, w in enumerate(raw_windows):
            result[w] = {key: counts[i] for key, counts in per_series.items()}
    return result


ROLLUP_TABLES = ("latency_minute", "latency_hour")  # same columns; `minute` starts the row
MINUTES, HOURS = ROLLUP_TABLES


def rollup_services(store: Store) -> set[str]:
    """Every service with a row in the minute rollup (the services SLOs may name)."""
    rows = store.query("SELECT DISTINCT toString(service_name) FROM latency_minute")
    return {str(r[0]) for r in rows}


def step_rows(
    store: Store,
    cuts: Mapping[str, Sequence[int]],
    start: int,
    end: int,
    step_s: int,
    source: str = "latency_minute",
    hours: Sequence[int] = (),
) -> list[tuple]:
    """Query rows ``(svc, op, kind, step, cut number from 1, calls, errors, good, ok good)``
    of the minutes (or hours) from ``start`` to ``end`` (row starts), ``step_s`` per step;
    with ``hours`` (hour starts) of a rollup, only the rows of those hours (one scan).

    ``source`` is a rollup table or ``SPANS``: raw spans give the same numbers as the
    minute rollup (same bucket function and error rule) without deserialising its
    sumMap states, which ClickHouse 18.16 does slowly; ``step_s`` must then be a
    whole number of minutes and ``start`` a minute start.
    """
    if source == SPANS:
        sql = _RAW_SQL.format(
            range=f"intDiv(toUInt32(ts) - {int(start)}, {int(step_s)})", where=_MINUTES_SQL
        )
    elif source in ROLLUP_TABLES:
        range_sql = f"intDiv(toUInt32(minute) - {int(start)}, {int(step_s)})"
        only = " AND toUInt32(toStartOfHour(minute)) IN %(hours)s" if hours else ""
        sql = _ROLLUP_SQL.format(range=range_sql, table=source, hours=only)
    else:
        raise ValueError(f"not a latency rollup nor spans: {source!r}")
    params = {**_params(cuts), "start": start, "end": end}
    if hours:
        params["hours"] = tuple(int(h) for h in hours)
    return store.query(sql, params)


def range_rows(
    store: Store,
    cuts: Mapping[str, Sequence[int]],
    start: int,
    end: int,
    step_s: int,
    source: str = "latency_minute",
) -> dict[tuple[SeriesKey, int], list[int]]:
    """Like ``range_counts``, but only the (series, step) pairs that have rows, as
    ``[calls, errors, good per cut..., ok good per cut...]``."""
    return _sparse(step_rows(store, cuts, start, end, step_s, source), cuts)


def range_counts(
    store: Store,
    cuts: Mapping[str, Sequence[int]],
    start: int,
    end: int,
    step_s: int,
    table: str = "latency_minute",
) -> dict[SeriesKey, list[Counts]]:
    """Per-step counts of the rollup rows from ``start`` to ``end`` (row starts).

    Step ``i`` of each series holds the rows of ``[start + i * step_s, start + (i + 1) * step_s)``.
    """
    if table not in ROLLUP_TABLES:
        raise ValueError(f"not a latency rollup: {table!r}")
    count = (end - start) // step_s + 1
    return _assemble(step_rows(store, cuts, start, end, step_s, table), count, cuts)


def step_counts(
    store: Store,
    cuts: Mapping[str, Sequence[int]],
    window_s: float,
    steps: int,
    now: float,
) -> tuple[float, dict[SeriesKey, list[Counts]]]:
    """Per-step (not cumulative) counts over a window, for burn-down charts.

    Returns the step length in seconds and, per series, the steps oldest first.
    """
    current = math.floor(now / 60) * 60
    start = math.floor((now - window_s) / 60) * 60
    minutes = (current - start) // 60 + 1
    step_s = max(1, math.ceil(minutes / steps)) * 60
    return float(step_s), range_counts(store, cuts, start, current, step_s)


_HOUR_CALLS_SQL = """
SELECT toUInt32(minute), countMerge(calls)
FROM latency_hour
WHERE service_name IN %(service_set)s
  AND minute >= toDateTime(%(start)s) AND minute <= toDateTime(%(end)s)
GROUP BY minute
"""


def hour_calls(store: Store, services: Sequence[str], start: int, end: int) -> dict[int, int]:
    """All calls of ``services`` per hour from ``start`` to ``end`` (hour starts): a cheap
    read (counts only, no bucket maps) that tells which hours gained late spans."""
    if not services:
        return {}
    params = {"service_set": tuple(sorted(services)), "start": start, "end": end}
    return {int(h): int(n) for h, n in store.query(_HOUR_CALLS_SQL, params)}


# ---- the evaluator's kept slots (table slo_slots, schemas/migrations/0007) ----------

_LAST_HEADER_SQL = """
SELECT epoch, version, body FROM slo_slots WHERE step = 0 ORDER BY version DESC LIMIT 1
"""

_SLOTS_SQL = """
SELECT step, slot, max(version), argMax(body, version)
FROM slo_slots
WHERE epoch = %(epoch)s AND step > 0 AND version <= %(version)s
GROUP BY step, slot
"""


def last_slot_header(store: Store) -> tuple[int, int, str] | None:
    """The newest header: ``(epoch, version, JSON body)``, or None."""
    rows = store.query(_LAST_HEADER_SQL)
    if not rows:
        return None
    epoch, version, body = rows[0]
    return int(epoch), int(version), str(body)


def kept_slots(store: Store, epoch: int, version: int) -> list[tuple[int, int, int, str]]:
    """Per slot of ``epoch``, its newest row up to ``version``: ``(step, slot, version,
    body)``."""
    rows = store.query(_SLOTS_SQL, {"epoch": epoch, "version": version})
    return [(int(step), int(slot), int(v), str(body)) for step, slot, v, body in rows]


def keep_slots(
    store: Store, epoch: int, version: int, slots: Sequence[tuple[int, int, str]], header: str
) -> None:
    """Write slot rows ``(step, slot, body)``, then the header that makes them current."""
    for rows in (slots, [(0, 0, header)]):
        if not rows:
            continue
        now = version // 10**9
        store.insert(
            "slo_slots",
            {
                "ts": [now] * len(rows),
                "epoch": [epoch] * len(rows),
                "version": [version] * len(rows),
                "step": [r[0] for r in rows],
                "slot": [r[1] for r in rows],
                "body": [r[2] for r in rows],
            },
        )
