"""Helpers for the collector tests: start one on free ports, build and send OTLP, wait."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.service import Collector, CollectorConfig
from collector.writer import WriterConfig
from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.clickhouse_server import ClickHouseServer
from tracestore.store import Store

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def fresh_native_url(server: ClickHouseServer) -> str:
    """A database of its own on the session's clickhouse-server."""
    return server.url(database=f"collector_{uuid.uuid4().hex[:12]}")


def collector_config(spool_dir: Path, **overrides: object) -> CollectorConfig:
    """Free ports, a quick writer, and whatever the test overrides."""
    config = CollectorConfig(
        grpc_port=free_port(),
        http_port=free_port(),
        admin_port=free_port(),
        spool_dir=str(spool_dir),
        spool_fsync="interval",
        writer=WriterConfig(batch_seconds=0.2),
    )
    return replace(config, **overrides)


@contextmanager
def running_collector(store: Store, spool_dir: Path, **overrides: object) -> Iterator[Collector]:
    collector = Collector(store, collector_config(spool_dir, **overrides))
    collector.start()
    try:
        yield collector
    finally:
        collector.stop(30)


def span_request(
    count: int,
    service: str = "svc",
    rng: random.Random | None = None,
    start_ns: int | None = None,
    attributes: dict[str, str] | None = None,
) -> ExportTraceServiceRequest:
    """One request of ``count`` spans with random valid ids."""
    rng = rng or random.Random()
    start_ns = start_ns or time.time_ns()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope_spans = resource_spans.scope_spans.add()
    for i in range(count):
        span = scope_spans.spans.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            name=f"op-{i % 3}",
            kind=2,
            start_time_unix_nano=start_ns + i,
            end_time_unix_nano=start_ns + i + 1000,
        )
        for key, value in (attributes or {}).items():
            span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return request


def span_ids(request: ExportTraceServiceRequest) -> list[str]:
    return [
        span.span_id.hex()
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def grpc_export(channel: grpc.Channel, method: str = TRACE_EXPORT) -> grpc.UnaryUnaryMultiCallable:
    """A raw-bytes OTLP Export call on ``channel``."""
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def count_spans(store: Store, where: str = "1", params: dict | None = None) -> int:
    return int(store.query(f"SELECT count() FROM spans WHERE {where}", params or {})[0][0])


def collector_process(
    clickhouse_url: str, spool_dir: Path, ports: dict[str, int], *extra: str
) -> subprocess.Popen:
    """``sidetrace collector`` as a real subprocess, started and listening."""
    command = [
        sys.executable,
        "-m",
        "sidetrace",
        "collector",
        "--clickhouse",
        clickhouse_url,
        "--grpc-port",
        str(ports["grpc"]),
        "--http-port",
        str(ports["http"]),
        "--admin-port",
        str(ports["admin"]),
        "--spool-dir",
        str(spool_dir),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = spool_dir.parent / "collector.log"
    with open(log, "ab") as stderr:  # a file, not a pipe nobody reads: it never blocks
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "collector ready" not in line:
        process.kill()
        process.wait(10)
        raise AssertionError(f"collector did not start: {line!r} {log.read_text()[-2000:]}")
    return process


def decode_attribute(type_code: int, text: str) -> object:
    """Stored (type, text) back to the Python value the SDK was given."""
    if type_code == 1:
        return text
    if type_code == 2:
        return text == "true"
    if type_code == 3:
        return int(text)
    if type_code == 4:
        return float(text)
    if type_code == 6:
        return tuple(_any_value(v) for v in json.loads(text).get("values", []))
    raise AssertionError(f"unexpected attribute type {type_code}")


def _any_value(value: dict) -> object:
    ((kind, inner),) = value.items()
    return {
        "stringValue": str,
        "boolValue": bool,
        "intValue": int,
        "doubleValue": float,
    }[kind](inner)
