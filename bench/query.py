"""Dashboard read paths on a loaded store: trace by id and typical searches.

Starts a real clickhouse-server, loads synthetic traffic (20 spans per trace, 20
services, spread over the last 24 hours) straight into the ``spans`` table in big
columnar blocks (the materialized views fill spans_by_trace, trace_index and the
rollups as in production), then times the dashboard's own query functions:
``load_trace`` for 1,000 random trace ids, and ``search`` for a set of typical
searches. Prints ``name=value`` lines, ``trace_by_id_p99_ms`` last.

    python bench/query.py [--quick] [--spans N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import trace_queries as tq  # noqa: E402
from sidetrace.local_server import ClickHouseServer  # noqa: E402
from sidetrace.migrate import migrate  # noqa: E402
from sidetrace.store import Store, open_store  # noqa: E402

SPANS_PER_TRACE = 20
SERVICES = [f"service-{i:02d}" for i in range(20)]
OPERATIONS = [f"op-{i}" for i in range(8)]
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
BLOCK_TRACES = 25_000  # 500,000 spans per INSERT


def hex_ids(count: int, nbytes: int) -> list[str]:
    raw = os.urandom(count * nbytes).hex()
    width = nbytes * 2
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def block(rng: random.Random, traces: int, now_ns: int) -> tuple[dict[str, list], list[str]]:
    """Columns for ``traces`` traces of SPANS_PER_TRACE spans each."""
    n = traces * SPANS_PER_TRACE
    trace_ids = hex_ids(traces, 16)
    span_ids = hex_ids(n, 8)
    starts, durations, parents, services, names, kinds, statuses = [], [], [], [], [], [], []
    attr_keys, attr_types, attr_values = [], [], []
    for t in range(traces):
        base = t * SPANS_PER_TRACE
        trace_start = now_ns - rng.randrange(DAY_NS)
        root_dur = rng.randrange(5_000_000, 800_000_000)
        error = rng.random() < 0.02
        for j in range(SPANS_PER_TRACE):
            if j == 0:
                parents.append("")
                starts.append(trace_start)
                durations.append(root_dur)
                services.append(SERVICES[rng.randrange(3)])  # a few front doors
                statuses.append(2 if error else 0)
                attr_keys.append(["http.method", "http.status_code", "user.id"])
                attr_types.append([1, 3, 1])
                attr_values.append(["GET", "500" if error else "200", f"u{rng.randrange(10_000)}"])
            else:
                parents.append(span_ids[base + rng.randrange(j)])
                offset = rng.randrange(root_dur // 2)
                starts.append(trace_start + offset)
                durations.append(rng.randrange(10_000, max(10_001, root_dur - offset)))
                services.append(SERVICES[rng.randrange(len(SERVICES))])
                statuses.append(2 if error and j == SPANS_PER_TRACE - 1 else 0)
                attr_keys.append(["peer.service"])
                attr_types.append([1])
                attr_values.append([services[-1]])
            names.append(OPERATIONS[rng.randrange(len(OPERATIONS))])
            kinds.append(2 if j % 2 == 0 else 3)
    columns = {
        "ts": [s // 10**9 for s in starts],
        "start_ns": starts,
        "duration_ns": durations,
        "trace_id": [trace_ids[i // SPANS_PER_TRACE] for i in range(n)],
        "span_id": span_ids,
        "parent_span_id": parents,
        "service_name": services,
        "span_name": names,
        "span_kind": kinds,
        "status_code": statuses,
        "attr_keys": attr_keys,
        "attr_types": attr_types,
        "attr_values": attr_values,
        "resource_attr_keys": [["service.name"] for _ in range(n)],
        "resource_attr_types": [[1] for _ in range(n)],
        "resource_attr_values": [[s] for s in services],
    }
    return columns, trace_ids


def load(store: Store, spans: int, now_ns: int) -> tuple[list[str], float]:
    rng = random.Random(7)
    traces_left = spans // SPANS_PER_TRACE
    sample: list[str] = []
    began = time.monotonic()
    while traces_left > 0:
        count = min(BLOCK_TRACES, traces_left)
        columns, trace_ids = block(rng, count, now_ns)
        store.insert("spans", columns)
        sample.extend(rng.sample(trace_ids, min(len(trace_ids), 200)))
        traces_left -= count
        loaded = spans - traces_left * SPANS_PER_TRACE
        print(f"# loaded {loaded} spans", file=sys.stderr, flush=True)
    return sample, time.monotonic() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 spans instead of 10,000,000")
    parser.add_argument("--spans", type=int, default=None)
    parser.add_argument("--lookups", type=int, default=1000)
    args = parser.parse_args()
    spans = args.spans or (100_000 if args.quick else 10_000_000)

    server = ClickHouseServer()
    server.start()
    try:
        store = open_store(server.url(database="bench"))
        migrate(store)
        now_ns = time.time_ns()
        sample, load_s = load(store, spans, now_ns)
        print(f"spans_loaded={spans}")
        print(f"traces_loaded={spans // SPANS_PER_TRACE}")
        print(f"load_spans_per_s={spans / load_s:.0f}")
        store.execute("OPTIMIZE TABLE trace_index")  # what background merges do over time

        rng = random.Random(11)
        ids = [rng.choice(sample) for _ in range(args.lookups)]
        for trace_id in ids[:50]:  # warm the mark cache as a running dashboard would be
            tq.load_trace(store, trace_id, 10_000)
        by_id = []
        for trace_id in ids:
            by_id.append(timed(lambda t=trace_id: tq.load_trace(store, t, 10_000)))
        missing = timed(lambda: tq.load_trace(store, "f" * 32, 10_000))

        searches: dict[str, list[float]] = {}

        def run(name: str, q: tq.SearchQuery) -> None:
            searches.setdefault(name, []).append(timed(lambda: tq.search(store, q)))

        for i in range(20):
            end = now_ns - rng.randrange(DAY_NS - HOUR_NS)
            start = end - HOUR_NS
            service = SERVICES[i % 3]
            run("service_1h", tq.SearchQuery(start, end, service=service))
            run("service_op_1h", tq.SearchQuery(start, end, service=service, operation="op-3"))
            run(
                "service_min_duration_1h",
                tq.SearchQuery(start, end, service=SERVICES[i % 20], min_duration_ns=300_000_000),
            )
            run("service_errors_1h", tq.SearchQuery(start, end, service=service, errors_only=True))
            attr = tq.AttributeFilter("user.id", "=", f"u{rng.randrange(10_000)}")
            run("service_attribute_1h", tq.SearchQuery(start, end, service=service, attributes=[attr]))
            run("any_service_15m", tq.SearchQuery(end - HOUR_NS // 4, end))
        all_searches = [v for values in searches.values() for v in values]

        for name, values in searches.items():
            print(f"search_{name}_p50_ms={statistics.median(values):.1f}")
        print(f"trace_missing_ms={missing:.1f}")
        print(f"search_p50_ms={statistics.median(all_searches):.1f}")
        print(f"search_p99_ms={percentile(all_searches, 0.99):.1f}")
        print(f"trace_by_id_p50_ms={statistics.median(by_id):.1f}")
        print(f"trace_by_id_p99_ms={percentile(by_id, 0.99):.1f}")
        store.close()
    finally:
        server.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
