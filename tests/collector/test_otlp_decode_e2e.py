"""Both decoders end to end: the same OTLP/gRPC requests through a collector with
the compiled decoder and one with the Python decoder store the same rows, on the
real clickhouse-server and in chDB."""

from __future__ import annotations

import random
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from collector.writer import WriterConfig
from tests.support.collector_helpers import (
    count_spans,
    grpc_export,
    running_collector,
    span_request,
)
from tests.support.polling import eventually
from tracestore.compiled_columns import _otlpdecode
from tracestore.migrate import migrate
from tracestore.otlp_columns import SPAN_COLUMNS
from tracestore.store import open_store

pytestmark = pytest.mark.skipif(_otlpdecode is None, reason="tracestore._otlpdecode not built")

VALUES = [
    AnyValue(string_value="x" * 300),
    AnyValue(string_value='ünï\n"q"'),
    AnyValue(bool_value=True),
    AnyValue(int_value=-(2**63)),
    AnyValue(double_value=1e-300),
    AnyValue(bytes_value=b"\x00\xff" * 200),
    AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])),
    AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue())])),
    AnyValue(),
]


def rich_requests(start_ns: int) -> list[bytes]:
    """Every kind of value (some cut to the attribute limit), events, links, status,
    scope fields. (Clamping depends on the time received: the differential tests.)"""
    rng = random.Random(5)
    requests = []
    for n in range(3):
        request: ExportTraceServiceRequest = span_request(4, "svc", rng, start_ns)
        resource_spans = request.resource_spans[0]
        resource_spans.schema_url = "https://schema/r"
        resource_spans.resource.attributes.add(key="host", value=VALUES[n])
        scope_spans = resource_spans.scope_spans[0]
        scope_spans.scope.name, scope_spans.scope.version = "lib", "1.2"
        scope_spans.scope.attributes.add(key="s", value=VALUES[1])
        for i, span in enumerate(scope_spans.spans):
            span.attributes.extend(KeyValue(key=f"k{j}", value=v) for j, v in enumerate(VALUES))
            span.status.code, span.status.message = i % 3, f"status {i}"
            span.trace_state = "a=b"
            span.flags = 0x101
            event = span.events.add(name="e", time_unix_nano=span.start_time_unix_nano + 5)
            event.attributes.add(key="ev", value=VALUES[(i + n) % len(VALUES)])
            link = span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
            link.attributes.add(key="ln", value=VALUES[i])
            link.flags = 1
        requests.append(request.SerializeToString())
    return requests


def stored_rows(store) -> list[tuple]:
    return store.query(f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans ORDER BY span_id")


def test_compiled_and_python_decoders_store_the_same_rows(store_url, tmp_path):
    start_ns = time.time_ns()
    rows = {}
    for compiled in (True, False):
        url = store_url if compiled else store_url + "py"  # a second database alike
        store = open_store(url)
        migrate(store)
        writer = WriterConfig(batch_seconds=0.2, compiled_decoder=compiled)
        with running_collector(store, tmp_path / str(compiled), writer=writer) as collector:
            with grpc.insecure_channel(f"127.0.0.1:{collector.config.grpc_port}") as channel:
                export = grpc_export(channel)
                for payload in rich_requests(start_ns):
                    reply = ExportTraceServiceResponse.FromString(export(payload, timeout=30))
                    assert not reply.HasField("partial_success")
            eventually(lambda s=store: count_spans(s) == 12)
        rows[compiled] = stored_rows(store)
    assert len(rows[True]) == 12
    assert rows[True] == rows[False]
