"""Ingest throughput of one collector core: OTLP/gRPC in, spans queryable in ClickHouse.

Starts a real clickhouse-server and ``sidetrace collector`` pinned with taskset to
one core (the server and the senders share the other), sends pre-built OTLP/gRPC
requests (spans of ~250 bytes, 5 attributes, 10 services) from separate
processes, and waits until every span is queryable. Prints ``name=value`` lines,
``collector_rss_mb`` (peak) and ``ingest_spans_per_s`` (wall clock, first send to
last span queryable) last. ``spans_per_collector_cpu_second`` is the same count
over the CPU time the collector used, which tells a busy machine from a slow
collector.

    python bench/ingest.py [--quick] [--spans N] [--profile OUT.txt]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from sidetrace.local_server import ClickHouseServer, free_port
from sidetrace.store import open_store

SERVICES = [f"service-{i}" for i in range(10)]
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def build_request(rng: random.Random, service: str, spans: int, now_ns: int) -> bytes:
    """One SDK-like request: one resource, one scope, ``spans`` spans of ~250 bytes."""
    request = ExportTraceServiceRequest()
    resource_spans: ResourceSpans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    trace_id = rng.randbytes(16)
    for i in range(spans):
        if i % 8 == 0:
            trace_id = rng.randbytes(16)
        start = now_ns + i * 1000
        span = scope.spans.add(
            trace_id=trace_id,
            span_id=rng.randbytes(8),
            parent_span_id=rng.randbytes(8) if i % 8 else b"",
            name=f"GET /api/v1/items/{i % 20}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randrange(100_000, 50_000_000),
        )
        span.attributes.extend(
            [
                KeyValue(key="http.method", value=AnyValue(string_value="GET")),
                KeyValue(key="http.status_code", value=AnyValue(int_value=200)),
                KeyValue(key="http.route", value=AnyValue(string_value="/api/v1/items/{id}")),
                KeyValue(key="net.peer.name", value=AnyValue(string_value=f"{service}.svc")),
                KeyValue(key="user_agent", value=AnyValue(string_value="bench-client/1.0")),
            ]
        )
    return request.SerializeToString()


def sender(target: str, seed: int, requests: int, spans: int, ready, go, cpu: int) -> None:
    """A separate process: build all requests first, then send them, a few in flight."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    rng = random.Random(seed)
    now = time.time_ns()
    payloads = [build_request(rng, SERVICES[i % 10], spans, now) for i in range(requests)]
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    ready.set()
    go.wait()
    pending = []
    for payload in payloads:
        pending.append(_send(export, payload))
        if len(pending) >= 4:
            _finish(export, pending.pop(0))
    for call in pending:
        _finish(export, call)
    channel.close()


def _send(export, payload: bytes):
    return payload, export.future(payload, timeout=60)


def _finish(export, call) -> None:
    payload, future = call
    while True:
        try:
            future.result()
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(0.2)
            future = export.future(payload, timeout=60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--spans", type=int, default=None, help="spans in total")
    parser.add_argument("--spans-per-request", type=int, default=500)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument(
        "--profile", default=None, help="py-spy (GIL holders only) the collector into this file"
    )
    args = parser.parse_args()
    total = args.spans or (200_000 if args.quick else 2_000_000)
    per_request = args.spans_per_request
    requests_per_sender = max(1, total // (per_request * args.senders))
    total = requests_per_sender * per_request * args.senders
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    collector_cpu, other_cpu = cpus[0], cpus[-1]

    work = Path(tempfile.mkdtemp(prefix="sidetrace-bench-"))
    server = ClickHouseServer(root=work / "clickhouse")
    collector = None
    try:
        server.start(cpu=other_cpu)
        url = server.url(database="bench")
        store = open_store(url)
        grpc_port = free_port()
        command = [
            sys.executable,
            "-m",
            "sidetrace",
            "--log-level",
            "warning",
            "collector",
            "--clickhouse",
            url,
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(free_port()),
            "--admin-port",
            str(free_port()),
            "--spool-dir",
            str(work / "spool"),
        ]
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(collector_cpu), *command]
        collector = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert collector.stdout is not None
        collector.stdout.readline()  # "collector ready ..." once listening

        ctx = mp.get_context("spawn")
        ready = [ctx.Event() for _ in range(args.senders)]
        go = ctx.Event()
        senders = [
            ctx.Process(
                target=sender,
                args=(
                    f"127.0.0.1:{grpc_port}",
                    n,
                    requests_per_sender,
                    per_request,
                    ready[n],
                    go,
                    other_cpu,
                ),
            )
            for n in range(args.senders)
        ]
        for process in senders:
            process.start()
        for event in ready:
            event.wait(600)
        profiler = None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if args.profile and Path(py_spy).exists():
            profiler = subprocess.Popen(
                [py_spy, "record", "--gil", "-f", "raw", "-o", args.profile]
                + ["-p", str(collector.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu_before = cpu_seconds(collector.pid)
        began = time.monotonic()
        go.set()
        for process in senders:
            process.join()
        sent = time.monotonic() - began
        count = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            count = int(store.query("SELECT count() FROM spans")[0][0])
            if count >= total:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - began
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        rss = peak_rss_mb(collector.pid)
        cpu = cpu_seconds(collector.pid) - cpu_before
        print(f"spans={total}")
        print(f"spans_queryable={count}")
        print(f"send_seconds={sent:.2f}")
        print(f"ingest_seconds={elapsed:.2f}")
        print(f"collector_cpu_percent={100 * cpu / elapsed:.0f}")
        print(f"spans_per_collector_cpu_second={count / cpu:.0f}")
        print(f"collector_rss_mb={rss:.0f}")
        print(f"ingest_spans_per_s={count / elapsed:.0f}")
        return 0 if count >= total else 1
    finally:
        if collector is not None and collector.poll() is None:
            collector.send_signal(signal.SIGTERM)
            try:
                collector.wait(60)
            except subprocess.TimeoutExpired:
                collector.kill()
        server.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
