"""Retention for servers without TTL (ClickHouse before 19.6): drop old day partitions.

Every table is partitioned by day (partition id ``YYYYMMDD``); this job decides which
days have expired per table family, and ``tracestore/retention_queries.py`` lists and
drops the partitions.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from runtime.coordination import Leadership, SoleLeader
from tracestore.migrate import Features, Retention
from tracestore.retention_queries import (
    DAY_ID,
    active_partitions,
    drop_partition,
    retention_families,
)
from tracestore.store import Store, StoreError

log = logging.getLogger(__name__)
JOB = "retention"  # the election the job stands in
# With retention tiering on, these leave after the hot window (collector/tiering.py).
HOT_TABLES = ("spans", "spans_by_trace", "trace_index")


def family(table: str) -> str | None:
    """The retention family of ``table``, None for tables kept for ever."""
    return retention_families().get(table)


def expired_partitions(store: Store, retention: Retention, today: dt.date) -> list[tuple[str, str]]:
    """(table, partition id) pairs whose whole day is older than the table's retention."""
    expired = []
    for table, partition_id in active_partitions(store):
        kind = family(table)
        if kind is None or not DAY_ID.match(partition_id):
            continue
        day = dt.datetime.strptime(partition_id, "%Y%m%d").date()
        if day < today - dt.timedelta(days=retention.days(kind)):
            expired.append((table, partition_id))
    return sorted(expired)


def drop_day(store: Store, tables: tuple[str, ...], day: dt.date) -> None:
    """Drop one day's partition of each table (a no-op where the day is absent)."""
    for table in tables:
        drop_partition(store, table, f"{day:%Y%m%d}")


def drop_expired(
    store: Store,
    retention: Retention,
    today: dt.date | None = None,
    leadership: Leadership | None = None,
) -> list:
    """Drop every expired day partition while leading the job; returns what was dropped."""
    leader = leadership or SoleLeader(JOB)
    today = today or dt.datetime.now(dt.UTC).date()
    dropped = []
    for table, partition_id in expired_partitions(store, retention, today):
        if not leader.check():
            break
        drop_partition(store, table, partition_id)
        log.info("retention: dropped %s partition %s", table, partition_id)
        dropped.append((table, partition_id))
    return dropped


def start_retention_job(
    store: Store,
    retention: Retention,
    stop: threading.Event,
    interval: float = 3600.0,
    leadership: Leadership | None = None,
) -> threading.Thread | None:
    """Run ``drop_expired`` every ``interval`` seconds, only where TTL is missing."""
    if Features.for_version(store.server_version).ttl:
        return None

    def loop() -> None:
        while True:
            try:
                drop_expired(store, retention, leadership=leadership)
            except StoreError as exc:
                log.warning("retention job: %s", exc)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=loop, name="collector-retention", daemon=True)
    thread.start()
    return thread
