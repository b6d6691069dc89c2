"""Retention tiers: decide which settled traces to keep, and copy them to the kept tier.

Every span stays in the hot tables (``spans``, ``spans_by_trace``, ``trace_index``)
for the hot window. Once a trace has settled (no span ending within ``settle_s``) it
is decided once, inside ClickHouse, by one ``INSERT … SELECT`` into
``trace_decisions``: kept when any span is an error, when a span is slower than the
latency threshold of an SLO covering it, when the trace is slower than its root
operation's p99 over that hour (from ``latency_minute``), when a user pinned it, or
when its trace-id hash falls in the deterministic baseline. Kept traces' spans are
then copied ``INSERT … SELECT`` into ``spans_kept`` and the decision marked moved.

Work goes in bounded chunks: one hot day and one bucket of trace-id hashes at a
time. Every step is idempotent, so a run killed mid-chunk is finished by the next:
decided traces are not decided again (unless pinned after a not-kept decision),
the copy skips spans already in the kept tier and only then is the decision marked
moved. A hot day is dropped only once it has left the hot window and no kept trace
of it is still waiting to be moved. Only integers are formatted into the SQL text;
service and operation names of SLO rules go in as parameters.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.retention import HOT_TABLES, drop_day
from runtime.coordination import Leadership, SoleLeader
from tracestore.store import Store, StoreError, substitute

log = logging.getLogger(__name__)

JOB = "tiering"  # the election the job stands in
DAY_S = 86_400
NS_PER_S = 1_000_000_000
# Spans of a trace may start a little before its first span's day (clock skew) and run
# into the next day; the copy reaches this far on either side of the decided day.
SKEW_S = 3_600
NOT_SELECTED = "baseline not selected"
REASONS = ("error", "slo", "p99", "pinned", "baseline")


@dataclass(frozen=True)
class LatencyRule:
    """An SLO's latency threshold and the spans it covers (its service and filters)."""

    service: str
    threshold_ns: int
    operation: str | None = None
    route: str | None = None
    span_kind: int | None = None


@dataclass(frozen=True)
class TieringConfig:
    """Windows and selection of retention tiering; each default written once, here."""

    hot_retention_s: float = 24 * 3600.0
    keep_baseline: float = 0.05  # fraction of traces kept regardless, by trace-id hash
    settle_s: float = 300.0  # a trace with no span ending this long is decided
    buckets: int = 16  # chunks per hot day, by trace-id hash
    interval_s: float = 300.0
    rules: tuple[LatencyRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_baseline <= 1.0:
            raise ValueError(f"keep baseline {self.keep_baseline} is not within 0..1")
        if self.hot_retention_s <= self.settle_s:
            raise ValueError("the hot window must be longer than the settle time")
        if self.buckets < 1:
            raise ValueError("buckets must be at least 1")


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
    config: TieringConfig,
    settled_before_ns: int,
    version: int,
    pinned_only: bool = False,
) -> tuple[str, dict[str, Any]]:
    """INSERT … SELECT deciding the settled, undecided traces that started in one chunk.

    ``pinned_only`` looks at pinned traces alone (by the index's key, cheap): for a
    day whose every trace was decided already, only a new pin can change anything.
    """
    day_s, end_s = int(day_s), int(day_s) + DAY_S
    chunk = _bucket(bucket, config.buckets)
    if pinned_only:
        chunk += " AND trace_id IN (SELECT trace_id FROM trace_pins)"
    params: dict[str, Any] = {}
    slow = rules_condition(config.rules, params)
    slo = (
        f"trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE ts >= toDateTime({day_s - SKEW_S})"
        f" AND ts < toDateTime({end_s + DAY_S}) AND {chunk} AND ({slow}))"
        if config.rules
        else "0"
    )
    decided = (
        # The day before too: a trace that ran past midnight is decided with its first day.
        f"SELECT trace_id FROM trace_decisions WHERE day >= toDate(toDateTime({day_s - DAY_S}))"
        f" AND day <= toDate(toDateTime({day_s})) AND {chunk}"
        " AND (kept = 1 OR trace_id NOT IN (SELECT trace_id FROM trace_pins))"
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
        if(trace_id IN (SELECT trace_id FROM trace_pins), 'pinned', ''),
        if(cityHash64(trace_id) < {_baseline_limit(config.keep_baseline)}, 'baseline', '')
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


def hot_days(store: Store) -> list[int]:
    """Start seconds (UTC) of the days present in the hot trace index, oldest first."""
    rows = store.query("SELECT DISTINCT toUInt32(toDateTime(day)) FROM trace_index")
    return sorted(int(r[0]) for r in rows)


def waiting_count(store: Store, day_s: int) -> int:
    """Kept traces of a hot day not yet copied into the kept tier."""
    rows = store.query(f"SELECT count() FROM ({_waiting(day_s, '1')})")
    return int(rows[0][0])


def run_chunk(
    store: Store,
    day_s: int,
    bucket: int,
    config: TieringConfig,
    now_s: float,
    pinned_only: bool = False,
) -> None:
    """Decide, copy and mark one chunk; each step safe to repeat."""
    settled_before_ns = int((now_s - config.settle_s) * NS_PER_S)
    version = time.time_ns()
    sql, params = decide_sql(day_s, bucket, config, settled_before_ns, version, pinned_only)
    store.execute(substitute(sql, params) if params else sql)
    store.execute(move_sql(day_s, bucket, config.buckets))
    store.execute(mark_moved_sql(day_s, bucket, config.buckets, time.time_ns()))


@dataclass
class TieringRun:
    """What one run did."""

    chunks: int = 0
    dropped_days: list[str] = field(default_factory=list)
    complete: bool = True  # False when leadership was lost part way


def run_tiering(
    store: Store,
    config: TieringConfig,
    now_s: float | None = None,
    leadership: Leadership | None = None,
    settled_days: set[int] | None = None,
) -> TieringRun:
    """Decide and move every hot day's settled traces, then drop hot days past the window.

    ``settled_days`` (kept by the job between runs) collects the days whose traces
    have all been decided (a run ended past the day's end + ``SKEW_S`` + settle
    time); later runs look only at new pins there instead of scanning the day again.
    """
    leader = leadership or SoleLeader(JOB)
    now_s = time.time() if now_s is None else now_s
    settled = settled_days if settled_days is not None else set()
    run = TieringRun()
    days = hot_days(store)
    settled.intersection_update(days)
    for day_s in days:
        for bucket in range(config.buckets):
            if not leader.check():
                run.complete = False
                return run
            run_chunk(store, day_s, bucket, config, now_s, pinned_only=day_s in settled)
            run.chunks += 1
        if now_s - config.settle_s >= day_s + DAY_S + SKEW_S:
            settled.add(day_s)
        if day_s + DAY_S > now_s - config.hot_retention_s or waiting_count(store, day_s):
            continue
        if not leader.check():
            run.complete = False
            return run
        day = dt.datetime.fromtimestamp(day_s, dt.UTC).date()
        drop_day(store, HOT_TABLES, day)
        run.dropped_days.append(day.isoformat())
    return run


def run_tiering_job(
    store: Store,
    stop: threading.Event,
    config: TieringConfig,
    leadership: Leadership | None = None,
) -> None:
    """Run ``run_tiering`` every ``interval_s`` until ``stop`` is set, while leading the job."""
    settled_days: set[int] = set()
    while not stop.is_set():
        try:
            done = run_tiering(store, config, leadership=leadership, settled_days=settled_days)
            if done.dropped_days:
                log.info("tiering: hot days dropped %s", done.dropped_days)
        except StoreError as exc:  # storage down or schema not migrated yet: try again later
            log.warning("tiering failed: %s", exc)
        stop.wait(config.interval_s)


def start_tiering_job(
    store: Store,
    stop: threading.Event,
    config: TieringConfig,
    leadership: Leadership | None = None,
) -> threading.Thread:
    """Start ``run_tiering_job`` on a daemon thread; it exits when ``stop`` is set."""
    thread = threading.Thread(
        target=run_tiering_job,
        args=(store, stop, config, leadership),
        name="retention-tiering",
        daemon=True,
    )
    thread.start()
    return thread
