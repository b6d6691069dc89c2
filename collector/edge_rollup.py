"""Service-to-service edges per minute, computed over closed windows by a periodic job.

What an edge is and the SQL that writes one live in ``tracestore/edge_queries.py``.
A child may arrive after its parent, so each run recomputes the last few closed
minutes (``minute + 60 s + grace <= now``) and writes every edge of each minute with
the run's version, then rebuilds the hours holding those minutes from the latest
minute rows. Readers keep only the highest version per minute or hour, so repeated,
overlapping and concurrent runs count every call exactly once, and a child that
arrives late turns a virtual edge into a real one at the next run. With a
coordinator only the elected collector runs it (one scan of spans per run, not one
per replica); it checks before each write.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from runtime.coordination import Leadership, SoleLeader
from tracestore.edge_queries import write_edge_hours, write_edge_minutes
from tracestore.store import Store, StoreError

log = logging.getLogger(__name__)

JOB = "edge-rollup"  # the election the job stands in


def compute_edges(
    store: Store,
    start_s: int,
    end_s: int,
    version: int | None = None,
    leadership: Leadership | None = None,
) -> int | None:
    """Recompute the edges of the minutes in [start_s, end_s), then of the hours holding them.

    Hours are rebuilt after the minutes are written, so the latest hour run has
    seen every minute run that finished before it started. Returns the minutes'
    version, or None when ``leadership`` was lost before a write.
    """
    leader = leadership or SoleLeader(JOB)
    start_s, end_s = start_s - start_s % 60, end_s - end_s % 60
    version = time.time_ns() if version is None else version
    if not leader.check():
        return None
    write_edge_minutes(store, start_s, end_s, version)
    first_hour, last_hour = start_s // 3600 * 3600, -(-end_s // 3600) * 3600
    if not leader.check():
        return None
    write_edge_hours(store, first_hour, last_hour, max(time.time_ns(), version + 1))
    return version


def backfill_edges(store: Store, start_s: int, end_s: int, chunk_s: int = 3600) -> None:
    """Compute edges for a long range in chunks (after an import, or in the benchmark)."""
    for chunk_start in range(start_s - start_s % 60, end_s, chunk_s):
        compute_edges(store, chunk_start, min(chunk_start + chunk_s, end_s))


@dataclass(frozen=True)
class EdgeJobConfig:
    """When minutes are closed and how far back each run recomputes."""

    interval_s: float = 30.0
    grace_s: int = 30
    lookback_s: int = 600


def closed_window(now_s: float, config: EdgeJobConfig) -> tuple[int, int]:
    """The minutes a run at ``now_s`` recomputes: closed ones within the lookback."""
    end = int(now_s - config.grace_s) // 60 * 60
    return end - config.lookback_s, end


def run_edge_job(
    store: Store,
    stop: threading.Event,
    config: EdgeJobConfig,
    leadership: Leadership | None = None,
) -> None:
    """Recompute recent closed minutes every ``interval_s`` until ``stop`` is set, while
    this process leads the job (every run, without a coordinator)."""
    while not stop.is_set():
        start, end = closed_window(time.time(), config)
        try:
            compute_edges(store, start, end, leadership=leadership)
        except StoreError as exc:  # storage down or schema not migrated yet: try again later
            log.warning("edge rollup failed: %s", exc)
        stop.wait(config.interval_s)
