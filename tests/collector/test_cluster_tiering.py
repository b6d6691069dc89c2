"""Retention tiering on the 2-shard cluster (ZooKeeper, two clickhouse-server shards).

Decisions and the move run through the Distributed tables from one node; every
table is sharded by trace id, so a kept trace's spans land on the shard that
holds its hot spans, and a re-run copies nothing twice. The hot day is dropped
on every shard (``ON CLUSTER``) once it leaves the hot window. Example traces are
recorded beside their trace (``trace_examples`` is sharded by trace id too), so the
decision reads them shard-locally.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from collector import tiering
from collector.tiering import TieringConfig
from tests.support.clickhouse_cluster import CLUSTER
from tests.support.polling import eventually
from tests.support.tiering_traffic import DAY_S, Traffic, day_start_s
from tracestore import tiering_queries as tq
from tracestore.migrate import migrate
from tracestore.store import open_store
from tracestore.tier_queries import missing_trace_message, pin_trace
from tracestore.trace_queries import load_trace

DATABASE = "st_tiering"
EXAMPLES_DATABASE = "st_tiering_examples"
KILL_DATABASE = "st_tiering_kill"


def _poll(read, want, seconds: float = 90.0):
    """``read()`` once it returns ``want``, or its value after ``seconds`` (callers assert)."""
    with contextlib.suppress(AssertionError):
        eventually(lambda: read() == want, seconds, 0.5, what=f"{want!r}")
    return read()


@pytest.mark.slow
def test_tiering_on_two_shards(cluster):
    first, second = cluster
    writer = open_store(first.url(DATABASE))
    migrate(writer, cluster=CLUSTER)
    day = day_start_s(1)
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


@pytest.mark.slow
def test_examples_kept_on_two_shards(cluster):
    """Examples of a chart, an edge and an alert are recorded through the Distributed
    table (sharded by trace id, beside their trace) and kept with the reason "example";
    a pinned trace is kept with the reason "pinned"; an unreferenced one is not kept."""
    from tests.support.example_traffic import ExampleTraffic
    from tracestore import example_queries as eq

    first, second = cluster
    writer = open_store(first.url(EXAMPLES_DATABASE))
    migrate(writer, cluster=CLUSTER)
    t0 = int(time.time()) // 60 * 60 - 600
    traffic = ExampleTraffic(writer, t0)
    reader = open_store(second.url(EXAMPLES_DATABASE))
    spans = lambda: reader.query("SELECT count() FROM spans")[0][0]  # noqa: E731
    assert _poll(spans, 3 * len(traffic.traces)) == 3 * len(traffic.traces)

    chart = eq.chart_examples(reader, "checkout", t0, t0 + 100)
    edge = eq.edge_examples(reader, "frontend", "checkout", "service", t0 + 100, t0 + 200)
    charge = eq.SpanFilter("checkout", operation="Charge")
    alert = eq.filter_examples(reader, "checkout-charge-slow", charge, t0, t0 + 400)
    assert (chart[0].slowest.trace_id, chart[0].error.trace_id) == (
        traffic.chart,
        traffic.chart_error,
    )
    assert edge.slowest.trace_id == traffic.edge and edge.error is None
    assert (alert.slowest.trace_id, alert.error.trace_id) == (traffic.alert, traffic.alert_error)
    eq.record_examples(writer, "chart", chart)
    eq.record_examples(writer, "edge", [edge])
    eq.record_examples(writer, "alert", [alert])
    pinned = traffic.traces[20][0].trace_id  # "keep this trace", through the Distributed table
    pin_trace(writer, pinned, "cluster")

    config = TieringConfig(keep_baseline=0.0, buckets=2)
    later = time.time() + 2 * DAY_S
    want = {traffic.chart: (1, ["example"]), traffic.edge: (1, ["example"]),
            traffic.alert: (1, ["example"]), traffic.chart_error: (1, ["error", "example"]),
            traffic.alert_error: (1, ["error", "example"]),
            pinned: (1, ["pinned"]), traffic.plain: (0, [tq.NOT_SELECTED])}  # fmt: skip

    def decided() -> dict[str, tuple[int, list[str]]]:
        rows = reader.query(
            f"SELECT trace_id, d_kept, d_reasons FROM {tq.latest_decisions_sql('1')}"
        )
        got = {str(r[0]): (int(r[1]), sorted(r[2])) for r in rows}
        return {t: got.get(t) for t in want}

    tiering.run_tiering(writer, config, now_s=later - DAY_S)  # decide and move, still hot
    assert _poll(decided, want) == want
    tiering.run_tiering(writer, config, now_s=later)  # past the hot window: days dropped
    for trace_id in (traffic.chart, traffic.edge, traffic.alert, pinned):
        trace = load_trace(reader, trace_id, max_spans=10)
        assert trace is not None and len(trace.spans) == 3, trace_id
    assert load_trace(reader, traffic.plain, max_spans=10) is None
    assert "baseline not selected" in (missing_trace_message(reader, traffic.plain) or "")


@pytest.mark.slow
def test_sigkill_mid_move_on_two_shards(cluster):
    """The tiering process killed with SIGKILL mid-move on the cluster; later runs finish
    the job and no span is copied twice on any shard."""
    from tests.support.tiering_traffic import KILL_CONFIG, NORMAL, kill_mid_move

    first, second = cluster
    url = first.url(KILL_DATABASE)
    writer = open_store(url)
    migrate(writer, cluster=CLUSTER)
    day = day_start_s(1)
    traffic = Traffic(writer, day)
    reader = open_store(second.url(KILL_DATABASE))
    spans = lambda: reader.query("SELECT count() FROM spans_by_trace")[0][0]  # noqa: E731
    assert _poll(spans, traffic.spans) == traffic.spans
    now_s = day + DAY_S + 3600
    kill_mid_move(url, writer, now_s)
    config = TieringConfig(**KILL_CONFIG)
    tiering.run_tiering(writer, config, now_s=now_s)
    tiering.run_tiering(writer, config, now_s=now_s)  # decisions that arrived late, if any

    def state() -> tuple[int, int, int, int]:
        rows = reader.query(
            f"SELECT count(), countIf(d_kept = 1), countIf(d_kept = 1 AND d_moved = 0) "
            f"FROM {tq.latest_decisions_sql('1')}"
        )
        decided, kept, waiting = (int(x) for x in rows[0])
        copies = reader.query("SELECT count() - uniqExact(trace_id, span_id) FROM spans_kept")
        return decided, waiting, int(copies[0][0]), kept

    _poll(lambda: state()[:3], (NORMAL + 3, 0, 0))
    decided, waiting, twice, kept = state()
    assert (decided, waiting, twice) == (NORMAL + 3, 0, 0) and kept > NORMAL // 4
    assert reader.query("SELECT count() FROM spans_kept") == [(2 * kept,)]
