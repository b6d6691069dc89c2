"""Hostile clients against a real ``sidetrace collector`` process (issue 24).

Resource holding (idle gRPC streams with and without a token, trickled HTTP
bodies, half-sent headers), poison values on both stores, the dead-letter file,
gzip members and trailing bytes, JSON nesting, the bearer scheme's case. Each
expects a clear refusal or timeout, bounded memory, and legitimate traffic that
still gets through while the attack lasts.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.ingest import Ingest
from collector.spool import DEAD_LETTER_FILE, TRACES, Spool
from collector.stats import Stats
from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.collector_helpers import (
    METRICS_EXPORT,
    TRACE_EXPORT,
    collector_process,
    fresh_native_url,
    grpc_export,
    span_ids,
    span_request,
)
from tests.support.polling import eventually
from tracestore.otlp_columns import (
    MAX_COUNT,
    MAX_SPAN_KIND,
    MAX_STATUS_CODE,
    MAX_TIME_NS,
    Limits,
    validate_metrics,
    validate_traces,
)
from tracestore.store import open_store

TOKEN = "hostile-test-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
PROTOBUF = {"Content-Type": "application/x-protobuf"}
READ_TIMEOUT = 10
HEADER_TIMEOUT = 3
U64_MAX = 2**64 - 1


@dataclass
class RunningCollector:
    process: subprocess.Popen
    ports: dict[str, int]
    url: str
    spool: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.ports['admin']}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[1])
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _start(url: str, spool: Path, *extra: str) -> RunningCollector:
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
    process = collector_process(url, spool, ports, "--batch-seconds", "0.2", *extra)
    return RunningCollector(process, ports, url, spool)


@pytest.fixture(scope="module")
def guarded(clickhouse_server, tmp_path_factory) -> Iterator[RunningCollector]:
    """A collector with a token and short read and header timeouts."""
    url = fresh_native_url(clickhouse_server)
    running = _start(
        url,
        tmp_path_factory.mktemp("hostile") / "spool",
        "--auth-token",
        TOKEN,
        "--read-timeout",
        str(READ_TIMEOUT),
        "--header-timeout",
        str(HEADER_TIMEOUT),
    )
    yield running
    running.stop()


def _stored(url: str, ids: list[str]) -> int:
    store = open_store(url)
    return int(
        store.query("SELECT count() FROM spans WHERE span_id IN %(ids)s", {"ids": tuple(ids)})[0][0]
    )


def _sdk_spans(count: int, service: str = "legit") -> list:
    """Real SDK spans, finished, ready for an exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("hostile")
    for i in range(count):
        with tracer.start_as_current_span(f"op-{i}"):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _sdk_ids(spans: list) -> list[str]:
    return [f"{span.context.span_id:016x}" for span in spans]


# -- gRPC: calls that send headers and no message -----------------------------------


def _idle_calls(
    target: str, count: int, metadata: tuple, release: threading.Event
) -> tuple[list[grpc.Channel], list[grpc.Future]]:
    """``count`` Export calls whose request stream never yields a message."""

    def nothing():
        release.wait()
        return
        yield  # a generator that ends without a message

    channels = [grpc.insecure_channel(target) for _ in range(4)]
    futures = []
    for i in range(count):
        call = channels[i % len(channels)].stream_unary(
            TRACE_EXPORT, request_serializer=None, response_deserializer=None
        )
        futures.append(call.future(nothing(), metadata=metadata, timeout=120))
    return channels, futures


def _code(future: grpc.Future, timeout: float) -> grpc.StatusCode:
    try:
        future.result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise AssertionError("the idle call is still open") from None
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_idle_grpc_calls_are_refused_or_timed_out_while_real_exports_succeed(guarded):
    release = threading.Event()
    rss_before = guarded.rss_mb()
    began = time.monotonic()
    anonymous_channels, anonymous = _idle_calls(guarded.grpc_target, 32, (), release)
    token_channels, with_token = _idle_calls(guarded.grpc_target, 24, AUTH, release)
    try:
        # Without a token: refused from the metadata, without waiting for a message.
        for future in anonymous:
            assert _code(future, 60) == grpc.StatusCode.UNAUTHENTICATED
        # Meanwhile a real exporter gets through, promptly, on every attempt.
        exporter = GrpcSpanExporter(
            endpoint=guarded.grpc_target, insecure=True, headers=AUTH, timeout=READ_TIMEOUT
        )
        spans = _sdk_spans(5)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        if time.monotonic() - began < READ_TIMEOUT:
            assert not any(f.done() for f in with_token), "idle calls ended before the deadline"
        # With a token: the receive deadline ends them, with a clear status.
        for future in with_token:
            assert _code(future, 90) == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "no request message" in future.exception().details()
        assert guarded.rss_mb() - rss_before < 64
        eventually(lambda: _stored(guarded.url, _sdk_ids(spans)) == 5)
    finally:
        release.set()
        for channel in anonymous_channels + token_channels:
            channel.close()


def test_a_half_sent_http2_preface_is_closed(guarded):
    """A connection that never finishes its handshake is dropped at the header deadline."""
    sock = _connect(guarded.ports["grpc"])
    try:
        sock.sendall(b"PRI * HTTP/2.0\r\n")  # and never the rest of the preface
        began = time.monotonic()
        _, closed = _answer(sock, 60)
        assert closed - began < 30  # grpcio's default is 120 s; the deadline is 3 s here
    finally:
        sock.close()


# -- OTLP/HTTP: trickled bodies and half-sent headers ---------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    return sock


def _post_head(token: bool, length: int = 1_000_000) -> bytes:
    auth = f"Authorization: Bearer {TOKEN}\r\n" if token else ""
    return (
        "POST /v1/traces HTTP/1.1\r\nHost: collector\r\n"
        f"Content-Type: application/x-protobuf\r\n{auth}Content-Length: {length}\r\n\r\n"
    ).encode()


def _answer(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """The bytes the server sends until it closes the connection, and when it closed."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"connection still open after {timeout}s: {data[:80]!r}") from None
    except ConnectionResetError:
        pass
    return data, time.monotonic()


class Trickler(threading.Thread):
    """Sends ``byte`` once a second on each socket until stopped or the peer closes."""

    def __init__(self, sockets: list[socket.socket], byte: bytes) -> None:
        super().__init__(daemon=True)
        self.sockets = sockets
        self.byte = byte
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # closed by the server: done
                    sock.send(self.byte)


def _export_over_http(guarded: RunningCollector) -> list:
    """A real exporter's spans, acknowledged within its timeout."""
    exporter = HttpSpanExporter(
        endpoint=f"{guarded.http}/v1/traces",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=READ_TIMEOUT,
    )
    spans = _sdk_spans(5)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    return spans


def test_trickled_bodies_do_not_block_real_posts(guarded):
    port = guarded.ports["http"]
    rss_before = guarded.rss_mb()
    trickling = [_connect(port) for _ in range(24)]
    anonymous = [_connect(port) for _ in range(16)]
    for sock in trickling:
        sock.sendall(_post_head(token=True) + b"\x0a")
    for sock in anonymous:
        sock.sendall(_post_head(token=False) + b"\x0a")
    trickler = Trickler(trickling + anonymous, b"\x0a")
    trickler.start()
    try:
        # A real exporter gets through while all of them hold their connections.
        spans = _export_over_http(guarded)
        for sock in anonymous:  # refused on the headers, before the body
            data, _ = _answer(sock, 60)
            assert data.startswith(b"HTTP/1.1 401"), data[:80]
        for sock in trickling:
            data, _ = _answer(sock, 90)
            assert data.startswith(b"HTTP/1.1 408"), data[:80]
            assert b"body not received within" in data
        assert guarded.rss_mb() - rss_before < 64
        eventually(lambda: _stored(guarded.url, _sdk_ids(spans)) == 5)
    finally:
        trickler.halt.set()
        for sock in trickling + anonymous:
            sock.close()


def test_half_sent_headers_and_silent_connections_are_closed(guarded):
    port = guarded.ports["http"]
    began = time.monotonic()
    half_headers = [_connect(port) for _ in range(16)]
    for sock in half_headers:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Le")
    silent = [_connect(port) for _ in range(8)]
    trickler = Trickler(half_headers, b"n")  # "Content-Lennn…": a name that never ends
    trickler.start()
    try:
        spans = _export_over_http(guarded)
        for sock in half_headers + silent:
            data, closed = _answer(sock, 60)
            assert data.startswith(b"HTTP/1.1 408"), data[:80]
            assert closed - began < 60  # "well before 120 s"; the deadline is 3 s here
        eventually(lambda: _stored(guarded.url, _sdk_ids(spans)) == 5)
    finally:
        trickler.halt.set()
        for sock in half_headers + silent:
            sock.close()


# -- bad bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b'{"resourceSpans":' + b"[" * 100_000, b'{"a":' * 100_000]
)
def test_json_nested_too_deeply_is_a_400(guarded, body):
    response = httpx.post(
        f"{guarded.http}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["message"]


def _post_gzip(guarded: RunningCollector, body: bytes) -> httpx.Response:
    headers = {**PROTOBUF, "Content-Encoding": "gzip", "Authorization": f"Bearer {TOKEN}"}
    return httpx.post(f"{guarded.http}/v1/traces", content=body, headers=headers, timeout=30)


def test_every_gzip_member_is_stored(guarded):
    first, second = span_request(2), span_request(3)
    body = gzip.compress(first.SerializeToString()) + gzip.compress(second.SerializeToString())
    response = _post_gzip(guarded, body)
    assert response.status_code == 200
    ids = span_ids(first) + span_ids(second)
    eventually(lambda: _stored(guarded.url, ids) == 5)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"trailing garbage", "data after the last gzip member"),
        (b"\x00" * 8, "data after the last gzip member"),
        (None, "truncated"),
    ],
)
def test_gzip_trailing_bytes_or_truncation_is_a_400(guarded, tail, message):
    request = span_request(2)
    whole = gzip.compress(request.SerializeToString())
    body = whole[:-6] if tail is None else whole + tail
    response = _post_gzip(guarded, body)
    assert response.status_code == 400
    assert message in status_pb2.Status.FromString(response.content).message
    time.sleep(1)  # nothing of it may be stored either
    assert _stored(guarded.url, span_ids(request)) == 0


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(guarded, scheme):
    grpc_request, http_request = span_request(1), span_request(1)
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        grpc_export(channel)(
            grpc_request.SerializeToString(),
            metadata=(("authorization", f"{scheme} {TOKEN}"),),
            timeout=30,
        )
    response = httpx.post(
        f"{guarded.http}/v1/traces",
        content=http_request.SerializeToString(),
        headers={**PROTOBUF, "Authorization": f"{scheme} {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200
    eventually(lambda: _stored(guarded.url, span_ids(grpc_request) + span_ids(http_request)) == 2)


# -- poison values, on both stores ------------------------------------------------------


def _store_url(kind: str, clickhouse_server, tmp_path: Path) -> str:
    if kind == "native":
        return fresh_native_url(clickhouse_server)
    return f"chdb:{tmp_path / 'chdb'}?database=hostile"


def _stored_after_stop(url: str, ids: list[str]) -> set[str]:
    """Span ids in the store, read by a process of its own (chDB: one owner per path)."""
    script = (
        "import json, sys\n"
        "from tracestore.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "rows = store.query('SELECT span_id FROM spans WHERE span_id IN %(i)s',"
        " {'i': tuple(json.loads(sys.argv[2]))})\n"
        "print(json.dumps([r[0] for r in rows]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url, json.dumps(ids)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _poison_spans(request: ExportTraceServiceRequest) -> list[str]:
    """Make every span but the first carry one value no store can hold as sent."""
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].end_time_unix_nano = U64_MAX
    spans[2].start_time_unix_nano = U64_MAX
    spans[3].events.add(time_unix_nano=U64_MAX, name="late")
    spans[4].kind = 300
    spans[5].status.code = 99
    return [s.span_id.hex() for s in spans[1:]]


def _poison_metrics() -> ExportMetricsServiceRequest:
    now = time.time_ns()
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add()
    metrics.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="poison"))
    )
    scope = metrics.scope_metrics.add()
    histogram = scope.metrics.add(name="latency").histogram
    histogram.aggregation_temporality = 2
    histogram.data_points.add(time_unix_nano=now, count=3, bucket_counts=[1, 2])  # fine
    histogram.data_points.add(time_unix_nano=now, count=U64_MAX)
    histogram.data_points.add(time_unix_nano=now, start_time_unix_nano=U64_MAX, count=1)
    histogram.data_points.add(time_unix_nano=now, count=1, bucket_counts=[U64_MAX])
    gauge = scope.metrics.add(name="queue").gauge
    gauge.data_points.add(time_unix_nano=U64_MAX, as_int=1)
    odd = scope.metrics.add(name="odd").sum
    odd.aggregation_temporality = 7
    odd.data_points.add(time_unix_nano=now, as_int=1)
    return request


@pytest.mark.parametrize("kind", ["native", "chdb"])
def test_poison_values_are_rejected_and_ingestion_goes_on(kind, clickhouse_server, tmp_path):
    url = _store_url(kind, clickhouse_server, tmp_path)
    running = _start(url, tmp_path / "spool")
    try:
        with grpc.insecure_channel(running.grpc_target) as channel:
            request = span_request(6, service="poison")
            poisoned = _poison_spans(request)
            raw = grpc_export(channel)(request.SerializeToString(), timeout=30)
            partial = ExportTraceServiceResponse.FromString(raw).partial_success
            assert partial.rejected_spans == 5
            assert "2106" in partial.error_message
            raw = grpc_export(channel, METRICS_EXPORT)(
                _poison_metrics().SerializeToString(), timeout=30
            )
            partial = ExportMetricsServiceResponse.FromString(raw).partial_success
            assert partial.rejected_data_points == 5
        json_request = span_request(3, service="poison-json")
        json_poisoned = _poison_spans_json(json_request)
        body = _otlp_json(json_request)
        response = httpx.post(f"{running.http}/v1/traces", json=body, timeout=30)
        assert response.status_code == 200
        assert int(response.json()["partialSuccess"]["rejectedSpans"]) == 2
        # Later batches land: a real exporter's spans after the poison.
        later = _sdk_spans(4, "after-poison")
        exporter = GrpcSpanExporter(endpoint=running.grpc_target, insecure=True, timeout=30)
        assert exporter.export(later) == SpanExportResult.SUCCESS
        exporter.shutdown()
        eventually(lambda: running.metric("sidetrace_collector_written_spans_total") >= 6)
        assert running.metric("sidetrace_collector_written_metric_points_total") >= 1
    finally:
        running.stop()
    assert running.process.returncode == 0
    good = [
        span_ids(request)[0],
        *[i for i in span_ids(json_request) if i not in json_poisoned],
        *_sdk_ids(later),
    ]
    stored = _stored_after_stop(url, good + poisoned + json_poisoned)
    assert stored == set(good)


def _poison_spans_json(request: ExportTraceServiceRequest) -> list[str]:
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].end_time_unix_nano = U64_MAX
    spans[2].kind = 300
    return [spans[1].span_id.hex(), spans[2].span_id.hex()]


def _otlp_json(request: ExportTraceServiceRequest) -> dict:
    body = MessageToDict(request)
    for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):  # protobuf JSON gives base64; OTLP/JSON wants hex
            span[key] = base64.b64decode(span[key]).hex()
    return body


# -- the dead-letter file, on both stores -----------------------------------------------


@pytest.mark.parametrize("kind", ["native", "chdb"])
def test_a_refused_spool_record_goes_to_the_dead_letter_file(kind, clickhouse_server, tmp_path):
    """A spool written before validation knew these values (the upgrade case): the
    record both stores refuse is set aside; the records around it and later ones land."""
    url = _store_url(kind, clickhouse_server, tmp_path)
    spool_dir = tmp_path / "spool"
    before, after = span_request(3, service="before"), span_request(2, service="after")
    poison = span_request(1, service="poison")
    span = poison.resource_spans[0].scope_spans[0].spans[0]
    span.end_time_unix_nano = U64_MAX  # chDB cannot take it
    span.kind = 300  # the native server cannot take it
    spool = Spool(spool_dir)
    now = time.time_ns()
    for request in (before, poison, after):
        spool.append(TRACES, 1, request.SerializeToString(), now)
    spool.close()
    running = _start(url, spool_dir)
    try:
        eventually(
            lambda: (
                running.metric(
                    'sidetrace_collector_dead_letter_records_total{reason="store_refused"}'
                )
                == 1
            ),
            timeout=120,
        )
        later = span_request(2, service="later")
        with grpc.insecure_channel(running.grpc_target) as channel:
            grpc_export(channel)(later.SerializeToString(), timeout=30)
        eventually(lambda: running.metric("sidetrace_collector_written_spans_total") >= 7)
    finally:
        running.stop()
    assert running.process.returncode == 0
    (line,) = (spool_dir / DEAD_LETTER_FILE).read_text().splitlines()
    letter = json.loads(line)
    assert letter["kind"] == "traces" and "refused" in letter["reason"]
    quarantined = ExportTraceServiceRequest.FromString(base64.b64decode(letter["payload_base64"]))
    assert span_ids(quarantined) == span_ids(poison)
    good = span_ids(before) + span_ids(after) + span_ids(later)
    assert _stored_after_stop(url, good + span_ids(poison)) == set(good)
    # A restart does not replay it: the spool went past it.
    assert json.loads((spool_dir / "state.json").read_text())["inflight"] is None


# -- the rules, table-driven ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER {TOKEN}", True),
        (f"Bearer   {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer{TOKEN}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("", False),
        (None, False),
    ],
)
def test_authorization_header_rules(header, ok):
    assert Ingest(None, Limits(), Stats(), TOKEN).authorized(header) is ok


def _one_span(**fields) -> ExportTraceServiceRequest:
    request = span_request(1)
    request.resource_spans[0].scope_spans[0].spans[0].MergeFrom(Span(**fields))
    return request


@pytest.mark.parametrize(
    ("fields", "rejected"),
    [
        ({"end_time_unix_nano": MAX_TIME_NS}, 0),
        ({"end_time_unix_nano": MAX_TIME_NS + 1}, 1),
        ({"start_time_unix_nano": MAX_TIME_NS + 1}, 1),
        ({"kind": MAX_SPAN_KIND}, 0),
        ({"kind": MAX_SPAN_KIND + 1}, 1),
        ({"kind": -1}, 1),
        ({"status": Status(code=MAX_STATUS_CODE)}, 0),
        ({"status": Status(code=-2)}, 1),
        ({"events": [Span.Event(time_unix_nano=MAX_TIME_NS + 1)]}, 1),
    ],
)
def test_span_value_bounds(fields, rejected):
    request = _one_span(**fields)
    verdict = validate_traces(request, None, Limits(), time.time_ns())
    assert (verdict.accepted, verdict.rejected) == (1 - rejected, rejected)


@pytest.mark.parametrize(
    ("count", "buckets", "rejected"),
    [(MAX_COUNT, [MAX_COUNT], 0), (MAX_COUNT + 1, [], 1), (1, [1, MAX_COUNT + 1], 1)],
)
def test_histogram_count_bounds(count, buckets, rejected):
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    point = metric.histogram.data_points.add(time_unix_nano=time.time_ns(), count=count)
    point.bucket_counts.extend(buckets)
    verdict = validate_metrics(request, None, Limits(), time.time_ns())
    assert (verdict.accepted, verdict.rejected) == (1 - rejected, rejected)
