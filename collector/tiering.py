"""Retention tiers: the job that decides settled traces and copies the kept ones.

Every span stays in the hot tables (``spans``, ``spans_by_trace``, ``trace_index``)
for the hot window. Once a trace has settled (no span ending within ``settle_s``) it
is decided once, inside ClickHouse: kept when any span is an error, when a span is
slower than the latency threshold of an SLO covering it, when the trace is slower
than its root operation's p99 over that hour, when a chart, edge page or alert showed
it as an example, when a user pinned it, or when its trace-id hash falls in the
deterministic baseline. Kept traces' spans are then copied into the kept tier and the
decision marked moved. The SQL of each step is in ``tracestore/tiering_queries.py``;
this module walks the chunks (one hot day and one bucket of trace-id hashes at a
time) under the job's leadership, and drops a hot day once it has left the hot window
and no kept trace of it is still waiting to be moved.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from collector.retention import HOT_TABLES, drop_day
from runtime.coordination import Leadership, SoleLeader
from tracestore import tiering_queries as tq
from tracestore.store import Store, StoreError
from tracestore.tiering_queries import DAY_S, NS_PER_S, SKEW_S, LatencyRule

log = logging.getLogger(__name__)

JOB = "tiering"  # the election the job stands in


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

    @property
    def selection(self) -> tq.Selection:
        return tq.Selection(self.keep_baseline, self.buckets, self.rules)


def run_chunk(
    store: Store,
    day_s: int,
    bucket: int,
    config: TieringConfig,
    now_s: float,
    asked_only: bool = False,
) -> None:
    """Decide, copy and mark one chunk; each step safe to repeat."""
    settled_before_ns = int((now_s - config.settle_s) * NS_PER_S)
    tq.decide(store, day_s, bucket, config.selection, settled_before_ns, time.time_ns(), asked_only)
    tq.move(store, day_s, bucket, config.buckets)
    tq.mark_moved(store, day_s, bucket, config.buckets, time.time_ns())


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
    days = tq.hot_days(store)
    settled.intersection_update(days)
    for day_s in days:
        for bucket in range(config.buckets):
            if not leader.check():
                run.complete = False
                return run
            run_chunk(store, day_s, bucket, config, now_s, asked_only=day_s in settled)
            run.chunks += 1
        if now_s - config.settle_s >= day_s + DAY_S + SKEW_S:
            settled.add(day_s)
        if day_s + DAY_S > now_s - config.hot_retention_s or tq.waiting_count(store, day_s):
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
