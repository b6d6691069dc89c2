"""Retention tiering over a day of spans in a real clickhouse-server.

One UTC day (yesterday) of traces is generated inside the server (``INSERT … SELECT
FROM numbers``), 10 spans per trace: a root server span and nine calls across 20
services. 1 % of traces carry an error span; root latencies are log-normal with a
tail (1 % of traces ten times slower); an SLO covers ``svc-01``'s server spans at
a 250 ms threshold. Edges are backfilled as the collector's job would have.
Then the tiering job runs over the day (decide, move) and, its hot window over,
drops the day's hot partitions.

Printed: ``interesting_kept_ratio`` error and SLO-breaching traces (found from the
spans, independently of the decision) that the kept tier holds / present (target
1.0); ``kept_bytes_ratio`` compressed bytes of the kept tier (spans_kept +
trace_decisions) / the hot tier (spans + spans_by_trace + trace_index) (target
≤ 0.1 at the default 5 % baseline); bytes per span per tier; ``tiering_s_per_hour_of_data``
the decide-and-move run's seconds / 24 (target ≤ 10); and last
``analytics_unchanged`` (1 when the 24 h latency percentiles, the services table and
the service graph are identical before and after the hot tier is dropped).
Usage: ``python bench/retention.py [--quick] [--spans N] [--clickhouse URL]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector import tiering  # noqa: E402
from collector.edge_rollup import backfill_edges  # noqa: E402
from collector.tiering import LatencyRule, TieringConfig  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402
from tracestore import analytics_queries as aq  # noqa: E402
from tracestore.migrate import migrate  # noqa: E402
from tracestore.store import Store, open_store  # noqa: E402
from tracestore.tiering_queries import latest_decisions_sql  # noqa: E402

DAY = 86_400
SPANS_PER_TRACE = 10
SLO_SERVICE, SLO_THRESHOLD_NS = "svc-01", 250_000_000
HOT = ("spans", "spans_by_trace", "trace_index")
KEPT = ("spans_kept", "trace_decisions")


def insert_sql(first_trace: int, traces: int, total_traces: int, day_s: int) -> str:
    """Traces ``first_trace`` .. ``+ traces`` of ``total_traces`` spread over the day."""
    step_ns = DAY * 10**9 // total_traces
    jitter = "(rand(1) / 4294967295.0 + rand(2) / 4294967295.0 + rand(3) / 4294967295.0 - 1.5)"
    return f"""
INSERT INTO spans (ts, start_ns, duration_ns, trace_id, span_id, parent_span_id, service_name,
    span_name, span_kind, status_code, attr_keys, attr_types, attr_values,
    resource_attr_keys, resource_attr_types, resource_attr_values)
SELECT toDateTime(intDiv(s_start, 1000000000)), s_start, s_duration, s_trace, s_id, s_parent,
    s_service, s_name, s_kind, s_status, ['http.route'], [toUInt8(1)], [s_name],
    ['k8s.namespace.name'], [toUInt8(1)], ['prod']
FROM (
    SELECT
        intDiv(number, {SPANS_PER_TRACE}) + {first_trace} AS k,
        number % {SPANS_PER_TRACE} AS j,
        lower(hex(MD5(toString(k)))) AS s_trace,
        substring(lower(hex(MD5(concat(toString(k), '-', toString(j))))), 1, 16) AS s_id,
        if(j = 0, '', substring(lower(hex(MD5(concat(toString(k), '-0')))), 1, 16)) AS s_parent,
        modulo(cityHash64(k, 'tail'), 100) = 0 AS tail,
        modulo(cityHash64(k, 'error'), 100) = 0 AS failed,
        toUInt64({day_s * 10**9} + k * {step_ns}) AS root_start,
        toUInt64(40000000 * exp(0.8 * {jitter} * 2) * if(tail, 10, 1)) AS root_duration,
        toUInt64(root_start + if(j = 0, 0, 1000000 + j * 100000)) AS s_start,
        toUInt64(if(j = 0, root_duration, intDiv(root_duration, 2 + j))) AS s_duration,
        if(j = 0, k % 10, (k + j) % 20) AS n,
        concat('svc-', if(n < 10, '0', ''), toString(n)) AS s_service,
        if(j = 0, concat('GET /op', toString(k % 5)), concat('call ', toString(j))) AS s_name,
        toUInt8(if(j = 0 OR j % 2 = 0, 2, 3)) AS s_kind,
        toUInt8(if(failed AND j = 9, 2, 0)) AS s_status
    FROM numbers({traces * SPANS_PER_TRACE})
)
"""


def compressed_bytes(store: Store, tables: tuple[str, ...]) -> int:
    rows = store.query(
        "SELECT sum(data_compressed_bytes) FROM system.parts "
        "WHERE database = %(db)s AND active AND table IN %(t)s",
        {"db": store.database, "t": tables},
    )
    return int(rows[0][0] or 0)


def interesting(store: Store) -> set[str]:
    """Error and SLO-breaching traces, straight from the spans."""
    rows = store.query(
        "SELECT DISTINCT trace_id FROM spans WHERE status_code = 2 OR "
        "(service_name = %(s)s AND span_kind = 2 AND duration_ns > %(t)s)",
        {"s": SLO_SERVICE, "t": SLO_THRESHOLD_NS},
    )
    return {str(r[0]) for r in rows}


def analytics(store: Store, start_s: int, end_s: int) -> tuple:
    """What must not change when the hot tier goes: percentiles, services table, graph."""
    series = aq.latency_series(store, "svc-03", start_s, end_s, 60, (0.5, 0.95, 0.99))
    return (
        repr(series),
        repr(aq.services(store, start_s, end_s)),
        repr(aq.graph(store, start_s, end_s)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 spans")
    parser.add_argument("--spans", type=int, default=None, help="default 10,000,000")
    parser.add_argument("--clickhouse", help="an existing server (default: start one)")
    args = parser.parse_args()
    spans = args.spans or (200_000 if args.quick else 10_000_000)
    traces = spans // SPANS_PER_TRACE
    server = None
    url = args.clickhouse
    if url is None:
        server = ClickHouseServer()
        server.start()
        url = server.url(database="bench_retention")
    try:
        store = open_store(url)
        migrate(store)
        day_s = (int(time.time()) // DAY - 1) * DAY
        block = 100_000
        started = time.perf_counter()
        for first in range(0, traces, block):
            store.execute(insert_sql(first, min(block, traces - first), traces, day_s))
        print(f"spans={traces * SPANS_PER_TRACE}")
        print(f"insert_s={time.perf_counter() - started:.1f}")
        backfill_edges(store, day_s, day_s + DAY)
        before = analytics(store, day_s, day_s + DAY)
        present = interesting(store)
        hot_bytes = compressed_bytes(store, HOT)

        rules = (LatencyRule(service=SLO_SERVICE, threshold_ns=SLO_THRESHOLD_NS, span_kind=2),)
        config = TieringConfig(rules=rules)
        started = time.perf_counter()
        run = tiering.run_tiering(store, config, now_s=day_s + DAY + config.settle_s + 60)
        seconds = time.perf_counter() - started
        assert run.complete and not run.dropped_days
        chunks = run.chunks
        kept_ids = {str(r[0]) for r in store.query("SELECT DISTINCT trace_id FROM spans_kept")}
        kept_bytes = compressed_bytes(store, KEPT)
        kept_spans = int(store.query("SELECT count() FROM spans_kept")[0][0])
        decided = store.query(
            "SELECT countIf(d_kept = 1), count() FROM " + latest_decisions_sql("1")
        )[0]

        later = day_s + DAY + config.hot_retention_s + 60
        run = tiering.run_tiering(store, config, now_s=later)
        assert run.dropped_days, "the hot day was not dropped"
        after = analytics(store, day_s, day_s + DAY)

        print(f"traces={traces}")
        print(f"kept_traces={int(decided[0])} of decided={int(decided[1])}")
        print(f"interesting_traces={len(present)}")
        print(f"hot_bytes_per_span={hot_bytes / (traces * SPANS_PER_TRACE):.1f}")
        print(f"kept_bytes_per_span={kept_bytes / max(kept_spans, 1):.1f}")
        print(f"tiering_chunks={chunks}")
        print(f"interesting_kept_ratio={len(present & kept_ids) / max(len(present), 1):.4f}")
        print(f"kept_bytes_ratio={kept_bytes / hot_bytes:.4f}")
        print(f"tiering_s_per_hour_of_data={seconds / 24:.2f}")
        print(f"analytics_unchanged={int(before == after)}")
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
