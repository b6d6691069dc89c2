"""Cluster mode for real: ZooKeeper, two clickhouse-server shards, ``migrate --cluster``.

Spans go in through the collector (OTLP/gRPC from the OpenTelemetry SDK) on one
node and come back through the dashboard's trace queries on the other.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.clickhouse_cluster import CLUSTER, CLUSTER_PROFILE
from tests.support.clickhouse_server import ClickHouseServer
from tests.support.polling import eventually
from tracestore.migrate import Features, Retention, cluster_form, load_migrations, render
from tracestore.store import open_store

DATABASE = "st_cluster"
OVERLAY = ROOT / "deploy" / "overlays" / "cluster"


def test_overlay_sets_the_profile_the_test_uses() -> None:
    config = yaml.safe_load((OVERLAY / "clickhouse-config.yaml").read_text())
    profile = ET.fromstring(config["data"]["cluster-profile.xml"])
    for root in (profile, ET.fromstring(CLUSTER_PROFILE)):
        assert root.findtext("profiles/default/distributed_product_mode") == "local"


def test_cluster_form_of_every_migration() -> None:
    """Every table has a local replicated twin and a Distributed face; views stay local."""
    features = Features.for_version((18, 16))
    for migration in load_migrations():
        for statement in migration.statements():
            rendered = render(statement, features, Retention(), CLUSTER)
            out = cluster_form(rendered, CLUSTER, DATABASE)
            assert all(f"ON CLUSTER {CLUSTER}" in sql for sql in out)
            if statement.startswith("CREATE TABLE"):
                local, distributed = out
                assert "Replicated" in local and "_local ON CLUSTER" in local
                assert "ENGINE = Distributed(sidetrace, st_cluster, " in distributed
                if "trace_id" in statement:
                    assert distributed.endswith("_local, cityHash64(trace_id))")
            elif statement.startswith("CREATE MATERIALIZED VIEW"):
                [view] = out
                assert "_local AS SELECT" in view or "_local\nAS SELECT" in view
                assert f"FROM {DATABASE}.spans_local" in view


def _send_traces(grpc_port: int, count: int) -> list[str]:
    """``count`` traces frontend -> cart (server, client, server span), from the OTel SDK."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    providers, tracers = [], []
    for service in ("frontend", "cart"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=30)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
        providers.append(provider)
        tracers.append(provider.get_tracer("test_cluster"))
    frontend, cart = tracers
    server, client = trace.SpanKind.SERVER, trace.SpanKind.CLIENT
    trace_ids = []
    for number in range(count):
        with frontend.start_as_current_span(f"GET /order/{number % 5}", kind=server) as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            with (
                frontend.start_as_current_span("GET /cart", kind=client) as call,
                cart.start_as_current_span(
                    "GET /cart", kind=server, context=trace.set_span_in_context(call)
                ),
            ):
                pass
    for provider in providers:
        assert provider.force_flush(30_000)
        provider.shutdown()
    return trace_ids


@pytest.mark.slow
def test_two_shards_through_collector_and_dashboard_queries(
    cluster: list[ClickHouseServer], tmp_path: Path
) -> None:
    from collector.edge_rollup import compute_edges
    from collector.service import Collector, CollectorConfig
    from tracestore.analytics_queries import edges
    from tracestore.trace_queries import SearchQuery, load_trace, search_trace_ids

    first, second = cluster
    result = subprocess.run(
        [sys.executable, "-m", "sidetrace", "migrate", "--cluster", CLUSTER]
        + ["--clickhouse", first.url(DATABASE)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "0001_spans" in result.stdout
    for server in cluster:  # ON CLUSTER reached both shards, and both know it is applied
        store = open_store(server.url(DATABASE))
        engines = dict(
            store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
        )
        assert engines["spans"] == "Distributed"
        assert engines["spans_local"] == "ReplicatedMergeTree"
        assert engines["trace_index_local"] == "ReplicatedAggregatingMergeTree"
        assert len(store.query("SELECT version FROM schema_migrations")) == len(load_migrations())

    writer_store = open_store(first.url(DATABASE))
    grpc_port = free_port()
    collector = Collector(
        writer_store,
        CollectorConfig(
            grpc_port=grpc_port,
            http_port=None,
            admin_port=None,
            spool_dir=str(tmp_path / "spool"),
            spool_fsync="never",
        ),
    )
    collector.start()
    started_ns = time.time_ns() - 60 * 10**9
    try:
        trace_ids = _send_traces(grpc_port, 40)
    finally:
        assert collector.stop(timeout=60)

    reader = open_store(second.url(DATABASE))  # the other node: reads go through Distributed

    def stored() -> int:
        [(spans,)] = reader.query("SELECT count() FROM spans_by_trace")
        return spans

    eventually(lambda: stored() >= 3 * len(trace_ids), 90, 0.5, what="every span readable")
    assert stored() == 3 * len(trace_ids)

    for trace_id in trace_ids:
        trace = load_trace(reader, trace_id, max_spans=100)
        assert trace is not None, trace_id
        assert len(trace.spans) == 3
        assert trace.summary.span_count == 3
        assert {s.trace_id for s in trace.spans} == {trace_id}
    query = SearchQuery(start_ns=started_ns, end_ns=time.time_ns() + 60 * 10**9, limit=100)
    assert sorted(search_trace_ids(reader, query)) == sorted(trace_ids)

    # The service graph: the edge rollup's self-join and "latest run" reads stay shard-local.
    start_s, end_s = started_ns // 10**9, int(time.time()) + 120
    compute_edges(writer_store, start_s, end_s)
    found = eventually(
        lambda: {(e.parent, e.child): e.figures.calls for e in edges(reader, start_s, end_s)},
        60,
        0.5,
        what="an edge of the service graph",
    )
    assert found == {("frontend", "cart"): len(trace_ids)}

    # Sharded by trace id: both shards hold traces, and no trace is split across them.
    per_shard = []
    for server in cluster:
        local = open_store(server.url(DATABASE))
        rows = local.query("SELECT trace_id, count() FROM spans_by_trace_local GROUP BY trace_id")
        per_shard.append({r[0]: r[1] for r in rows})
    assert all(per_shard), "every shard should hold some traces"
    assert not set(per_shard[0]) & set(per_shard[1])
    assert set(per_shard[0]) | set(per_shard[1]) == set(trace_ids)
