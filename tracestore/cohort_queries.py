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
each cohort (those whose trace id hashes lowest) from ``spans_by_trace`` by
primary key (each sampled trace costs about one granule of it, so the sample, not
the table, sets the cost); counts and error shares cover every trace. Four
queries: the threshold and cohorts in one scan of the operation's spans, the
sample (its ids and times come back and go into the next two as literals), the
attribution, the attributes. Plain SQL that runs on ClickHouse 18.16 and chDB
alike: no CTEs, window functions or Map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tracestore.store import Store

DEFAULT_PERCENTILE = 0.9
DEFAULT_PER_COHORT = 500
# The sample's ids and times travel as literals: 800 per cohort keeps the longest query
# (32-hex ids, nanosecond times) well under ClickHouse's default max_query_size (256 KiB).
MAX_PER_COHORT = 800
MAX_QUERY_SIZE = 262_144
# An attribute value is ranked only when on this share of the slow traces sampled, and on
# at least MIN_TRACES of them: rarer values (a user id) reach any lift by chance.
MIN_SUPPORT = 0.1
MIN_TRACES = 3
TOP = 25
SLACK_S = 900  # other spans of a trace may start this long before or after the window
HASH_BUCKETS = 10_000  # the sample keeps the traces whose id hashes lowest, modulo this

_TARGET_WHERE = (
    "service_name = %(service)s AND span_name = %(operation)s "
    "AND ts >= toDateTime(%(from_s)s) AND ts < toDateTime(%(to_s)s)"
)
# One row per trace: its longest span of the operation (the "target").
# Grouped by a 64-bit hash of the trace id: on 18.16, grouping by a String costs far more.
_PER_TRACE = f"""(
    SELECT cityHash64(trace_id) AS gk, any(trace_id) AS tid, max(duration_ns) AS d,
        argMax(status_code, duration_ns) AS e, argMax(start_ns, duration_ns) AS t_start,
        modulo(gk, {HASH_BUCKETS}) AS h
    FROM spans WHERE {_TARGET_WHERE} AND modulo(cityHash64(trace_id), {HASH_BUCKETS}) < %(keep)s
    GROUP BY gk
)"""
# The sample: per cohort, the traces of lowest hash (the scan above already keeps only
# hashes low enough, from the cohort sizes). Its ids and times come back as literals for
# the two reads below, so neither computes the cohorts again (nor joins them:
# ``transform`` maps a trace id to its place in the sample).
SAMPLE_SQL = f"""
SELECT tid, t_start, t_start + d, slow FROM (
    SELECT tid, t_start, d, h, toUInt8(d >= %(threshold)s) AS slow FROM {_PER_TRACE}
) WHERE h < if(slow = 1, %(keep_slow)s, %(keep_rest)s)
ORDER BY slow, h, tid LIMIT %(per_cohort)s BY slow
"""
_TRACE_WHERE = (
    "trace_id IN %(id_set)s AND ts >= toDateTime(%(wide_from_s)s) "
    "AND ts < toDateTime(%(wide_to_s)s)"
)
_PLACE = "transform(trace_id, %(ids)s, %(places)s, toUInt32(0))"
# Every span of the sampled traces once (a spool replay may have stored a span twice).
_TRACE_SPANS = f"""(
    SELECT trace_id, span_id, parent_span_id, toString(service_name) AS service,
        toString(span_name) AS name, start_ns, duration_ns
    FROM spans_by_trace PREWHERE {_TRACE_WHERE}
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
FROM (
    SELECT service, name, start_ns, self_ns, {_PLACE} AS place,
        arrayElement(%(starts)s, place) AS t_start, arrayElement(%(ends)s, place) AS t_end,
        arrayElement(%(slows)s, place) AS slow
    FROM {_SELF_TIMES}
)
WHERE place > 0 AND start_ns >= t_start AND start_ns < t_end
GROUP BY service, name
"""
ATTRIBUTES_SQL = f"""
SELECT service, key, value, uniqExactIf(trace_id, slow = 1) AS n_slow,
    uniqExactIf(trace_id, slow = 0) AS n_rest
FROM (
    SELECT trace_id, toString(service_name) AS service, toString(a_key) AS key, a_value AS value,
        arrayElement(%(slows)s, {_PLACE}) AS slow
    FROM spans_by_trace
    ARRAY JOIN arrayConcat(attr_keys, resource_attr_keys) AS a_key,
        arrayConcat(attr_values, resource_attr_values) AS a_value
    PREWHERE {_TRACE_WHERE}
)
GROUP BY service, key, value
HAVING n_slow >= %(min_slow)s
"""


def cohorts_sql(percentile: float | None) -> str:
    """Threshold, then per cohort (slow, rest): traces, duration sum, errors, median.

    One scan: the per-trace durations are gathered into arrays and split by the
    threshold (the percentile of those durations, or the ``threshold`` parameter).
    The percentile is a number formatted here, never user text.
    """
    if percentile is None:
        threshold = "toUInt64(%(threshold)s)"
    else:
        level = float(percentile)
        if not 0 < level < 1:
            raise ValueError(f"percentile {level} must be strictly between 0 and 1")
        threshold = f"quantileExact({level!r})(d)"
    cohort = (
        "length({x}), arraySum({x}), arrayCount((v, err) -> v {op} thr AND err = 2, ds, es), "
        "if(length({x}) > 0, arraySort({x})[intDiv(length({x}), 2) + 1], 0)"
    )
    return (
        f"SELECT thr, {cohort.format(x='slow_ds', op='>=')}, {cohort.format(x='rest_ds', op='<')} "
        "FROM (SELECT thr, ds, es, arrayFilter(v -> v >= thr, ds) AS slow_ds, "
        "arrayFilter(v -> v < thr, ds) AS rest_ds FROM ("
        f"SELECT {threshold} AS thr, groupArray(d) AS ds, groupArray(e) AS es "
        f"FROM {_PER_TRACE}))"
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


def _keep(per_cohort: int, traces: int) -> int:
    """Hash buckets to scan for about twice ``per_cohort`` of ``traces`` (all when few)."""
    if not traces:
        return 0
    return min(HASH_BUCKETS, math.ceil(HASH_BUCKETS * 2 * per_cohort / traces))


def _cohort(count: Any, duration_sum: Any, errors: Any, median: Any) -> dict[str, Any]:
    count, duration_sum, errors = int(count), int(duration_sum), int(errors)
    return {
        "traces": count,
        "mean_ms": duration_sum / count / 1e6 if count else None,
        "median_ms": float(median) / 1e6 if count and median is not None else None,
        "errors": errors,
        "error_share": errors / count if count else None,
    }


def analyze_cohorts(store: Store, q: CohortQuery) -> dict[str, Any]:
    """Cohorts, downstream attribution and over-represented attributes (see the module doc)."""
    base = {**q.params(q.threshold_ns or 0), "keep": HASH_BUCKETS}
    percentile = None if q.threshold_ns is not None else q.percentile
    (threshold, *figures), *_ = store.query(cohorts_sql(percentile), base)
    threshold = int(float(threshold))
    slow = _cohort(*figures[:4])
    rest = _cohort(*figures[4:])
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
    keep = {
        "keep_slow": _keep(q.per_cohort, slow["traces"]),
        "keep_rest": _keep(q.per_cohort, rest["traces"]),
    }
    sample_params = {**q.params(threshold), **keep, "keep": max(keep.values())}
    sample = store.query(SAMPLE_SQL, sample_params)
    ids = [str(r[0]) for r in sample]
    starts, ends, slows = ([int(r[i]) for r in sample] for i in (1, 2, 3))
    n_slow = sum(slows)
    n_rest = len(slows) - n_slow
    out["sampled"] = {"slow": n_slow, "rest": n_rest}
    if not n_slow or not n_rest:  # only when nearly every trace is in one cohort
        out["note"] = "too few traces in one cohort to sample"
        return out
    spent = [e - s for s, e in zip(starts, ends, strict=True)]
    d_slow = sum(d for d, x in zip(spent, slows, strict=True) if x)
    gap_ns = d_slow / n_slow - (sum(spent) - d_slow) / n_rest
    literal = {"id_set": tuple(ids), "ids": ids, "places": list(range(1, len(ids) + 1)),
               "starts": starts, "ends": ends, "slows": slows}  # fmt: skip
    rows = store.query(ATTRIBUTION_SQL, {**q.params(threshold), **literal})
    out["attribution"] = _attribution(rows, n_slow, n_rest, gap_ns)
    min_slow = max(MIN_TRACES, math.ceil(q.min_support * n_slow))
    prior = slow["traces"] / (slow["traces"] + rest["traces"])
    attrs = store.query(ATTRIBUTES_SQL, {**q.params(threshold, min_slow), **literal})
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
