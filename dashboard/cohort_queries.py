"""Why are the slow ones slow? Slow-cohort analysis of one operation, computed in ClickHouse.

The traces holding a (service, operation) span in a window split into the slow
cohort (that span at or above a threshold, given directly or as a percentile of
those traces) and the rest. For each cohort, ClickHouse returns:

1. per downstream (service, operation), the self time of its spans inside the
   target span's interval, summed per cohort. Self time (a span's duration less
   its children's) stands in for the critical path: in a call tree whose calls
   run one after another, the self times of a span's subtree add up to its
   duration, so the per-trace mean deltas add up to the slow cohort's extra time
   and the operation that slowed down comes first. Children are summed, not
   unioned, so parallel calls can hide their parent's self time (it reads 0).
   "Inside the interval" (same trace, started within the target span) stands in
   for "descendant", which a single query cannot walk.
2. per (service, attribute key, value) over span and resource attributes of
   every span of the trace, how many traces of each cohort carry it; the lift
   P(value | slow) / P(value) ranks what is over-represented among slow traces.
3. the share of each cohort whose target span failed.

Figures 1 and 2 read a deterministic sample of at most ``per_cohort`` traces of
each cohort (chosen by a hash of the trace id) from ``spans_by_trace`` by
primary key (each sampled trace costs about one granule of it, so the sample, not
the table, sets the cost); counts and error shares cover every trace. Plain SQL that runs on
ClickHouse 18.16 and chDB alike: no CTEs, window functions or Map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sidetrace.store import Store

DEFAULT_PERCENTILE = 0.9
DEFAULT_PER_COHORT = 500
MAX_PER_COHORT = 10_000
# An attribute value is ranked only when on this share of the slow traces sampled, and on
# at least MIN_TRACES of them: rarer values (a user id) reach any lift by chance.
MIN_SUPPORT = 0.1
MIN_TRACES = 3
TOP = 25
SLACK_S = 900  # other spans of a trace may start this long before or after the window

_TARGET_WHERE = (
    "service_name = %(service)s AND span_name = %(operation)s "
    "AND ts >= toDateTime(%(from_s)s) AND ts < toDateTime(%(to_s)s)"
)
# One row per trace: its longest span of the operation (the "target"), slow or not.
_TARGETS = f"""(
    SELECT trace_id, max(duration_ns) AS t_duration, argMax(span_id, duration_ns) AS t_span,
        argMax(start_ns, duration_ns) AS t_start, argMax(status_code, duration_ns) AS t_status,
        toUInt8(max(duration_ns) >= %(threshold)s) AS slow
    FROM spans WHERE {_TARGET_WHERE} GROUP BY trace_id
)"""
_SAMPLE = f"""(
    SELECT trace_id, t_span, t_start, t_start + t_duration AS t_end, t_duration, slow
    FROM {_TARGETS} ORDER BY slow, cityHash64(trace_id), trace_id LIMIT %(per_cohort)s BY slow
)"""
_SAMPLE_IDS = f"(SELECT trace_id FROM {_SAMPLE})"
_TRACE_WHERE = "ts >= toDateTime(%(wide_from_s)s) AND ts < toDateTime(%(wide_to_s)s)"
# Every span of the sampled traces once (a spool replay may have stored a span twice).
_TRACE_SPANS = f"""(
    SELECT trace_id, span_id, parent_span_id, toString(service_name) AS service,
        toString(span_name) AS name, start_ns, duration_ns
    FROM spans_by_trace PREWHERE trace_id IN {_SAMPLE_IDS} WHERE {_TRACE_WHERE}
    LIMIT 1 BY trace_id, span_id
)"""
# Self time in one read of the traces: every span counts its duration for itself and
# against its parent (ARRAY JOIN of [own id, parent id]); grouped by id, a span's self
# time is its duration less its children's.
_SELF_TIMES = f"""(
    SELECT trace_id, anyIf(service, own = 1) AS service, anyIf(name, own = 1) AS name,
        anyIf(start_ns, own = 1) AS start_ns,
        greatest(toInt64(sumIf(duration_ns, own = 1)) - toInt64(sumIf(duration_ns, own = 0)),
            toInt64(0)) AS self_ns
    FROM {_TRACE_SPANS} ARRAY JOIN [span_id, parent_span_id] AS id, [1, 0] AS own
    GROUP BY trace_id, id HAVING max(own) = 1
)"""
ATTRIBUTION_SQL = f"""
SELECT service, name, sumIf(self_ns, slow = 1), sumIf(self_ns, slow = 0),
    countIf(slow = 1), countIf(slow = 0)
FROM {_SELF_TIMES} AS timed
ALL INNER JOIN (SELECT trace_id, t_start, t_end, slow FROM {_SAMPLE}) AS cohort USING trace_id
WHERE start_ns >= t_start AND start_ns < t_end
GROUP BY service, name
"""
ATTRIBUTES_SQL = f"""
SELECT service, key, value, uniqExactIf(trace_id, slow = 1) AS n_slow,
    uniqExactIf(trace_id, slow = 0) AS n_rest
FROM (
    SELECT trace_id, toString(service_name) AS service, toString(a_key) AS key, a_value AS value
    FROM spans_by_trace
    ARRAY JOIN arrayConcat(attr_keys, resource_attr_keys) AS a_key,
        arrayConcat(attr_values, resource_attr_values) AS a_value
    PREWHERE trace_id IN {_SAMPLE_IDS} WHERE {_TRACE_WHERE}
) AS attrs ALL INNER JOIN (SELECT trace_id, slow FROM {_SAMPLE}) AS cohort USING trace_id
GROUP BY service, key, value
HAVING n_slow >= %(min_slow)s
"""
COHORTS_SQL = f"""
SELECT slow, count(), sum(t_duration), sum(toUInt64(t_status = 2)), quantileExact(0.5)(t_duration)
FROM {_TARGETS} GROUP BY slow
"""
SAMPLE_SQL = f"SELECT slow, count(), sum(t_duration) FROM {_SAMPLE} GROUP BY slow"


def threshold_sql(percentile: float) -> str:
    """The percentile of the per-trace target durations (a number, never user text)."""
    level = float(percentile)
    if not 0 < level < 1:
        raise ValueError(f"percentile {level} must be strictly between 0 and 1")
    return (
        f"SELECT quantileExact({level!r})(d), count() FROM (SELECT trace_id, "
        f"max(duration_ns) AS d FROM spans WHERE {_TARGET_WHERE} GROUP BY trace_id)"
    )


@dataclass(frozen=True)
class CohortQuery:
    """One operation over [from_s, to_s); slow means at or above ``threshold_ns`` when
    given, else at or above the ``percentile`` of its traces."""

    service: str
    operation: str
    from_s: int
    to_s: int
    percentile: float = DEFAULT_PERCENTILE
    threshold_ns: int | None = None
    per_cohort: int = DEFAULT_PER_COHORT
    min_support: float = MIN_SUPPORT

    def params(self, threshold_ns: int, min_slow: int = 1) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "from_s": int(self.from_s),
            "to_s": int(self.to_s),
            "wide_from_s": int(self.from_s) - SLACK_S,
            "wide_to_s": int(self.to_s) + SLACK_S,
            "threshold": int(threshold_ns),
            "per_cohort": int(self.per_cohort),
            "min_slow": int(min_slow),
        }


def _cohort(count: int, duration_sum: int, errors: int, median: float | None) -> dict[str, Any]:
    return {
        "traces": count,
        "mean_ms": duration_sum / count / 1e6 if count else None,
        "median_ms": float(median) / 1e6 if count and median is not None else None,
        "errors": errors,
        "error_share": errors / count if count else None,
    }


def analyze_cohorts(store: Store, q: CohortQuery) -> dict[str, Any]:
    """Cohorts, downstream attribution and over-represented attributes (see the module doc)."""
    threshold = q.threshold_ns
    base = q.params(threshold or 0)
    if threshold is None:
        rows = store.query(threshold_sql(q.percentile), base)
        threshold = int(float(rows[0][0])) if rows and int(rows[0][1]) else 0
        base = q.params(threshold)
    found = {int(r[0]): r[1:] for r in store.query(COHORTS_SQL, base)}
    empty = (0, 0, 0, None)
    slow = _cohort(*(int(x) if i < 3 else x for i, x in enumerate(found.get(1, empty))))
    rest = _cohort(*(int(x) if i < 3 else x for i, x in enumerate(found.get(0, empty))))
    out: dict[str, Any] = {
        "service": q.service,
        "operation": q.operation,
        "start": q.from_s,
        "end": q.to_s,
        "threshold_ms": threshold / 1e6,
        "percentile": None if q.threshold_ns is not None else q.percentile,
        "slow": slow,
        "rest": rest,
        "attribution": [],
        "attributes": [],
    }
    if not slow["traces"] or not rest["traces"]:
        out["note"] = "one cohort is empty: nothing to compare"
        return out
    sample = {int(r[0]): (int(r[1]), int(r[2])) for r in store.query(SAMPLE_SQL, base)}
    (n_slow, d_slow), (n_rest, d_rest) = sample[1], sample[0]
    out["sampled"] = {"slow": n_slow, "rest": n_rest}
    gap_ns = d_slow / n_slow - d_rest / n_rest
    out["attribution"] = _attribution(store.query(ATTRIBUTION_SQL, base), n_slow, n_rest, gap_ns)
    min_slow = max(MIN_TRACES, math.ceil(q.min_support * n_slow))
    prior = slow["traces"] / (slow["traces"] + rest["traces"])
    attrs = store.query(ATTRIBUTES_SQL, q.params(threshold, min_slow))
    out["attributes"] = _lifts(attrs, n_slow, n_rest, prior)
    return out


def _attribution(rows: list[tuple], n_slow: int, n_rest: int, gap_ns: float) -> list[dict]:
    """Mean self time per trace in each cohort, ranked by how much more the slow ones spend."""
    out = []
    for service, name, self_slow, self_rest, spans_slow, spans_rest in rows:
        mean_slow = int(self_slow) / n_slow
        mean_rest = int(self_rest) / n_rest
        delta = mean_slow - mean_rest
        out.append(
            {
                "service": str(service),
                "operation": str(name),
                "slow_self_ms": mean_slow / 1e6,
                "rest_self_ms": mean_rest / 1e6,
                "delta_ms": delta / 1e6,
                "share_of_gap": delta / gap_ns if gap_ns > 0 else None,
                "slow_spans_per_trace": int(spans_slow) / n_slow,
                "rest_spans_per_trace": int(spans_rest) / n_rest,
            }
        )
    out.sort(key=lambda r: (-r["delta_ms"], r["service"], r["operation"]))
    return out[:TOP]


def _lifts(rows: list[tuple], n_slow: int, n_rest: int, prior: float) -> list[dict]:
    """Attribute values by lift P(value | slow) / P(value), the population's slow share
    weighting the two samples; only values more common among slow traces."""
    out = []
    for service, key, value, with_slow, with_rest in rows:
        share_slow = int(with_slow) / n_slow
        share_rest = int(with_rest) / n_rest
        overall = prior * share_slow + (1 - prior) * share_rest
        lift = share_slow / overall if overall else 0.0
        if share_slow <= share_rest:
            continue
        out.append(
            {
                "service": str(service),
                "key": str(key),
                "value": str(value),
                "slow_traces": int(with_slow),
                "rest_traces": int(with_rest),
                "slow_share": share_slow,
                "rest_share": share_rest,
                "lift": lift,
            }
        )
    out.sort(key=lambda r: (-r["lift"], -r["slow_share"], r["service"], r["key"], r["value"]))
    return out[:TOP]
