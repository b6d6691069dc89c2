"""The SQL of retention tiering: decide settled traces, copy the kept ones, mark them moved.

Every step is one ``INSERT … SELECT`` inside ClickHouse over one chunk (a hot day and
one bucket of trace-id hashes), idempotent when repeated: decided traces are not
decided again (unless pinned or referenced as an example after a not-kept decision),
the copy skips spans already in the kept tier and only then is the decision marked
moved. The job's loop (which chunks, when, under which leadership) lives in the
collector (``collector/tiering.py``). Only integers are formatted into the SQL text;
service and operation names of SLO rules go in as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracestore.store import Store, substitute

DAY_S = 86_400
NS_PER_S = 1_000_000_000
# Spans of a trace may start a little before its first span's day (clock skew) and run
# into the next day; the copy reaches this far on either side of the decided day.
SKEW_S = 3_600
NOT_SELECTED = "baseline not selected"
REASONS = ("error", "slo", "p99", "example", "pinned", "baseline")
# Traces a person (a pin) or a chart, edge page or alert (an example) asked for: a
# not-kept decision about one is taken again while the trace is hot.
_PINNED = "trace_id IN (SELECT trace_id FROM trace_pins)"
_EXAMPLE = "trace_id IN (SELECT trace_id FROM trace_examples)"
_NOT_ASKED_FOR = (
    "trace_id NOT IN (SELECT trace_id FROM trace_pins)"
    " AND trace_id NOT IN (SELECT trace_id FROM trace_examples)"
)


@dataclass(frozen=True)
class LatencyRule:
    """An SLO's latency threshold and the spans it covers (its service and filters)."""

    service: str
    threshold_ns: int
    operation: str | None = None
    route: str | None = None
    span_kind: int | None = None


@dataclass(frozen=True)
class Selection:
    """What the decision keeps besides errors, asked-for traces and p99 outliers."""

    keep_baseline: float  # fraction of traces kept regardless, by trace-id hash
    buckets: int  # chunks per hot day, by trace-id hash
    rules: tuple[LatencyRule, ...] = ()


def _bucket(bucket: int, buckets: int) -> str:
    return f"modulo(cityHash64(trace_id), {int(buckets)}) = {int(bucket)}"


def _baseline_limit(fraction: float) -> int:
    """Hashes below this are in the baseline: high bits of the hash, apart from the bucket."""
    return min(int(fraction * 2**64), 2**64 - 1)


def rules_condition(rules: Sequence[LatencyRule], params: dict[str, Any]) -> str:
    """A condition on ``spans`` rows: slower than a rule covering them (``0`` without rules)."""
    parts = []
    for i, rule in enumerate(rules):
        params[f"rs{i}"] = rule.service
        params[f"rt{i}"] = int(rule.threshold_ns)
        terms = [f"service_name = %(rs{i})s", f"duration_ns > %(rt{i})s"]
        if rule.operation is not None:
            params[f"ro{i}"] = rule.operation
            terms.append(f"span_name = %(ro{i})s")
        if rule.route is not None:
            params[f"rr{i}"] = rule.route
            terms.append(f"(span_name = %(rr{i})s OR endsWith(span_name, concat(' ', %(rr{i})s)))")
        if rule.span_kind is not None:
            terms.append(f"span_kind = {int(rule.span_kind)}")
        parts.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(parts) if parts else "0"


def latest_decisions_sql(where: str) -> str:
    """The latest version of each decision matching ``where`` (a trusted condition).

    Columns ``trace_id``, ``d_day``, ``d_decided_at``, ``d_kept``, ``d_reasons``,
    ``d_moved`` (prefixed: ClickHouse 18.16 would see an alias in ``where``).
    """
    return (
        "(SELECT trace_id, argMax(day, version) AS d_day,"
        " argMax(decided_at, version) AS d_decided_at, argMax(kept, version) AS d_kept,"
        " argMax(reasons, version) AS d_reasons, argMax(moved, version) AS d_moved"
        f" FROM trace_decisions WHERE {where} GROUP BY trace_id)"
    )


def decide_sql(
    day_s: int,
    bucket: int,
    selection: Selection,
    settled_before_ns: int,
    version: int,
    asked_only: bool = False,
) -> tuple[str, dict[str, Any]]:
    """INSERT … SELECT deciding the settled, undecided traces that started in one chunk.

    ``asked_only`` looks at pinned and example traces alone (by their tables' key,
    cheap): for a day whose every trace was decided already, only a new pin or a new
    example reference can change anything.
    """
    day_s, end_s = int(day_s), int(day_s) + DAY_S
    chunk = _bucket(bucket, selection.buckets)
    if asked_only:
        chunk += f" AND ({_PINNED} OR {_EXAMPLE})"
    params: dict[str, Any] = {}
    slow = rules_condition(selection.rules, params)
    slo = (
        f"trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE ts >= toDateTime({day_s - SKEW_S})"
        f" AND ts < toDateTime({end_s + DAY_S}) AND {chunk} AND ({slow}))"
        if selection.rules
        else "0"
    )
    decided = (
        # The day before too: a trace that ran past midnight is decided with its first day.
        f"SELECT trace_id FROM trace_decisions WHERE day >= toDate(toDateTime({day_s - DAY_S}))"
        f" AND day <= toDate(toDateTime({day_s})) AND {chunk}"
        f" AND (kept = 1 OR ({_NOT_ASKED_FOR}))"
    )
    sql = f"""
INSERT INTO trace_decisions (trace_id, day, decided_at, kept, reasons, moved, version)
SELECT trace_id, toDate(toDateTime({day_s})), now(), toUInt8(notEmpty(why)),
    if(notEmpty(why), why, ['{NOT_SELECTED}']), 0, {int(version)}
FROM (
    SELECT trace_id, arrayFilter(x -> x != '', [
        if(errors > 0, 'error', ''),
        if({slo}, 'slo', ''),
        if(p99 > 0 AND end_ns - start_ns > p99, 'p99', ''),
        if({_EXAMPLE}, 'example', ''),
        if({_PINNED}, 'pinned', ''),
        if(cityHash64(trace_id) < {_baseline_limit(selection.keep_baseline)}, 'baseline', '')
    ]) AS why
    FROM (
        SELECT trace_id, start_ns, end_ns, errors,
            if(root_s != '', root_s, first_s) AS r_service,
            if(root_s != '', root_n, first_n) AS r_name,
            toStartOfHour(toDateTime(intDiv(start_ns, {NS_PER_S}))) AS r_hour
        FROM (
            SELECT trace_id, minMerge(trace_start_ns) AS start_ns, maxMerge(trace_end_ns) AS end_ns,
                uniqExactIfMerge(error_count) AS errors,
                anyIfMerge(root_service) AS root_s, anyIfMerge(root_name) AS root_n,
                argMinMerge(first_service) AS first_s, argMinMerge(first_name) AS first_n
            FROM trace_index
            WHERE day >= toDate(toDateTime({day_s})) AND day <= toDate(toDateTime({end_s}))
                AND {chunk} AND trace_id NOT IN ({decided})
            GROUP BY trace_id
            HAVING start_ns >= {day_s * NS_PER_S} AND start_ns < {end_s * NS_PER_S}
                AND end_ns < {int(settled_before_ns)}
        )
    ) AS t ANY LEFT JOIN (
        SELECT toString(service_name) AS r_service, toString(span_name) AS r_name,
            toStartOfHour(minute) AS r_hour,
            quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(digest)[4] AS p99
        FROM latency_minute
        WHERE minute >= toDateTime({day_s}) AND minute < toDateTime({end_s})
        GROUP BY r_service, r_name, r_hour
    ) AS q USING (r_service, r_name, r_hour)
)
"""
    return sql, params


def _waiting(day_s: int, chunk: str) -> str:
    """Trace ids of one chunk (or ``1``: the whole day) decided kept and not yet moved."""
    where = f"day = toDate(toDateTime({int(day_s)})) AND {chunk}"
    return f"SELECT trace_id FROM {latest_decisions_sql(where)} WHERE d_kept = 1 AND d_moved = 0"


def move_sql(day_s: int, bucket: int, buckets: int) -> str:
    """INSERT … SELECT copying one chunk's kept, unmoved traces, skipping spans already copied."""
    chunk = _bucket(bucket, buckets)
    within = (
        f"ts >= toDateTime({int(day_s) - SKEW_S}) AND ts < toDateTime({int(day_s) + 2 * DAY_S})"
    )
    waiting = _waiting(day_s, chunk)
    return f"""
INSERT INTO spans_kept
SELECT * FROM spans_by_trace
WHERE {within} AND {chunk} AND trace_id IN ({waiting})
    AND (trace_id, span_id) NOT IN (
        SELECT trace_id, span_id FROM spans_kept
        WHERE {within} AND {chunk} AND trace_id IN ({waiting}))
LIMIT 1 BY trace_id, span_id
"""


def mark_moved_sql(day_s: int, bucket: int, buckets: int, version: int) -> str:
    """INSERT … SELECT marking one chunk's kept traces moved (after ``move_sql`` finished)."""
    where = f"day = toDate(toDateTime({int(day_s)})) AND {_bucket(bucket, buckets)}"
    return f"""
INSERT INTO trace_decisions (trace_id, day, decided_at, kept, reasons, moved, version)
SELECT trace_id, d_day, d_decided_at, d_kept, d_reasons, 1, {int(version)}
FROM {latest_decisions_sql(where)} WHERE d_kept = 1 AND d_moved = 0
"""


def decide(
    store: Store,
    day_s: int,
    bucket: int,
    selection: Selection,
    settled_before_ns: int,
    version: int,
    asked_only: bool = False,
) -> None:
    """Run ``decide_sql`` for one chunk."""
    sql, params = decide_sql(day_s, bucket, selection, settled_before_ns, version, asked_only)
    store.execute(substitute(sql, params) if params else sql)


def move(store: Store, day_s: int, bucket: int, buckets: int) -> None:
    """Run ``move_sql`` for one chunk."""
    store.execute(move_sql(day_s, bucket, buckets))


def mark_moved(store: Store, day_s: int, bucket: int, buckets: int, version: int) -> None:
    """Run ``mark_moved_sql`` for one chunk."""
    store.execute(mark_moved_sql(day_s, bucket, buckets, version))


def hot_days(store: Store) -> list[int]:
    """Start seconds (UTC) of the days present in the hot trace index, oldest first."""
    rows = store.query("SELECT DISTINCT toUInt32(toDateTime(day)) FROM trace_index")
    return sorted(int(r[0]) for r in rows)


def waiting_count(store: Store, day_s: int) -> int:
    """Kept traces of a hot day not yet copied into the kept tier."""
    rows = store.query(f"SELECT count() FROM ({_waiting(day_s, '1')})")
    return int(rows[0][0])
