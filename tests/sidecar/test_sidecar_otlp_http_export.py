"""Sidecar → collector over OTLP/HTTP, the default protocol (no variable set).

Real sidecar processes export to a real ``sidetrace collector`` (TLS, bearer token)
writing into the test ClickHouse server: every span of the traffic arrives, the
RED metrics too, and the sidecar never loads grpcio. A collector that starts late
gets the spans by retries; a refused token or an untrusted CA is counted by reason.
An export connection older than its maximum age is replaced between exports (the
OTLP sink sees the client ports), so sidecars spread over new collector replicas.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from runtime.loopback_ports import free_port
from sidecar.config import SidecarConfig
from sidecar.export_target import TRACES_PATH, ExportConfigError, ExportTarget, resolve
from sidecar.otlp_export import ExportResult
from sidecar.otlp_http_export import HttpExporter
from sidecar.webhook_certs import make_certs
from tests.support.collector_helpers import collector_process, count_spans, fresh_native_url
from tests.support.polling import eventually
from tests.support.sidecar_harness import OtlpSink, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn
from tracestore.store import open_store

TOKEN = "http-export-token"
HTTP_PROTOBUF = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}


@pytest.mark.parametrize(
    ("collector", "environ", "expected"),
    [
        (
            "http://c:4318",
            HTTP_PROTOBUF,
            ExportTarget("c:4318", True, None, (), "http/protobuf", "/v1/traces", "/v1/metrics"),
        ),
        (
            "https://c:4318/base/",
            HTTP_PROTOBUF,
            ExportTarget(
                "c:4318", False, None, (), "http/protobuf", "/base/v1/traces", "/base/v1/metrics"
            ),
        ),  # fmt: skip
        (  # a traces URL is used as it is; metrics go to its /v1/metrics sibling
            None,
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ExportTarget("c:4318", True, None, (), "http/protobuf", "/v1/traces", "/v1/metrics"),
        ),  # fmt: skip
        (
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/otlp", **HTTP_PROTOBUF},
            ExportTarget(
                "c:4318", True, None, (), "http/protobuf", "/otlp/v1/traces", "/otlp/v1/metrics"
            ),
        ),  # fmt: skip
        (  # the specification's default, so the sidecar never loads grpcio to export
            "c:4318",
            {},
            ExportTarget("c:4318", True, None, (), "http/protobuf", "/v1/traces", "/v1/metrics"),
        ),
        (
            "c:4317",
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ExportTarget("c:4317", True, None, (), "grpc"),
        ),
        (
            "c:4317",
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "GRPC"},
            ExportTarget("c:4317", True, None, (), "grpc"),
        ),
    ],
)
def test_protocol_and_paths(collector, environ, expected) -> None:
    assert resolve(collector, None, None, None, environ) == expected


def test_unsupported_protocol_is_one_clear_error() -> None:
    with pytest.raises(ExportConfigError, match="unsupported OTLP protocol 'http/json'"):
        resolve("c:4318", None, None, None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    for prefix in ("", "other-"):  # served, and another CA nobody serves
        made = make_certs(["localhost"], ("127.0.0.1",), days=1)
        (folder / f"{prefix}ca.crt").write_bytes(made.ca_pem)
        (folder / f"{prefix}tls.crt").write_bytes(made.cert_pem)
        (folder / f"{prefix}tls.key").write_bytes(made.key_pem)
    return folder


def _start_collector(url: str, spool: Path, ports: dict[str, int], tls: Path) -> subprocess.Popen:
    return collector_process(
        url, spool, ports,
        "--tls-cert", str(tls / "tls.crt"), "--tls-key", str(tls / "tls.key"),
        "--auth-token", TOKEN, "--batch-seconds", "0.2",
    )  # fmt: skip


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def collector(clickhouse_server, tls_dir: Path, tmp_path_factory) -> Iterator[dict]:
    url = fresh_native_url(clickhouse_server)
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
    process = _start_collector(url, tmp_path_factory.mktemp("http-export") / "spool", ports,
                               tls_dir)  # fmt: skip
    yield {"url": url, "ports": ports}
    _stop(process)


@pytest.fixture(scope="module")
def app() -> Iterator[ThreadedUvicorn]:
    server = ThreadedUvicorn(build_app()).start()
    yield server
    server.stop()


@pytest.fixture
def http_sidecar(app, tmp_path: Path):
    """A sidecar exporting with TLS and the default protocol; stopped after the test."""
    started: list[SidecarProcess] = []

    def start(port: int, ca: Path, token: str = TOKEN, *extra: str) -> SidecarProcess:
        sidecar = SidecarProcess(
            app.port, "--service-name", f"svc-{uuid.uuid4().hex[:8]}",
            "--collector", f"https://127.0.0.1:{port}", "--metrics-interval", "1", *extra,
            log=tmp_path / f"sidecar{len(started)}.log",
        )  # fmt: skip
        sidecar.env.update(
            OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca),
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{token}",
        )
        started.append(sidecar)
        return sidecar.start()

    yield start
    for sidecar in started:
        sidecar.stop()


def _traffic(sidecar: SidecarProcess, trace_id: str, requests: int) -> None:
    """Keep-alive requests through the sidecar (after the first, the C lane carries them)."""
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    try:
        for i in range(requests):
            conn.request("GET", "/", headers={"traceparent": f"00-{trace_id}-{i + 1:016x}-01"})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
    finally:
        conn.close()


def _loads_grpcio(pid: int) -> bool:
    return "cygrpc" in Path(f"/proc/{pid}/maps").read_text()


def test_every_span_and_the_metrics_reach_clickhouse(collector, tls_dir, http_sidecar) -> None:
    sidecar = http_sidecar(collector["ports"]["http"], tls_dir / "ca.crt")
    trace_id = uuid.uuid4().hex
    _traffic(sidecar, trace_id, 600)
    store = open_store(collector["url"])
    where, params = "trace_id = %(t)s", {"t": trace_id}
    eventually(lambda: count_spans(store, where, params) >= 600, timeout=90)
    assert count_spans(store, where, params) == 600
    assert sidecar.metric("sidetrace_sidecar_spans_exported_total") == 600
    assert sidecar.metric("sidetrace_sidecar_spans_dropped_total") == 0
    # each span has its own parent (the traceparent sent) and carries the request's fields
    parents, names = store.query(
        "SELECT uniqExact(parent_span_id), groupUniqArray(span_name) FROM spans"
        " WHERE trace_id = %(t)s",
        params,
    )[0]
    assert parents == 600 and names == ["GET"]
    service = store.query("SELECT service_name FROM spans WHERE trace_id = %(t)s LIMIT 1", params)[
        0
    ][0]
    requests = (
        "SELECT max(value) FROM metric_points WHERE service_name = %(s)s AND metric_name = %(m)s"  # noqa: E501
    )
    eventually(
        lambda: (
            (store.query(requests, {"s": service, "m": "sidetrace.requests"})[0][0] or 0) >= 600
        ),
        timeout=90,
    )
    assert not _loads_grpcio(sidecar.process.pid)  # type: ignore[union-attr]


def test_a_collector_that_starts_late_gets_every_span(
    clickhouse_server, tls_dir, http_sidecar, tmp_path
) -> None:
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
    sidecar = http_sidecar(ports["http"], tls_dir / "ca.crt", TOKEN, "--export-timeout", "60")
    trace_id = uuid.uuid4().hex
    _traffic(sidecar, trace_id, 50)  # nothing listens yet: the export retries with backoff
    url = fresh_native_url(clickhouse_server)
    process = _start_collector(url, tmp_path / "spool", ports, tls_dir)
    try:
        store = open_store(url)
        eventually(
            lambda: count_spans(store, "trace_id = %(t)s", {"t": trace_id}) >= 50, timeout=90
        )
        assert sidecar.metric("sidetrace_sidecar_spans_dropped_total") == 0
    finally:
        _stop(process)


@pytest.mark.parametrize(
    ("token", "ca", "reason", "logged"),
    [
        ("wrong", "ca.crt", "unauthenticated", "refused the bearer token"),
        (TOKEN, "other-ca.crt", "tls", "TLS handshake with collector"),
    ],
    ids=["wrong-token", "untrusted-certificate"],
)
def test_refused_export_is_counted_by_reason(
    collector, tls_dir, http_sidecar, token, ca, reason, logged
) -> None:
    sidecar = http_sidecar(collector["ports"]["http"], tls_dir / ca, token, "--export-timeout", "2")
    _traffic(sidecar, uuid.uuid4().hex, 100)
    name = "sidetrace_sidecar_spans_dropped_by_reason_total"
    eventually(lambda: sidecar.metric(name, reason=reason) > 0, timeout=60)
    assert sidecar.metric("sidetrace_sidecar_spans_exported_total") == 0
    eventually(lambda: logged in sidecar.log.read_text(), timeout=30)  # type: ignore[union-attr]
    _traffic(sidecar, uuid.uuid4().hex, 10)  # the proxied traffic is unaffected


def test_stops_within_its_grace_while_the_collector_never_answers(tls_dir, http_sidecar) -> None:
    """An export in flight to a collector that accepts and stays silent (a wedged proxy)
    must not hold the sidecar past its drain grace on SIGTERM."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    sidecar = http_sidecar(
        silent.getsockname()[1], tls_dir / "ca.crt", TOKEN,
        "--export-timeout", "300", "--drain-grace", "1",
    )  # fmt: skip
    try:
        _traffic(sidecar, uuid.uuid4().hex, 5)
        eventually(lambda: bool(held), timeout=30)  # the export's connection, unanswered
        assert sidecar.process is not None
        sidecar.process.send_signal(signal.SIGTERM)
        # drain grace 1 s, telemetry join 10 s: well inside 60 s, far from the 300 s timeout
        assert sidecar.process.wait(60) == 0
    finally:
        silent.close()
        for conn in held:
            conn.close()


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    server = OtlpSink().start()
    yield server
    server.stop()


def _trace_ports(sink: OtlpSink) -> list[int]:
    """The client port of each traces request the sink received, in order."""
    return [port for signal, port in list(sink.posts) if signal == "traces"]


def _one_span(name: str) -> bytes:
    span = Span(trace_id=uuid.uuid4().bytes, span_id=uuid.uuid4().bytes[:8], name=name)
    scope = ScopeSpans(spans=[span])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[scope])]
    ).SerializeToString()


def _bursts(exporter: HttpExporter, bursts: int, pause_s: float) -> None:
    """Three back-to-back exports per burst (well inside any age), ``pause_s`` between."""
    for burst in range(bursts):
        if burst:
            time.sleep(pause_s)
        for i in range(3):
            assert exporter.export_request(_one_span(f"b{burst}-{i}")) is ExportResult.SUCCESS


@pytest.mark.parametrize(
    ("max_age_s", "connections"),
    [(0.3, 3), (SidecarConfig.collector_max_connection_age_s, 1), (0, 1)],
    ids=["tiny-age", "default-age", "never"],
)
def test_a_connection_older_than_its_age_is_replaced_between_exports(
    sink: OtlpSink, max_age_s: float, connections: int
) -> None:
    target = resolve(f"127.0.0.1:{sink.port}", None, None, None, {})
    assert target is not None
    exporter = HttpExporter(target, TRACES_PATH, 5.0, max_age_s)
    try:
        _bursts(exporter, bursts=3, pause_s=0.5)  # a pause outlasts the tiny age (+10 %)
    finally:
        exporter.shutdown()
    ports = _trace_ports(sink)
    assert len(sink.spans) == len(ports) == 9  # nothing lost to a reconnect
    bursts = [ports[i : i + 3] for i in range(0, 9, 3)]
    assert all(len(set(burst)) == 1 for burst in bursts)  # reused within the age
    assert len(set(ports)) == connections  # a new TCP connection after each pause, or none


def test_the_sidecar_takes_the_age_from_its_flag_variable(app, sink: OtlpSink) -> None:
    """SIDETRACE_COLLECTOR_MAX_CONNECTION_AGE reaches the span exporter of a real sidecar."""
    sidecar = SidecarProcess(app.port, "--collector", f"127.0.0.1:{sink.port}")
    sidecar.env["SIDETRACE_COLLECTOR_MAX_CONNECTION_AGE"] = "0.2"
    sidecar.start()
    try:
        for burst in range(1, 4):
            _traffic(sidecar, uuid.uuid4().hex, 5)
            eventually(lambda burst=burst: len(sink.spans) >= 5 * burst, timeout=15)
            time.sleep(0.5)  # outlasts the age: the next burst's export reconnects
    finally:
        sidecar.stop()
    assert len(set(_trace_ports(sink))) >= 3
