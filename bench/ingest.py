"""Ingest throughput of one collector core: OTLP/gRPC in, spans queryable in ClickHouse.

Starts a real clickhouse-server and ``sidetrace collector`` pinned with taskset to
one core (the server and the senders share the other), sends pre-built OTLP/gRPC
requests from separate processes, and waits until every span is queryable. Two
workloads, each against a fresh collector: ``sdk`` (spans of ~250 bytes, 5
attributes, 10 services; the reference) and ``wide`` (20 attributes and 2 events
per span; its lines start with ``wide_``).

Per workload: ``protobuf_parse_spans_per_s`` (parsing the same requests with
protobuf alone, on the collector's core: the machine's yardstick),
``spans_per_collector_cpu_second`` (spans over the CPU time the collector used,
which tells a busy machine from a slow collector), ``ingest_vs_parse_ratio`` (the
two divided, comparable across machines), ``collector_rss_mb`` (peak) and
``ingest_spans_per_s`` (wall clock, first send to last span queryable). With
``--compare`` the sdk workload also runs with the Python decoder first (lines
start with ``python_decoder_``). The headline, last: the sdk workload's
``spans_per_collector_cpu_second``.

    python bench/ingest.py [--quick] [--spans N] [--compare] [--workloads sdk,wide]
                           [--profile OUT.txt]
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
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, from a checkout

from runtime.loopback_ports import free_port  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402
from tracestore.store import open_store  # noqa: E402

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


def build_wide_request(rng: random.Random, service: str, spans: int, now_ns: int) -> bytes:
    """Like ``build_request`` with 20 attributes and 2 events (2 attributes each) a span."""
    request = ExportTraceServiceRequest.FromString(build_request(rng, service, spans, now_ns))
    for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.attributes.extend(
            KeyValue(key=f"app.field_{k}", value=_wide_value(k, i)) for k in range(15)
        )
        for e in range(2):
            event = span.events.add(name=f"event-{e}", time_unix_nano=span.start_time_unix_nano)
            event.attributes.extend(
                [
                    KeyValue(key="event.seq", value=AnyValue(int_value=e)),
                    KeyValue(key="event.detail", value=AnyValue(string_value="cache miss")),
                ]
            )
    return request.SerializeToString()


def _wide_value(k: int, i: int) -> AnyValue:
    if k % 3 == 0:
        return AnyValue(int_value=i * k)
    if k % 3 == 1:
        return AnyValue(bool_value=bool(i & 1))
    return AnyValue(string_value=f"value-{k}-{i % 50}")


WORKLOADS = {"sdk": build_request, "wide": build_wide_request}


def build_payloads(workload: str, seed: int, requests: int, spans: int) -> list[bytes]:
    rng = random.Random(seed)
    now = time.time_ns()
    build = WORKLOADS[workload]
    return [build(rng, SERVICES[i % 10], spans, now) for i in range(requests)]


def parse_rate(workload: str, spans: int, cpu: int, out) -> None:
    """A separate process on the collector's core: spans per CPU-second that protobuf
    alone parses from this workload's requests (the best of three rounds)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    payloads = build_payloads(workload, 99, max(1, 20_000 // spans), spans)
    best = 0.0
    for _ in range(3):
        began, parsed = time.process_time(), 0
        while time.process_time() - began < 0.5:
            for payload in payloads:
                ExportTraceServiceRequest.FromString(payload)
            parsed += spans * len(payloads)
        best = max(best, parsed / (time.process_time() - began))
    out.send(best)


def sender(
    target: str, workload: str, seed: int, requests: int, spans: int, ready, go, cpu: int
) -> None:
    """A separate process: build all requests first, then send them, a few in flight."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    payloads = build_payloads(workload, seed, requests, spans)
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


@dataclass(frozen=True)
class Run:
    """One collector run: which workload, which decoder, how many spans, which cores."""

    workload: str
    python_decoder: bool
    total: int
    per_request: int
    senders: int
    collector_cpu: int
    other_cpu: int
    profile: str | None = None


def measure_parse(run: Run) -> float:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=parse_rate, args=(run.workload, run.per_request, run.collector_cpu, send)
    )
    process.start()
    rate = receive.recv()
    process.join()
    return rate


def ingest(server: ClickHouseServer, work: Path, run: Run) -> dict[str, float]:
    """Start a collector on a fresh database, send ``run.total`` spans, wait for them."""
    url = server.url(database=f"bench_{run.workload}_{'py' if run.python_decoder else 'c'}")
    store = open_store(url)
    grpc_port = free_port()
    spool = work / f"spool-{run.workload}-{int(run.python_decoder)}"
    command = [sys.executable, "-m", "sidetrace", "--log-level", "warning", "collector"]
    command += ["--clickhouse", url, "--grpc-port", str(grpc_port)]
    command += ["--http-port", str(free_port()), "--admin-port", str(free_port())]
    command += ["--spool-dir", str(spool)]
    if run.python_decoder:
        command.append("--python-decoder")
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(run.collector_cpu), *command]
    collector = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert collector.stdout is not None
        collector.stdout.readline()  # "collector ready ..." once listening
        requests_per_sender = run.total // (run.per_request * run.senders)
        ctx = mp.get_context("spawn")
        ready = [ctx.Event() for _ in range(run.senders)]
        go = ctx.Event()
        senders = [
            ctx.Process(
                target=sender,
                args=(
                    f"127.0.0.1:{grpc_port}",
                    run.workload,
                    n,
                    requests_per_sender,
                    run.per_request,
                    ready[n],
                    go,
                    run.other_cpu,
                ),
            )
            for n in range(run.senders)
        ]
        for process in senders:
            process.start()
        for event in ready:
            event.wait(600)
        profiler = None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if run.profile and Path(py_spy).exists():
            profiler = subprocess.Popen(
                [py_spy, "record", "--gil", "-f", "raw", "-o", run.profile]
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
            if count >= run.total:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - began
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        cpu = cpu_seconds(collector.pid) - cpu_before
        return {
            "spans": run.total,
            "spans_queryable": count,
            "send_seconds": sent,
            "ingest_seconds": elapsed,
            "collector_cpu_percent": 100 * cpu / elapsed,
            "spans_per_collector_cpu_second": count / cpu,
            "collector_rss_mb": peak_rss_mb(collector.pid),
            "ingest_spans_per_s": count / elapsed,
        }
    finally:
        if collector.poll() is None:
            collector.send_signal(signal.SIGTERM)
            try:
                collector.wait(60)
            except subprocess.TimeoutExpired:
                collector.kill()
        store.close()


FORMATS = {"send_seconds": ".2f", "ingest_seconds": ".2f", "ingest_vs_parse_ratio": ".3f"}
ORDER = (
    "spans",
    "spans_queryable",
    "send_seconds",
    "ingest_seconds",
    "collector_cpu_percent",
    "ingest_spans_per_s",
    "protobuf_parse_spans_per_s",
    "ingest_vs_parse_ratio",
    "collector_rss_mb",
    "spans_per_collector_cpu_second",
)


def report(prefix: str, figures: dict[str, float]) -> None:
    for name in ORDER:
        print(f"{prefix}{name}={figures[name]:{FORMATS.get(name, '.0f')}}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--spans", type=int, default=None, help="spans in total, per workload")
    parser.add_argument("--spans-per-request", type=int, default=500)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--workloads", default="sdk,wide", help="comma-separated: sdk, wide")
    parser.add_argument(
        "--compare", action="store_true", help="run the sdk workload with the Python decoder too"
    )
    parser.add_argument(
        "--profile", default=None, help="py-spy (GIL holders only) the sdk collector into this file"
    )
    args = parser.parse_args()
    total = args.spans or (200_000 if args.quick else 2_000_000)
    per_request = args.spans_per_request
    total = max(1, total // (per_request * args.senders)) * per_request * args.senders
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown or not workloads:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {sorted(WORKLOADS)}")
    # The sdk workload last, its compiled run the very last: the headline ends the output.
    legs = [(w, False) for w in workloads if w != "sdk"]
    if "sdk" in workloads:
        legs = ([("sdk", True)] if args.compare else []) + legs + [("sdk", False)]

    work = Path(tempfile.mkdtemp(prefix="sidetrace-bench-"))
    server = ClickHouseServer(root=work / "clickhouse")
    ok = True
    try:
        server.start(cpu=cpus[-1])
        for workload, python_decoder in legs:
            run = Run(
                workload,
                python_decoder,
                total,
                per_request,
                args.senders,
                cpus[0],
                cpus[-1],
                args.profile if workload == "sdk" and not python_decoder else None,
            )
            figures = ingest(server, work, run)
            figures["protobuf_parse_spans_per_s"] = measure_parse(run)
            figures["ingest_vs_parse_ratio"] = (
                figures["spans_per_collector_cpu_second"] / figures["protobuf_parse_spans_per_s"]
            )
            prefix = ("python_decoder_" if python_decoder else "") + (
                "" if workload == "sdk" else f"{workload}_"
            )
            report(prefix, figures)
            ok = ok and figures["spans_queryable"] >= total
        return 0 if ok else 1
    finally:
        server.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
