"""Retention for servers without TTL (ClickHouse before 19.6): drop old day partitions.

Every table here is partitioned by day, so a day's partition id is ``YYYYMMDD``;
ids are read from ``system.parts`` and checked against that pattern before they
go into ``ALTER TABLE … DROP PARTITION ID``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading

from runtime.coordination import Leadership, SoleLeader
from tracestore.migrate import Features, Retention
from tracestore.store import Store, StoreError, check_identifier

log = logging.getLogger(__name__)
JOB = "retention"  # the election the job stands in
_DAY_ID = re.compile(r"^\d{8}$")
FAMILIES = {
    "spans": "spans",
    "spans_by_trace": "spans",
    "trace_index": "spans",
    "metric_points": "metrics",
    "alert_events": "alerts",
    "alert_notifications": "alerts",
    "alert_deliveries": "alerts",
    "spans_kept": "kept",
    "trace_decisions": "kept",
    "trace_pins": "kept",
}
# With retention tiering on, these leave after the hot window (collector/tiering.py).
HOT_TABLES = ("spans", "spans_by_trace", "trace_index")
ROLLUP_SUFFIXES = ("_minute", "_hour")


def family(table: str) -> str | None:
    if table in FAMILIES:
        return FAMILIES[table]
    return "rollups" if table.endswith(ROLLUP_SUFFIXES) else None


def expired_partitions(store: Store, retention: Retention, today: dt.date) -> list[tuple[str, str]]:
    """(table, partition id) pairs whose whole day is older than the table's retention."""
    rows = store.query(
        "SELECT DISTINCT table, partition_id FROM system.parts WHERE database = %(db)s AND active",
        {"db": store.database},
    )
    expired = []
    for table, partition_id in rows:
        kind = family(table)
        if kind is None or not _DAY_ID.match(partition_id):
            continue
        day = dt.datetime.strptime(partition_id, "%Y%m%d").date()
        if day < today - dt.timedelta(days=retention.days(kind)):
            expired.append((table, partition_id))
    return sorted(expired)


_DISTRIBUTED = re.compile(r"ENGINE = Distributed\('?(\w+)'?, '?(\w+)'?, '?(\w+)'?")


def partitioned_table(store: Store, table: str) -> str:
    """What ``ALTER … DROP PARTITION`` takes for ``table``: itself, or for a Distributed
    table (the cluster form) its local table on every shard, ``db.t_local ON CLUSTER c``."""
    table = check_identifier(table)
    [(create,)] = store.query(f"SHOW CREATE TABLE {table}")
    found = _DISTRIBUTED.search(str(create))
    if found is None:
        return table
    cluster, database, local = (check_identifier(name) for name in found.groups())
    return f"{database}.{local} ON CLUSTER {cluster}"


def drop_day(store: Store, tables: tuple[str, ...], day: dt.date) -> None:
    """Drop one day's partition of each table (a no-op where the day is absent)."""
    for table in tables:
        target = partitioned_table(store, table)
        store.execute(f"ALTER TABLE {target} DROP PARTITION ID '{day:%Y%m%d}'")


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
        store.execute(f"ALTER TABLE {check_identifier(table)} DROP PARTITION ID '{partition_id}'")
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
