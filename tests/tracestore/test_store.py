"""The ClickHouse seam and migrations, against a real server and chDB."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tracestore.migrate import Features, Retention, load_migrations, migrate, render
from tracestore.store import StoreError, open_store, parse_url


def test_migrate_is_idempotent(store):
    assert migrate(store) == []
    tables = {row[0] for row in store.query("SHOW TABLES")}
    assert {"spans", "spans_by_trace", "trace_index", "metric_points"} <= tables


def test_parameters_are_escaped(store):
    hostile = "x'); DROP TABLE spans; --"
    assert store.query("SELECT %(v)s, %(n)s", {"v": hostile, "n": 3}) == [(hostile, 3)]
    assert "spans" in {row[0] for row in store.query("SHOW TABLES")}


def test_insert_columns_and_materialized_views(store):
    now_ns = time.time_ns()
    store.insert(
        "spans",
        {
            "ts": [now_ns // 10**9] * 2,
            "start_ns": [now_ns, now_ns + 10],
            "duration_ns": [1000, 20],
            "trace_id": ["a" * 32, "a" * 32],
            "span_id": ["1" * 16, "2" * 16],
            "parent_span_id": ["", "1" * 16],
            "service_name": ["front", "back"],
            "span_name": ["GET /", "query"],
            "status_code": [0, 2],
            "attr_keys": [["k"], []],
            "attr_types": [[1], []],
            "attr_values": [["v"], []],
        },
    )
    rows = store.query(
        "SELECT uniqExactMerge(span_count), uniqExactIfMerge(error_count), "
        "anyIfMerge(root_service), minMerge(trace_start_ns), maxMerge(trace_end_ns) "
        "FROM trace_index WHERE trace_id = %(t)s GROUP BY trace_id",
        {"t": "a" * 32},
    )
    assert rows == [(2, 1, "front", now_ns, now_ns + 1000)]
    by_trace = store.query(
        "SELECT span_id, attr_keys FROM spans_by_trace WHERE trace_id = %(t)s ORDER BY span_id",
        {"t": "a" * 32},
    )
    assert [tuple(r) for r in by_trace] == [("1" * 16, ["k"]), ("2" * 16, [])]


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://host/db", "expected chdb:PATH or clickhouse://"),
        ("chdb:", "needs a path"),
        ("clickhouse:///db", "missing host"),
        ("clickhouse://h:notaport/db", "bad ClickHouse URL"),
        ("clickhouse://h:9000/bad-name", "invalid database name"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(StoreError, match=message):
        parse_url(url)


def test_unreachable_and_wrong_password(clickhouse_server):
    from runtime.loopback_ports import free_port

    with pytest.raises(StoreError, match="cannot reach ClickHouse"):
        open_store(f"clickhouse://127.0.0.1:{free_port()}/x")
    bad = f"clickhouse://nobody:wrong@127.0.0.1:{clickhouse_server.tcp_port}/x"
    with pytest.raises(StoreError, match="wrong user or password"):
        open_store(bad)


def test_cli_error_is_one_line_without_traceback(clickhouse_server):
    from runtime.loopback_ports import free_port

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidetrace",
            "migrate",
            "--clickhouse",
            f"clickhouse://127.0.0.1:{free_port()}/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "cannot reach ClickHouse" in result.stderr


def test_features_follow_server_version():
    old, new = Features.for_version((18, 16)), Features.for_version((26, 9))
    sql = load_migrations()[0].sql
    old_sql = render(sql, old, Retention())
    new_sql = render(sql, new, Retention())
    for newer_only in ("TTL", "CODEC", "LowCardinality", "bloom_filter"):
        assert newer_only not in old_sql
        assert newer_only in new_sql
    assert "{{" not in old_sql and "{{" not in new_sql
