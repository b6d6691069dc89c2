"""Analytics queries over 10,000,000 spans (24 h, 30 services) in a real clickhouse-server.

Spans are generated inside the server (``INSERT … SELECT FROM numbers``) in
blocks moving forward in time, so the materialized views fill the minute and
hour latency rollups as they would live. Each call is a client span in the
caller and a server span in the callee; calls to the three uninstrumented
peers (a database, a broker, an external host) are a client span plus an
internal span. The edge job then backfills 24 h of edges (as the collector's
job would have, minute by minute), and the rollups are merged (``OPTIMIZE``),
as background merges leave them.

Timed (median of the runs, through the dashboard's query functions):
``latency_24h_p50_ms`` one service's p50/p95/p99 series, 24 h at 1-minute steps;
``graph_24h_ms`` the service graph for 24 h; ``cohort_24h_ms`` the slow-cohort
analysis of one operation over 24 h (threshold, cohorts, attribution, attributes);
``trace_compare_ms`` two 1,000-span traces loaded and aligned as ``/api/v1/compare``
does (``trace_align_ms`` the alignment alone); ``services_table_24h_ms`` the
services table for 24 h (last line). (Ranges over six hours are read at whole
hours, see ``TimeRange.summary``.)
Usage: ``python bench/analytics.py [--quick] [--clickhouse URL]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.edge_rollup import (  # noqa: E402
    EdgeJobConfig,
    backfill_edges,
    closed_window,
    compute_edges,
)
from dashboard.compare_routes import compare_traces, load_pair  # noqa: E402
from dashboard.trace_compare import compare  # noqa: E402
from tests.support import trace_generator as gen  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402
from tracestore import analytics_queries as aq  # noqa: E402
from tracestore.cohort_queries import CohortQuery, analyze_cohorts  # noqa: E402
from tracestore.migrate import migrate  # noqa: E402
from tracestore.store import Store, open_store  # noqa: E402

SERVICES = 30
ROLLUPS = (
    "latency_minute",
    "latency_hour",
    "service_buckets_minute",
    "service_buckets_hour",
    "edges_minute",
    "edges_hour",
)
DAY = 86_400
PEERS = (
    ("db.system", "postgresql"),
    ("messaging.system", "kafka"),
    ("server.address", "api.example.com"),
)


def topology() -> list[tuple[str, str, str, str]]:
    """(parent, child, attr key, attr value): a tree over 30 services, cross calls, 3 peers."""
    name = [f"svc-{i:02d}" for i in range(SERVICES)]
    calls = [
        (name[(i - 1) // 2], name[i], "server.address", f"{name[i]}:8080") for i in range(1, 30)
    ]
    calls += [(name[i], name[i + 9], "server.address", f"{name[i + 9]}:8080") for i in (3, 5, 8)]
    calls += [(name[27 - k], "", key, value) for k, (key, value) in enumerate(PEERS)]
    return calls


def _array(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "") + "'" for v in values) + "]"


def insert_sql(first: int, count: int, total: int, first_ns: int, span_ns: int) -> str:
    """Spans ``first`` .. ``first + count`` of ``total``: span 2k is call k's client span."""
    calls = topology()
    parents = _array([c[0] for c in calls])
    children = _array([c[1] for c in calls])
    keys = _array([c[2] for c in calls])
    values = _array([c[3] for c in calls])
    step_ns = span_ns // (total // 2)
    jitter = "(rand({}) / 4294967295.0 + rand({}) / 4294967295.0 + rand({}) / 4294967295.0 - 1.5)"
    return f"""
INSERT INTO spans (ts, start_ns, duration_ns, trace_id, span_id, parent_span_id, service_name,
    span_name, span_kind, status_code, attr_keys, attr_types, attr_values,
    resource_attr_keys, resource_attr_types, resource_attr_values)
SELECT toDateTime(intDiv(s_start, 1000000000)), s_start, s_duration, s_trace, s_id, s_parent,
    s_service, s_name, s_kind, s_status, s_keys, arrayMap(k -> toUInt8(1), s_keys), s_values,
    ['k8s.namespace.name'], [toUInt8(1)], [if(s_service < 'svc-10', 'edge', 'core')]
FROM (
    SELECT
        number + {first} AS i,
        intDiv(i, 2) AS c,
        i % 2 AS side,
        c % {len(calls)} + 1 AS e,
        {children}[e] = '' AS virtual,
        toUInt64({first_ns} + c * {step_ns}) AS s_start,
        toUInt64(4000000 * exp(0.9 * {jitter.format(1, 2, 3)} * 2) * (1 + e / 10)) AS s_duration,
        concat('t', toString(intDiv(c, 8))) AS s_trace,
        toString(i) AS s_id,
        if(side = 1, toString(i - 1), '') AS s_parent,
        if(side = 0 OR virtual, {parents}[e], {children}[e]) AS s_service,
        multiIf(side = 0, concat('call ', {values}[e]), virtual, 'work',
            concat('GET /op', toString(c % 5))) AS s_name,
        toUInt8(multiIf(side = 0, 3, virtual, 1, 2)) AS s_kind,
        toUInt8(if(rand(4) % 100 < 2, 2, 0)) AS s_status,
        if(side = 0, [{keys}[e]], emptyArrayString()) AS s_keys,
        if(side = 0, [{values}[e]], emptyArrayString()) AS s_values
    FROM numbers({count})
)
"""


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``runs`` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def load(store: Store, spans: int, block: int) -> tuple[int, int]:
    """Insert ``spans`` spans over the 24 h ending now; returns the range (seconds)."""
    end_s = int(time.time()) // 60 * 60
    start_s = end_s - DAY
    started = time.perf_counter()
    for first in range(0, spans, block):
        sql = insert_sql(first, min(block, spans - first), spans, start_s * 10**9, DAY * 10**9)
        store.execute(sql)
    seconds = time.perf_counter() - started
    print(f"spans={spans}")
    print(f"insert_spans_per_s={spans / seconds:.0f}")
    started = time.perf_counter()
    backfill_edges(store, start_s, end_s)
    print(f"edge_backfill_24h_s={time.perf_counter() - started:.1f}")
    for table in ROLLUPS:
        store.execute(f"OPTIMIZE TABLE {table} FINAL")
    return start_s, end_s


def compare_pair(store: Store, start_s: int) -> tuple[str, str]:
    """Two 1,000-span traces of one shape; in B every 50th span takes twice as long."""
    a = gen.big(gen.Ids(101), 1000, start_ns=start_s * 10**9)
    b = gen.big(gen.Ids(102), 1000, start_ns=(start_s + 1) * 10**9)
    for span in b[::50]:
        span.duration_ns *= 2
    gen.insert(store, a + b)
    return a[0].trace_id, b[0].trace_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 spans, fewer runs")
    parser.add_argument("--clickhouse", help="an existing server (default: start one)")
    parser.add_argument("--spans", type=int, default=None)
    args = parser.parse_args()
    spans = args.spans or (200_000 if args.quick else 10_000_000)
    runs = 5 if args.quick else 15
    server = None
    url = args.clickhouse
    if url is None:
        server = ClickHouseServer()
        server.start()
        url = server.url(database="bench_analytics")
    try:
        store = open_store(url)  # an empty database: the data is added to what is there
        migrate(store)
        start_s, end_s = load(store, spans, block=1_000_000)
        window = closed_window(end_s + 90, EdgeJobConfig())
        print(f"edge_job_run_ms={timed(lambda: compute_edges(store, *window), runs):.1f}")
        g = aq.graph(store, start_s, end_s)
        print(f"graph_nodes={len(g['nodes'])}")
        print(f"graph_edges={len(g['edges'])}")
        series = lambda: aq.latency_series(  # noqa: E731
            store, "svc-03", start_s, end_s, 60, (0.5, 0.95, 0.99)
        )
        print(f"latency_points={len(series()['points'])}")
        print(f"latency_24h_p50_ms={timed(series, runs):.1f}")
        print(f"graph_24h_ms={timed(lambda: aq.graph(store, start_s, end_s), runs):.1f}")
        cohort = lambda: analyze_cohorts(  # noqa: E731
            store, CohortQuery("svc-03", "GET /op2", start_s, end_s)
        )
        found = cohort()
        print(f"cohort_traces={found['slow']['traces'] + found['rest']['traces']}")
        print(f"cohort_24h_ms={timed(cohort, runs):.1f}")
        a, b = compare_pair(store, end_s - 600)
        print(f"trace_compare_rows={len(compare_traces(store, a, b, 10_000)['rows'])}")
        print(f"trace_compare_ms={timed(lambda: compare_traces(store, a, b, 10_000), runs):.1f}")
        pair = load_pair(store, a, b, 10_000)
        align = lambda: compare(pair[0].spans, pair[1].spans)  # noqa: E731
        print(f"trace_align_ms={timed(align, runs):.1f}")
        table = lambda: aq.services(store, start_s, end_s)  # noqa: E731
        print(f"services_table_24h_ms={timed(table, runs):.1f}")
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
