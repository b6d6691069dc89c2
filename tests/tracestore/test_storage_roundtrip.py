"""Every table the migrations create, written and read back through tracestore's own
functions, on both backends (the clickhouse-server fixture and chDB).

The list of tables comes from ``system.tables`` after migrating, so a migration that
adds a table without a round trip here fails ``test_every_table_has_a_round_trip``.
Tables fed by materialized views are written the way the collector writes them (OTLP
→ rows → ``insert_spans``) and read the way the dashboard reads them; each read is
chosen so that it can only be answered by that table (a range of whole hours reads
the ``_hour`` rollups, a few minutes the ``_minute`` ones).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.support.clickhouse_server import ClickHouseServer
from tracestore import analytics_queries as aq
from tracestore import trace_queries as tq
from tracestore.alert_queries import (
    AlertEvent,
    NotificationAttempt,
    event_history,
    recent_attempts,
    write_attempt,
    write_events,
)
from tracestore.compiled_columns import trace_columns
from tracestore.delivery_queries import (
    PENDING,
    DeliveryRow,
    GroupDecision,
    Unsent,
    last_decisions,
    unsent,
    write_deliveries,
)
from tracestore.edge_queries import write_edge_hours, write_edge_minutes
from tracestore.example_queries import Example, Examples, example_traces, record_examples
from tracestore.migrate import applied_versions, load_migrations, migrate
from tracestore.otlp_columns import MetricColumns
from tracestore.retention_queries import drop_partition
from tracestore.silence_queries import SilenceRow, latest_silences, write_silence
from tracestore.slo_queries import keep_slots, kept_slots, last_slot_header, rollup_services
from tracestore.span_limits import Limits
from tracestore.span_writes import (
    insert_metric_points,
    insert_spans,
    present_metric_points,
    present_spans,
    span_column_codes,
)
from tracestore.store import NativeStore, Store, open_store
from tracestore.store_summary import latest_trace_through, span_count
from tracestore.tier_queries import is_pinned, pin_trace, trace_decision
from tracestore.tiering_queries import Selection, decide, mark_moved, move

NS = 1_000_000_000
HOUR = 3600
DAY = 86_400
SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code
_numbers = itertools.count()


def _attributes(pairs: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in pairs.items()]


@dataclass(frozen=True)
class Call:
    """One call from ``parent`` to ``child`` (a client span and its server child, the
    server side failing), and the sidecar metric of the child, all within one minute
    of a whole hour two hours back (so ``hour`` is closed and inside the span window)."""

    parent: str
    child: str
    namespace: str
    trace_id: str
    client_id: str
    server_id: str
    hour: int
    minute: int

    @property
    def start_ns(self) -> int:
        return (self.minute + 5) * NS

    @classmethod
    def new(cls, name: str) -> Call:
        hour = (int(time.time()) // HOUR - 2) * HOUR
        return cls(
            parent=f"rt-front-{name}",
            child=f"rt-pay-{name}",
            namespace=f"ns-{name}",
            trace_id=uuid.uuid4().hex,
            client_id=uuid.uuid4().hex[:16],
            server_id=uuid.uuid4().hex[:16],
            hour=hour,
            minute=hour + 30 * 60,
        )

    def traces(self) -> bytes:
        request = ExportTraceServiceRequest()
        sides = (
            (self.parent, self.client_id, "", CLIENT, 0, 2_000_000, 0),
            (self.child, self.server_id, self.client_id, SERVER, 100_000, 1_000_000, ERROR),
        )
        for service, span_id, parent_id, kind, offset, duration, status in sides:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(
                _attributes({"service.name": service, "k8s.namespace.name": self.namespace})
            )
            span = resource_spans.scope_spans.add().spans.add(
                trace_id=bytes.fromhex(self.trace_id),
                span_id=bytes.fromhex(span_id),
                parent_span_id=bytes.fromhex(parent_id),
                name=f"{service} call",
                kind=kind,
                start_time_unix_nano=self.start_ns + offset,
                end_time_unix_nano=self.start_ns + offset + duration,
            )
            span.status.code = status
        return request.SerializeToString()

    def metrics(self) -> bytes:
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.attributes.extend(_attributes({"service.name": self.child}))
        metric = resource_metrics.scope_metrics.add().metrics.add(name=aq.SIDECAR_METRIC, unit="s")
        metric.histogram.aggregation_temporality = 1  # delta
        point = metric.histogram.data_points.add(
            start_time_unix_nano=self.start_ns - NS,
            time_unix_nano=self.start_ns,
            count=4,
            sum=0.5,
            bucket_counts=[4, 0],
            explicit_bounds=[1.0],
        )
        point.attributes.extend(
            _attributes({"sidetrace.direction": "inbound", "status_class": "5xx"})
        )
        return request.SerializeToString()


def write_call(store: Store, call: Call) -> None:
    """Through the collector's path: OTLP bytes → the floor's columns (Native bytes for a
    server, lists for chDB) → one insert each."""
    now = time.time_ns()
    spans = trace_columns(Limits(), native_codes=span_column_codes(store))
    spans.add(call.traces(), now)
    insert_spans(store, spans.columns)
    points = MetricColumns(Limits())
    points.add(call.metrics(), now)
    insert_metric_points(store, points.columns)


@dataclass
class Floor:
    """One migrated database on one backend, with one call written into it."""

    store: Store
    call: Call
    fresh: Callable[[], Store]


@pytest.fixture(scope="module", params=["native", "chdb"])
def floor(
    request: pytest.FixtureRequest, clickhouse_server: ClickHouseServer, chdb_path: Path
) -> Iterator[Floor]:
    def fresh() -> Store:
        database = f"rt{os.getpid()}_{next(_numbers)}"
        if request.param == "native":
            url = clickhouse_server.url(database=database)
        else:
            url = f"chdb:{chdb_path}?database={database}"
        store = open_store(url)
        migrate(store)
        return store

    store = fresh()
    call = Call.new(uuid.uuid4().hex[:8])
    write_call(store, call)
    yield Floor(store, call, fresh)
    store.close()


# ---- tables written from spans (directly or by a materialized view) ----------------


def spans(f: Floor) -> None:
    c = f.call
    q = tq.SearchQuery(start_ns=c.minute * NS, end_ns=(c.minute + 60) * NS, service=c.parent)
    assert tq.search_trace_ids(f.store, q) == [c.trace_id]
    assert span_count(f.store) == 2


def spans_by_trace(f: Floor) -> None:
    c = f.call
    trace = tq.load_trace(f.store, c.trace_id, max_spans=100)
    assert trace is not None
    got = {(s.span_id, s.parent_span_id, s.service, s.kind, s.status_code) for s in trace.spans}
    assert got == {
        (c.client_id, "", c.parent, CLIENT, 0),
        (c.server_id, c.client_id, c.child, SERVER, ERROR),
    }
    keys = [(c.trace_id, c.client_id), (c.trace_id, c.server_id), (c.trace_id, "f" * 16)]
    assert present_spans(f.store, keys) == set(keys[:2])


def trace_index(f: Floor) -> None:
    c = f.call
    assert tq.trace_bounds(f.store, c.trace_id) == (c.start_ns, c.start_ns + 2_000_000)
    assert latest_trace_through(f.store, [c.parent, c.child]) == c.trace_id


def _operation(f: Floor, start_s: int, end_s: int) -> tuple:
    [row] = aq.operations(f.store, f.call.child, start_s, end_s)
    return row["operation"], row["kind"], row["calls"], row["errors"]


def latency_minute(f: Floor) -> None:
    c = f.call
    assert _operation(f, c.minute, c.minute + 60) == (f"{c.child} call", SERVER, 1, 1)
    assert {c.parent, c.child} <= rollup_services(f.store)


def latency_hour(f: Floor) -> None:
    c = f.call
    assert _operation(f, c.hour, c.hour + HOUR) == (f"{c.child} call", SERVER, 1, 1)


def _service(f: Floor, start_s: int, end_s: int) -> tuple:
    [row] = [r for r in aq.services(f.store, start_s, end_s) if r["service"] == f.call.child]
    return row["calls"], row["errors"], row["sidecar"]["requests"], row["sidecar"]["errors"]


def service_buckets_minute(f: Floor) -> None:
    assert _service(f, f.call.minute, f.call.minute + 60) == (1, 1, 4, 4)


def service_buckets_hour(f: Floor) -> None:
    assert _service(f, f.call.hour, f.call.hour + HOUR) == (1, 1, 4, 4)


def service_namespaces(f: Floor) -> None:
    c = f.call
    found = aq.service_namespaces(f.store, c.hour, c.hour + HOUR)
    assert (found[c.parent], found[c.child]) == (c.namespace, c.namespace)


def metric_points(f: Floor) -> None:
    c = f.call
    red = aq.sidecar_red(f.store, c.minute, c.minute + 60)[c.child]
    assert (red["requests"], red["errors"]) == (4, 4)
    key = (c.child, aq.SIDECAR_METRIC, c.start_ns)
    [(service, name, time_ns, values)] = present_metric_points(
        f.store, [(*key, ("inbound", "5xx")), (*key, ("inbound", "2xx"))]
    )
    assert (service, name, time_ns, sorted(values)) == (*key, ["5xx", "inbound"])


def _edge(f: Floor, start_s: int, end_s: int) -> tuple | None:
    c = f.call
    found = [e for e in aq.edges(f.store, start_s, end_s) if e.parent == c.parent]
    if not found:
        return None
    [edge] = found
    return edge.child, edge.child_kind, edge.figures.calls, edge.figures.errors


def edges_minute(f: Floor) -> None:
    c = f.call
    write_edge_minutes(f.store, c.minute, c.minute + 60, version=time.time_ns())
    assert _edge(f, c.minute, c.minute + 60) == (c.child, "service", 1, 1)


def edges_hour(f: Floor) -> None:
    c = f.call
    write_edge_minutes(f.store, c.minute, c.minute + 60, version=time.time_ns())
    assert _edge(f, c.hour, c.hour + HOUR) is None  # whole hours read edges_hour alone
    write_edge_hours(f.store, c.hour, c.hour + HOUR, version=time.time_ns())
    assert _edge(f, c.hour, c.hour + HOUR) == (c.child, "service", 1, 1)


# ---- tables the dashboard's alerting and SLO evaluation write ----------------------


def alert_events(f: Floor) -> None:
    event = AlertEvent(
        at_ms=f.call.start_ns // 1_000_000,
        fingerprint=f"fp-{f.call.trace_id}",
        alertname="CheckoutLatency",
        severity="page",
        kind="latency",
        from_state="pending",
        to_state="firing",
        value="0.93",
        silenced=False,
        starts_at_ms=f.call.minute * 1000,
        ends_at_ms=0,
        labels=(("service", f.call.child),),
        annotations=(("summary", "slow"),),
    )
    write_events(f.store, [event])
    assert event_history(f.store, 10, event.fingerprint) == [event]


def alert_notifications(f: Floor) -> None:
    attempt = NotificationAttempt(
        at_ms=f.call.start_ns // 1_000_000,
        receiver="oncall",
        group_key=f"group-{f.call.trace_id}",
        status="firing",
        fingerprints=("fp-a", "fp-b"),
        attempt=2,
        outcome="failed",
        http_status=503,
        error="unavailable",
    )
    write_attempt(f.store, attempt)
    assert attempt in recent_attempts(f.store, 100)


def alert_deliveries(f: Floor) -> None:
    now_ms = int(time.time() * 1000)
    row = DeliveryRow(
        at_ms=now_ms,
        id=f"n-{f.call.trace_id}",
        decided_at_ms=now_ms,
        receiver="oncall",
        group_key=f"group-{f.call.trace_id}",
        state=PENDING,
        status="firing",
        fingerprints=("fp-a",),
        firing=("fp-a",),
        resolved=(),
        leader="replica-0",
        term=3,
        body='{"alerts": []}',
    )
    write_deliveries(f.store, [row])
    since = now_ms // 1000 - 60
    assert Unsent(
        row.id, row.receiver, row.group_key, row.status, row.fingerprints, now_ms, row.body
    ) in unsent(f.store, since)
    assert GroupDecision(
        row.receiver, row.group_key, row.firing, row.resolved, now_ms
    ) in last_decisions(f.store, since)


def alert_silences(f: Floor) -> None:
    row = SilenceRow(
        id=f"s-{f.call.trace_id}",
        created_at_ms=1_700_000_000_000,
        starts_at_ms=1_700_000_000_000,
        ends_at_ms=1_700_000_360_000,
        created_by="sre",
        comment="maintenance",
        matcher_names=("service",),
        matcher_ops=("=",),
        matcher_values=(f.call.child,),
    )
    write_silence(f.store, row)
    assert row in latest_silences(f.store)


def slo_slots(f: Floor) -> None:
    version = time.time_ns()
    keep_slots(f.store, 7, version, [(60, 5, "slot body")], '{"header": 1}')
    assert last_slot_header(f.store) == (7, version, '{"header": 1}')
    assert kept_slots(f.store, 7, version) == [(60, 5, version, "slot body")]


# ---- retention tiering -------------------------------------------------------------


def trace_pins(f: Floor) -> None:
    assert not is_pinned(f.store, f.call.trace_id)
    pin_trace(f.store, f.call.trace_id, "look at this")
    assert is_pinned(f.store, f.call.trace_id)


def trace_examples(f: Floor) -> None:
    example = Example(f.call.trace_id, 2.0, f.call.start_ns)
    assert record_examples(f.store, "chart", [Examples("scope", slowest=example)]) == 1
    assert example_traces(f.store)[f.call.trace_id] == ("chart",)


def _kept(f: Floor) -> tuple[Store, Call]:
    """A fresh database whose one (failed, so kept) trace is decided and moved to the
    kept tier, then dropped from the hot tables."""
    store, call = f.fresh(), f.call
    write_call(store, call)
    day_s = call.minute // DAY * DAY
    decide(store, day_s, 0, Selection(keep_baseline=0.0, buckets=1), time.time_ns(), version=1)
    move(store, day_s, 0, 1)
    mark_moved(store, day_s, 0, 1, version=2)
    for table in ("spans", "spans_by_trace"):
        drop_partition(store, table, time.strftime("%Y%m%d", time.gmtime(day_s)))
    return store, call


def trace_decisions(f: Floor) -> None:
    store, call = _kept(f)
    decision = trace_decision(store, call.trace_id)
    assert decision is not None
    assert (decision.kept, decision.moved, "error" in decision.reasons) == (True, True, True)


def spans_kept(f: Floor) -> None:
    store, call = _kept(f)
    assert present_spans(store, [(call.trace_id, call.client_id)]) == set()  # hot tier gone
    trace = tq.load_trace(store, call.trace_id, max_spans=100)
    assert trace is not None
    assert {s.span_id for s in trace.spans} == {call.client_id, call.server_id}


def schema_migrations(f: Floor) -> None:
    assert applied_versions(f.store) == {m.version for m in load_migrations()}


ROUND_TRIPS: dict[str, Callable[[Floor], None]] = {
    check.__name__: check
    for check in (
        spans,
        spans_by_trace,
        trace_index,
        metric_points,
        latency_minute,
        latency_hour,
        service_buckets_minute,
        service_buckets_hour,
        service_namespaces,
        edges_minute,
        edges_hour,
        alert_events,
        alert_notifications,
        alert_deliveries,
        alert_silences,
        slo_slots,
        trace_pins,
        trace_examples,
        trace_decisions,
        spans_kept,
        schema_migrations,
    )
}


def test_every_table_has_a_round_trip(floor: Floor) -> None:
    rows = floor.store.query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine != 'MaterializedView'",
        {"db": floor.store.database},
    )
    assert sorted(str(r[0]) for r in rows) == sorted(ROUND_TRIPS)


def test_a_server_takes_spans_as_native_bytes(floor: Floor) -> None:
    """The collector's writer sends a server Native batches: every spans column has a
    type the decoder writes (else it would fall back to lists, correct but slower)."""
    codes = span_column_codes(floor.store)
    assert (codes is not None) == isinstance(floor.store, NativeStore)


@pytest.mark.parametrize("table", list(ROUND_TRIPS))
def test_write_then_read(floor: Floor, table: str) -> None:
    ROUND_TRIPS[table](floor)
