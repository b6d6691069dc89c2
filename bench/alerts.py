"""One SLO evaluation of 100 SLOs over 10,000,000 spans in a real clickhouse-server.

Spans (100 services x 4 operations, spread over the last ``--hours``) are
inserted straight into ``spans`` in large columnar blocks; the materialized
views fill the rollups. 100 SLOs (one per service; half on one operation, half
counting errors as bad; each with the default page and ticket alerts, i.e. 8
burn-rate windows plus the 30-day budget) are loaded from a YAML file and
evaluated by the real evaluator, alert bookkeeping included.

Prints ``name=value`` lines; the last is ``slo_eval_100_ms`` (median of the runs).
``slo_cold_load_ms`` is the first evaluation with nothing kept (it reads the
rollups); ``slo_first_eval_ms`` is a second evaluator's first one, as after a
failover: it starts from the slots the first kept in ``slo_slots``.
Usage: ``python bench/alerts.py [--quick] [--clickhouse URL]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.slo_evaluator import SloEvaluator  # noqa: E402
from slospec.slo_config import SloConfigSet  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402
from tracestore.migrate import migrate  # noqa: E402
from tracestore.store import Store, open_store  # noqa: E402

OPERATIONS = ("GET /items", "POST /orders", "GET /orders/{id}", "DELETE /orders/{id}")


def service_name(i: int) -> str:
    return f"svc-{i:03d}"


def generate(store: Store, spans: int, services: int, hours: float, block: int) -> float:
    """Insert ``spans`` spans ending now; returns seconds taken."""
    rng = np.random.default_rng(7)
    names = np.array([service_name(i) for i in range(services)], dtype=object)
    ops = np.array(OPERATIONS, dtype=object)
    span_ns = int(hours * 3600 * 1e9)
    first_ns = time.time_ns() - span_ns
    slice_ns = span_ns * block // spans or 1
    started = time.perf_counter()
    done = 0
    while done < spans:
        # Blocks go forward in time, as spans arrive, so each block fills few minute rows.
        n = min(block, spans - done)
        offset = first_ns + span_ns * done // spans
        start = np.sort(offset + rng.integers(0, slice_ns, n, dtype=np.int64))
        duration = rng.lognormal(np.log(80e6), 0.8, n).astype(np.uint64)
        ids = rng.integers(0, 2**63, (n, 3), dtype=np.int64)
        store.insert(
            "spans",
            {
                "ts": (start // 10**9).tolist(),
                "start_ns": start.tolist(),
                "duration_ns": duration.tolist(),
                "trace_id": [f"{a:016x}{b:016x}" for a, b in ids[:, :2].tolist()],
                "span_id": [f"{c:016x}" for c in ids[:, 2].tolist()],
                "service_name": names[rng.integers(0, services, n)].tolist(),
                "span_name": ops[rng.integers(0, len(ops), n)].tolist(),
                "span_kind": [2] * n,
                "status_code": np.where(rng.random(n) < 0.01, 2, 0).tolist(),
            },
        )
        done += n
    return time.perf_counter() - started


def slo_file(folder: Path, services: int) -> str:
    """100 SLOs: one per service, thresholds 100-500 ms, targets 99-99.9%."""
    lines = ["slos:"]
    for i in range(services):
        lines += [
            f"  - name: slo-{i:03d}",
            f"    service: {service_name(i)}",
            f"    threshold: {100 + (i % 5) * 100}ms",
            f"    target: {(99, 99.5, 99.9)[i % 3]}",
            f"    errors_count_as_bad: {'true' if i % 2 else 'false'}",
        ]
        if i % 2 == 0:
            lines.append(f"    operation: {OPERATIONS[i % len(OPERATIONS)]!r}")
    path = folder / "bench-slos.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200,000 spans, 3 runs")
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--clickhouse", help="use this server instead of starting one")
    args = parser.parse_args()
    if args.quick:
        args.spans, args.runs = 200_000, 3

    server = None
    if args.clickhouse:
        url = args.clickhouse
    else:
        server = ClickHouseServer()
        server.start()
        url = server.url(database="bench_alerts")
    try:
        store = open_store(url)
        migrate(store)
        existing = int(store.query("SELECT count() FROM spans")[0][0])
        if existing < args.spans:
            seconds = generate(store, args.spans - existing, args.services, args.hours, 500_000)
            print(f"insert_spans_per_s={int((args.spans - existing) / seconds)}")
        rows = store.query("SELECT count() FROM latency_minute")[0][0]
        print(f"spans={args.spans}")
        print(f"latency_minute_rows={rows}")
        store.execute("TRUNCATE TABLE slo_slots")  # the first evaluator starts cold
        with tempfile.TemporaryDirectory() as folder:
            config = SloConfigSet([slo_file(Path(folder), args.services)])
            evaluator = SloEvaluator(store, config, external_url="http://127.0.0.1:16686")
            config.load(evaluator.known_services)
            timings = []
            for _ in range(args.runs + 1):
                started = time.perf_counter()
                snapshot = evaluator.evaluate_once()
                timings.append((time.perf_counter() - started) * 1000)
            cold, timings = timings[0], timings[1:]  # the first run loads the windows
            evaluator.close()
            # A new leader: it starts from the slots the first one kept in slo_slots.
            successor = SloEvaluator(store, config, external_url="http://127.0.0.1:16686")
            started = time.perf_counter()
            successor.evaluate_once()
            first = (time.perf_counter() - started) * 1000
            resumed = successor.cache.resumed
            successor.close()
        print(f"slos={len(snapshot.slos)}")
        print(f"slo_cold_load_ms={cold:.0f}")
        print(f"slo_first_eval_resumed={resumed}")
        print(f"slo_first_eval_ms={first:.0f}")
        print(f"slo_eval_100_ms_min={min(timings):.0f}")
        print(f"slo_eval_100_ms_max={max(timings):.0f}")
        print(f"slo_eval_100_ms={statistics.median(timings):.0f}")
    finally:
        if server is not None:
            server.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
