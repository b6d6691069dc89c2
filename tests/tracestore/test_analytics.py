"""Latency rollups, edges and analytics queries against a real server and chDB."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest

from collector.edge_rollup import EdgeJobConfig, closed_window, compute_edges
from collector.rollup_jobs import start_rollup_jobs
from tests.support.analytics_traffic import Traffic
from tests.support.polling import eventually
from tracestore import analytics_queries as aq
from tracestore.edge_queries import latest_rows_sql
from tracestore.latency_buckets import quantiles

HOUR = 3600
QS = (0.5, 0.9, 0.95, 0.99)


def _hour_base() -> int:
    """Two hours before the current hour: data spans whole hours and ragged ends."""
    return int(time.time()) // HOUR * HOUR - 2 * HOUR


def _latency_spans(base: int, n: int, seed: int = 1) -> dict[str, list]:
    """Server spans of two services with known shapes, 30 min .. 150 min after ``base``."""
    rng = random.Random(seed)
    cols: dict[str, list] = {}
    shapes = {
        "api": lambda: int(rng.lognormvariate(math.log(20e6), 0.8)),
        "db-proxy": lambda: int(rng.expovariate(1 / 3e6)) + 200_000,
    }
    for service, draw in shapes.items():
        for i in range(n):
            start = (base + 1800) * 10**9 + rng.randrange(2 * HOUR * 10**9)
            row = {
                "ts": start // 10**9,
                "start_ns": start,
                "duration_ns": max(draw(), 1),
                "trace_id": f"{rng.getrandbits(128):032x}",
                "span_id": f"{rng.getrandbits(64):016x}",
                "service_name": service,
                "span_name": "GET /items" if i % 3 else "POST /items",
                "span_kind": 2,
                "status_code": 2 if rng.random() < 0.05 else 0,
            }
            for key, value in row.items():
                cols.setdefault(key, []).append(value)
    return cols


def _exact(store, service: str, start: int, end: int) -> list[float]:
    rows = store.query(
        "SELECT quantilesExact(0.5, 0.9, 0.95, 0.99)(duration_ns) FROM spans "
        "WHERE service_name = %(s)s AND span_kind IN (2, 5) "
        "AND ts >= toDateTime(%(a)s) AND ts < toDateTime(%(b)s)",
        {"s": service, "a": start, "b": end},
    )
    return [float(v) / 1e6 for v in rows[0][0]]


def _close(got: float | None, exact: float) -> bool:
    return got is not None and abs(got - exact) <= 0.01 * exact


def test_percentiles_from_rollups_within_one_percent(store):
    base = _hour_base()
    store.insert("spans", _latency_spans(base, 15_000))
    # A ragged range: minutes at both ends, whole hours (latency_hour) in the middle.
    start, end = base + 17 * 60, base + 2 * HOUR + 43 * 60
    table = {row["service"]: row for row in aq.services(store, start, end)}
    assert set(table) == {"api", "db-proxy"}
    for service in table:
        exact = _exact(store, service, start, end)
        for name, want in zip(("p50", "p95", "p99"), (exact[0], exact[2], exact[3]), strict=True):
            assert _close(table[service][name], want), (service, name, table[service], exact)
    calls = store.query(
        "SELECT count() FROM spans WHERE service_name = 'api' "
        "AND ts >= toDateTime(%(a)s) AND ts < toDateTime(%(b)s)",
        {"a": start, "b": end},
    )[0][0]
    assert table["api"]["calls"] == calls
    # Past six hours a range is widened to whole hours: the same figures from hours alone.
    wide = {r["service"]: r for r in aq.services(store, base + 600, base + 7 * HOUR + 300)}
    exact = _exact(store, "api", base, base + 8 * HOUR)
    assert wide["api"]["calls"] == 15_000
    assert _close(wide["api"]["p99"], exact[3]) and _close(wide["api"]["p50"], exact[0])
    for step in (600, HOUR):
        series = aq.latency_series(store, "api", base, base + 3 * HOUR, step, QS)
        assert len(series["points"]) == 3 * HOUR // step
        for point in series["points"]:
            if point["calls"] < 200:
                continue
            exact = _exact(store, "api", point["t"], point["t"] + step)
            got = [point["quantiles"][aq.quantile_name(q)] for q in QS]
            assert all(_close(g, e) for g, e in zip(got, exact, strict=True)), (point, exact)
    one_op = aq.latency_series(store, "api", base, base + 3 * HOUR, HOUR, QS, "POST /items")
    point = max(one_op["points"], key=lambda p: p["calls"])
    exact = store.query(
        "SELECT quantilesExact(0.5, 0.9, 0.95, 0.99)(duration_ns), count() FROM spans "
        "WHERE service_name = 'api' AND span_name = 'POST /items' "
        "AND ts >= toDateTime(%(a)s) AND ts < toDateTime(%(b)s)",
        {"a": point["t"], "b": point["t"] + HOUR},
    )[0]
    assert point["calls"] == exact[1]
    got = [point["quantiles"][aq.quantile_name(q)] for q in QS]
    assert all(_close(g, e / 1e6) for g, e in zip(got, exact[0], strict=True)), (point, exact)


def test_hourly_rollup_equals_merged_minutes(store):
    base = _hour_base()
    store.insert("spans", _latency_spans(base, 3000, seed=2))
    figures = (
        "countMerge(calls), sumMerge(errors), sumMerge(duration_sum), "
        "sumMapMerge(buckets), sumMapMerge(ok_buckets)"
    )
    keys = "service_name, span_name, span_kind, toUInt32(h)"
    hourly = store.query(
        f"SELECT {keys}, {figures} FROM (SELECT *, minute AS h FROM latency_hour) "
        f"GROUP BY {keys} ORDER BY {keys}"
    )
    minutes = store.query(
        f"SELECT {keys}, {figures} FROM (SELECT *, toStartOfHour(minute) AS h FROM latency_minute) "
        f"GROUP BY {keys} ORDER BY {keys}"
    )
    assert len(hourly) == 2 * 2 * 3  # services x operations x hours
    assert [tuple(map(_plain, r)) for r in hourly] == [tuple(map(_plain, r)) for r in minutes]
    keys = "service_name, entry, toUInt32(h), bucket"
    sums = "sum(calls), sum(errors), sum(duration_sum)"
    flat_hourly = store.query(
        f"SELECT {keys}, {sums} FROM (SELECT *, minute AS h FROM service_buckets_hour) "
        f"GROUP BY {keys} ORDER BY {keys}"
    )
    flat_minutes = store.query(
        f"SELECT {keys}, {sums} FROM (SELECT *, toStartOfHour(minute) AS h "
        f"FROM service_buckets_minute) GROUP BY {keys} ORDER BY {keys}"
    )
    assert len(flat_hourly) > 100
    assert flat_hourly == flat_minutes


def test_quantiles_in_sql_match_the_python_function(store):
    """The series' server-side quantiles are latency_buckets.quantiles, rank for rank."""
    rng = random.Random(4)
    for _ in range(20):
        keys = sorted(rng.sample(range(900, 1900), rng.randint(1, 40)))
        counts = [rng.choice([1, 1, 2, 5, 100]) for _ in keys]
        qs = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999)
        got = store.query(
            f"SELECT {aq.quantiles_sql(qs)} FROM (SELECT %(k)s AS ks0, %(c)s AS cs0) "
            "ARRAY JOIN ks0 AS k, cs0 AS c",
            {"k": keys, "c": counts},
        )[0][0]
        want = quantiles(dict(zip(keys, counts, strict=True)), qs)
        assert [pytest.approx(w / 1e6, rel=1e-9) for w in want] == list(got)


def _plain(value):
    """Native tuples and chDB lists compare equal once both are lists."""
    return [list(v) for v in value] if isinstance(value, tuple | list) else value


TOPOLOGY = {
    "frontend": ["orders", "users"],
    "orders": [
        "payments",
        ("database", {"db.system": "postgresql", "db.name": "orders"}),
    ],
    "payments": [
        ("messaging", {"messaging.system": "kafka", "messaging.destination.name": "paid"})
    ],
    "users": [
        ("external", {"server.address": "auth.example.com"}),
        "orders",
        ("database", {"db.system": "postgresql", "db.name": "orders"}),
    ],
}
NAMESPACES = {"frontend": "web", "orders": "shop", "payments": "shop", "users": "web"}


def _traffic(minutes: int, per_minute: int, withhold=lambda p, c: False) -> Traffic:
    traffic = Traffic(TOPOLOGY, NAMESPACES, rng=random.Random(11))
    first = (int(time.time()) // 60 - minutes - 2) * 60
    for m in range(minutes):
        for i in range(per_minute):
            start_ns = (first + 60 * m) * 10**9 + i * 10**9 * 59 // per_minute
            traffic.trace(
                "frontend",
                start_ns,
                duration=lambda child: 1_000_000 + hash(child) % 1000,
                error_rate=0.1,
                withhold=withhold,
            )
    return traffic


def _window(traffic: Traffic) -> tuple[int, int]:
    minutes = sorted({key[0] for key in traffic.expected})
    return minutes[0], minutes[-1] + 60


def _stored_edges(store, traffic: Traffic) -> dict:
    start, end = _window(traffic)
    found = {}
    for minute in range(start, end, 60):
        for e in aq.edges(store, minute, minute + 60):
            found[(minute, e.parent, e.child, e.child_kind)] = [e.figures.calls, e.figures.errors]
    return found


def test_edges_match_topology_with_virtual_nodes(store):
    traffic = _traffic(minutes=3, per_minute=20)
    store.insert("spans", traffic.columns)
    start, end = _window(traffic)
    compute_edges(store, start, end)
    assert _stored_edges(store, traffic) == traffic.expected
    kinds = {(k[2], k[3]) for k in traffic.expected}
    assert {("postgresql/orders", "database"), ("kafka/paid", "messaging")} <= kinds
    assert ("auth.example.com", "external") in kinds
    deps = aq.dependencies(store, start * 10**9, end * 10**9)
    assert {(d["parent"], d["child"]): d["callCount"] for d in deps} == traffic.expected_totals()
    # Running again (as every collector replica does) changes nothing.
    compute_edges(store, start, end)
    assert _stored_edges(store, traffic) == traffic.expected


def test_hourly_edges_equal_their_minutes(store):
    """A range holding a whole hour reads edges_hour; it must equal the minutes it sums."""
    traffic = Traffic(TOPOLOGY, NAMESPACES, rng=random.Random(12))
    hour = int(time.time()) // HOUR * HOUR - 2 * HOUR
    for m in range(-3, 63):
        start_ns = (hour + 60 * m + 7) * 10**9
        traffic.trace("frontend", start_ns, lambda c, m=m: 2_000_000 + 50_000 * m, 0.1)
    store.insert("spans", traffic.columns)
    compute_edges(store, hour - 180, hour + 63 * 60)
    totals = traffic.expected_totals()
    found = aq.edges(store, hour - 180, hour + 63 * 60)
    assert {(e.parent, e.child): e.figures.calls for e in found} == totals
    errors = {(k[1], k[2]): 0 for k in traffic.expected}
    for (_, parent, child, _), (_, failed) in traffic.expected.items():
        errors[(parent, child)] += failed
    assert {(e.parent, e.child): e.figures.errors for e in found} == errors
    hourly = {(e.parent, e.child): e.figures for e in aq.edges(store, hour, hour + HOUR)}
    assert {k: f.calls for k, f in hourly.items()} == {k: 60 * v // 66 for k, v in totals.items()}
    hour_buckets = _edge_buckets(store, "edges_hour", hour, hour + HOUR)
    assert len(hour_buckets) > len(totals)
    assert hour_buckets == _edge_buckets(store, "edges_minute", hour, hour + HOUR)


def _edge_buckets(store, table: str, start: int, end: int) -> list[tuple]:
    rows = latest_rows_sql(table, start, end)
    return store.query(
        f"SELECT parent_service, child_service, k, sum(c) FROM {rows} "
        "ARRAY JOIN bucket_keys AS k, bucket_counts AS c GROUP BY parent_service, child_service, k "
        "ORDER BY parent_service, child_service, k"
    )


def test_late_children_pair_on_a_later_run(store):
    traffic = _traffic(minutes=2, per_minute=15, withhold=lambda p, c: c == "payments")
    store.insert("spans", traffic.columns)
    start, end = _window(traffic)
    compute_edges(store, start, end)
    early = _stored_edges(store, traffic)
    # Until the server spans arrive, the calls look like calls to an uninstrumented host.
    assert not any(k[2] == "payments" for k in early)
    assert sum(v[0] for k, v in early.items() if k[2] == "payments:8080") == sum(
        v[0] for k, v in traffic.expected.items() if k[2] == "payments"
    )
    store.insert("spans", traffic.withheld)
    compute_edges(store, start, end)
    assert _stored_edges(store, traffic) == traffic.expected


def test_concurrent_rollup_runs_count_each_call_once(store):
    traffic = _traffic(minutes=2, per_minute=25)
    store.insert("spans", traffic.columns)
    start, end = _window(traffic)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(lo: int, hi: int) -> None:
        try:
            barrier.wait(timeout=30)
            compute_edges(store, lo, hi)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(start, end)),
        threading.Thread(target=run, args=(start - 120, end + 60)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert _stored_edges(store, traffic) == traffic.expected


def test_graph_nodes_namespaces_and_edge_figures(store):
    traffic = _traffic(minutes=2, per_minute=10)
    store.insert("spans", traffic.columns)
    start, end = _window(traffic)
    compute_edges(store, start, end)
    g = aq.graph(store, start, end)
    nodes = {n["id"]: n for n in g["nodes"]}
    assert nodes["frontend"]["namespace"] == "web"
    assert nodes["payments"]["namespace"] == "shop"
    db = nodes["postgresql/orders"]  # called from two namespaces: its calls merged, no namespace
    assert (db["kind"], db["namespace"], db["calls"]) == ("database", "", 20 * 2 + 20)
    assert nodes["kafka/paid"]["namespace"] == "shop"
    assert nodes["auth.example.com"]["kind"] == "external"
    assert nodes["frontend"]["calls"] == 20
    edge = next(e for e in g["edges"] if (e["parent"], e["child"]) == ("frontend", "orders"))
    assert edge["calls"] == 20
    assert edge["rate"] == pytest.approx(20 / (end - start))
    assert edge["p99"] == pytest.approx(1.0 + hash("orders") % 1000 / 1e6, rel=0.006)


def test_closed_window_and_job_thread(store):
    config = EdgeJobConfig(interval_s=0.2, grace_s=0, lookback_s=900)
    assert closed_window(3 * 60 + 20, EdgeJobConfig(grace_s=30, lookback_s=120)) == (0, 120)
    traffic = _traffic(minutes=1, per_minute=5)
    store.insert("spans", traffic.columns)
    stop = threading.Event()
    threads = start_rollup_jobs(store, stop, config)
    try:
        what = "the rollup jobs' edges"
        eventually(lambda: _stored_edges(store, traffic) == traffic.expected, 60, 0.3, what=what)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert _stored_edges(store, traffic) == traffic.expected


def test_operations_impact_and_sidecar_red(store):
    now = int(time.time()) // 60 * 60 - 300
    durations = {"GET /a": [3_000_000] * 30, "GET /b": [1_000_000] * 10}
    cols: dict[str, list] = {}
    for name, values in durations.items():
        for i, d in enumerate(values):
            row = {
                "ts": now + i,
                "start_ns": (now + i) * 10**9,
                "duration_ns": d,
                "service_name": "api",
                "span_name": name,
                "span_kind": 2,
                "span_id": f"{i:016x}",
            }
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
    store.insert("spans", cols)
    ops = {o["operation"]: o for o in aq.operations(store, "api", now, now + 120)}
    assert ops["GET /a"]["impact"] == pytest.approx(0.9)
    assert ops["GET /b"]["impact"] == pytest.approx(0.1)
    assert ops["GET /a"]["p50"] == pytest.approx(3.0, rel=0.006)
    # Cumulative histogram points from a sidecar: 2xx went 100 -> 300, 5xx 10 -> 50.
    points: dict[str, list] = {}
    for t, klass, count in [(10, "2xx", 100), (70, "2xx", 300), (10, "5xx", 10), (70, "5xx", 50)]:
        row = {
            "ts": now + t,
            "time_ns": (now + t) * 10**9,
            "start_time_ns": now * 10**9,
            "service_name": "api",
            "metric_name": aq.SIDECAR_METRIC,
            "metric_type": 3,
            "temporality": 2,
            "attr_keys": ["sidetrace.direction", "status_class"],
            "attr_values": ["inbound", klass],
            "count": count,
            "sum": count * 0.002,
        }
        for k, v in row.items():
            points.setdefault(k, []).append(v)
    store.insert("metric_points", points)
    red = aq.sidecar_red(store, now, now + 120)["api"]
    assert (red["requests"], red["errors"]) == (240, 40)
    assert red["mean_ms"] == pytest.approx(2.0)
    row = next(r for r in aq.services(store, now, now + 120) if r["service"] == "api")
    assert row["sampling_ratio"] == pytest.approx(40 / 240)
