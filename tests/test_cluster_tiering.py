"""Retention tiering on the 2-shard cluster (ZooKeeper, two clickhouse-server shards).

Decisions and the move run through the Distributed tables from one node; every
table is sharded by trace id, so a kept trace's spans land on the shard that
holds its hot spans, and a re-run copies nothing twice. The hot day is dropped
on every shard (``ON CLUSTER``) once it leaves the hot window.
"""

from __future__ import annotations

import time

import pytest

from collector import tiering
from collector.tiering import TieringConfig
from tests.test_cluster import CLUSTER, cluster  # noqa: F401 - the module's cluster fixture
from tests.test_tiering import DAY_S, Traffic, _day_s
from tracestore import tiering_queries as tq
from tracestore.migrate import migrate
from tracestore.store import open_store
from tracestore.tier_queries import missing_trace_message
from tracestore.trace_queries import load_trace

DATABASE = "st_tiering"


def _poll(read, want, seconds: float = 90.0):
    deadline = time.monotonic() + seconds
    while True:
        got = read()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


@pytest.mark.slow
def test_tiering_on_two_shards(cluster):  # noqa: F811
    first, second = cluster
    writer = open_store(first.url(DATABASE))
    migrate(writer, cluster=CLUSTER)
    day = _day_s(1)
    traffic = Traffic(writer, day)
    reader = open_store(second.url(DATABASE))
    count = lambda table: reader.query(f"SELECT count() FROM {table}")[0][0]  # noqa: E731
    assert _poll(lambda: count("spans_by_trace"), traffic.spans) == traffic.spans

    config = TieringConfig(keep_baseline=0.05, buckets=2)
    now_s = day + DAY_S + 3600
    tiering.run_tiering(writer, config, now_s=now_s)
    decided = lambda: count(f"(SELECT * FROM {tq.latest_decisions_sql('1')})")  # noqa: E731
    assert _poll(decided, len(traffic.normal) + 3) == len(traffic.normal) + 3
    kept = {
        str(r[0])
        for r in reader.query(
            f"SELECT trace_id FROM {tq.latest_decisions_sql('1')} WHERE d_kept = 1"
        )
    }
    assert Traffic.tid(traffic.error) in kept and Traffic.tid(traffic.slow) in kept
    # Inserts into Distributed tables reach the shards asynchronously: decisions that
    # had not arrived when the first run copied are copied by the next run.
    tiering.run_tiering(writer, config, now_s=now_s)
    assert _poll(lambda: count("spans_kept"), 2 * len(kept)) == 2 * len(kept)
    tiering.run_tiering(writer, config, now_s=now_s)  # again: nothing copied twice
    time.sleep(2)
    assert _poll(lambda: count("spans_kept"), 2 * len(kept)) == 2 * len(kept)

    # Every kept span sits on the shard that holds the trace's hot spans.
    for server in cluster:
        local = open_store(server.url(DATABASE))
        hot = {str(r[0]) for r in local.query("SELECT DISTINCT trace_id FROM spans_by_trace_local")}
        moved = {str(r[0]) for r in local.query("SELECT DISTINCT trace_id FROM spans_kept_local")}
        assert moved <= hot

    # Past the hot window the day's hot partitions go on every shard; kept traces stay.
    run = tiering.run_tiering(writer, config, now_s=day + 2 * DAY_S + 60)
    assert len(run.dropped_days) == 1
    for server in cluster:
        local = open_store(server.url(DATABASE))
        for table in ("spans_local", "spans_by_trace_local", "trace_index_local"):
            assert local.query(f"SELECT count() FROM {table}") == [(0,)], (server, table)
    trace = load_trace(reader, Traffic.tid(traffic.error), max_spans=10)
    assert trace is not None and len(trace.spans) == 2
    gone = Traffic.tid(next(t for t in traffic.normal if Traffic.tid(t) not in kept))
    assert load_trace(reader, gone, max_spans=10) is None
    assert "baseline not selected" in (missing_trace_message(reader, gone) or "")
