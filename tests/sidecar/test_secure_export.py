"""Sidecar → collector over OTLP/gRPC, TLS and a bearer token, configured only by OTLP variables.

A real collector process (``--tls-cert/--tls-key --auth-token``) writes to the
test ClickHouse server; real sidecar processes export to it. A wrong token and
an untrusted CA each give a log line and a counted drop while the proxied
traffic stays untouched; a certificate rotated on disk is served to the next
connection without a restart.
"""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from runtime.loopback_ports import free_port
from sidecar.webhook_certs import make_certs
from tests.support.collector_helpers import (
    collector_process,
    count_spans,
    fresh_native_url,
    grpc_export,
    span_request,
)
from tests.support.polling import eventually
from tests.support.sidecar_harness import build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn
from tracestore.store import open_store

TOKEN = "s3cret-token"


def _write_pair(folder: Path, prefix: str) -> Path:
    """A CA and a serving certificate for 127.0.0.1; returns the CA file."""
    made = make_certs(["localhost"], ("127.0.0.1",), days=1)
    for name, data in (
        ("ca.crt", made.ca_pem),
        ("tls.crt", made.cert_pem),
        ("tls.key", made.key_pem),
    ):
        tmp = folder / f".{prefix}{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{prefix}{name}")
    return folder / f"{prefix}ca.crt"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    _write_pair(folder, "")  # served: ca.crt, tls.crt, tls.key
    _write_pair(folder, "other-")  # another CA nobody serves
    return folder


@pytest.fixture(scope="module")
def collector(clickhouse_server, tls_dir: Path, tmp_path_factory) -> Iterator[dict]:
    url = fresh_native_url(clickhouse_server)
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
    spool = tmp_path_factory.mktemp("secure") / "spool"
    process = collector_process(
        url, spool, ports,
        "--tls-cert", str(tls_dir / "tls.crt"), "--tls-key", str(tls_dir / "tls.key"),
        "--auth-token", TOKEN, "--batch-seconds", "0.2",
    )  # fmt: skip
    yield {"url": url, "ports": ports, "process": process}
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def app() -> Iterator[ThreadedUvicorn]:
    server = ThreadedUvicorn(build_app()).start()
    yield server
    server.stop()


@pytest.fixture
def otlp_sidecar(app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sidecar configured only through ``OTEL_EXPORTER_OTLP_*``, exporting over gRPC (the
    default, OTLP/HTTP, has ``test_sidecar_otlp_http_export``); stopped after the test."""
    started: list[SidecarProcess] = []

    def start(**variables: str) -> SidecarProcess:
        for name in [n for n in os.environ if n.startswith("OTEL_EXPORTER_OTLP_")]:
            monkeypatch.delenv(name)
        for name, value in {"PROTOCOL": "grpc", **variables}.items():
            monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{name}", value)
        sidecar = SidecarProcess(
            app.port, "--service-name", f"svc-{uuid.uuid4().hex[:8]}", "--export-timeout", "2",
            log=tmp_path / f"sidecar{len(started)}.log",
        )  # fmt: skip
        started.append(sidecar)
        return sidecar.start()

    yield start
    for sidecar in started:
        sidecar.stop()


def _traffic(sidecar: SidecarProcess, trace_id: str, requests: int = 50) -> None:
    """Requests through the sidecar: every one must be answered by the app."""
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    try:
        for i in range(requests):
            parent = f"{i + 1:016x}"
            conn.request("GET", "/", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
            response = conn.getresponse()
            assert response.status == 200
            assert b"traceparent" in response.read()
    finally:
        conn.close()


def _endpoint(collector: dict) -> str:
    return f"https://127.0.0.1:{collector['ports']['grpc']}"


def test_spans_reach_clickhouse_over_tls_with_token(collector, tls_dir, otlp_sidecar) -> None:
    sidecar = otlp_sidecar(
        ENDPOINT=_endpoint(collector),
        CERTIFICATE=str(tls_dir / "ca.crt"),
        HEADERS=f"authorization=Bearer%20{TOKEN}",
    )
    trace_id = uuid.uuid4().hex
    _traffic(sidecar, trace_id)
    store = open_store(collector["url"])
    eventually(lambda: count_spans(store, "trace_id = %(t)s", {"t": trace_id}) >= 50, timeout=60)
    assert sidecar.metric("sidetrace_sidecar_spans_dropped_total") == 0


def test_traces_variables_win_over_the_general_ones(collector, tls_dir, otlp_sidecar) -> None:
    sidecar = otlp_sidecar(
        ENDPOINT=f"https://127.0.0.1:{free_port()}",  # nothing listens here
        TRACES_ENDPOINT=_endpoint(collector),
        CERTIFICATE=str(tls_dir / "other-ca.crt"),
        TRACES_CERTIFICATE=str(tls_dir / "ca.crt"),
        TRACES_HEADERS=f"authorization=Bearer%20{TOKEN}",
    )
    trace_id = uuid.uuid4().hex
    _traffic(sidecar, trace_id, requests=5)
    store = open_store(collector["url"])
    eventually(lambda: count_spans(store, "trace_id = %(t)s", {"t": trace_id}) >= 5, timeout=60)


@pytest.mark.parametrize(
    ("variables", "reason", "logged"),
    [
        (
            {"HEADERS": "authorization=Bearer%20wrong"},
            "unauthenticated",
            "refused the bearer token",
        ),
        ({"CERTIFICATE": "other-ca.crt"}, "tls", "TLS handshake with collector"),
    ],
    ids=["wrong-token", "untrusted-certificate"],
)
def test_refused_export_is_logged_and_counted_traffic_unaffected(
    collector, tls_dir, otlp_sidecar, variables, reason, logged
) -> None:
    settings = {
        "ENDPOINT": _endpoint(collector),
        "CERTIFICATE": str(tls_dir / "ca.crt"),
        "HEADERS": f"authorization=Bearer%20{TOKEN}",
    }
    settings.update(variables)
    if "CERTIFICATE" in variables:
        settings["CERTIFICATE"] = str(tls_dir / variables["CERTIFICATE"])
    sidecar = otlp_sidecar(**settings)
    _traffic(sidecar, uuid.uuid4().hex, requests=200)  # every request answered by the app
    name = "sidetrace_sidecar_spans_dropped_by_reason_total"
    eventually(lambda: sidecar.metric(name, reason=reason) > 0, timeout=60)
    assert sidecar.metric("sidetrace_sidecar_spans_exported_total") == 0
    assert sidecar.log is not None
    eventually(lambda: logged in sidecar.log.read_text(), timeout=30)
    _traffic(sidecar, uuid.uuid4().hex, requests=20)  # and still serving


def _export_with(ca: bytes, port: int) -> grpc.StatusCode | None:
    """One export on a new connection trusting only ``ca``: None on success, else the code."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            grpc_export(channel)(
                span_request(1).SerializeToString(),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=10,
            )
        except grpc.RpcError as error:
            return error.code()
    return None


def _https_status(url: str, ca_file: Path) -> int:
    """POST without a token on a new connection trusting only ``ca_file``; 0 if TLS fails."""
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as client:
            return client.post(url, content=b"", timeout=10).status_code
    except httpx.TransportError:
        return 0


def test_rotated_certificate_is_served_without_restart(collector, tls_dir) -> None:
    port = collector["ports"]["grpc"]
    assert _export_with((tls_dir / "ca.crt").read_bytes(), port) is None
    rotated = tls_dir / "rotated"
    rotated.mkdir()
    new_ca = _write_pair(rotated, "").read_bytes()
    assert _export_with(new_ca, port) == grpc.StatusCode.UNAVAILABLE  # not served yet
    for name in ("tls.key", "tls.crt"):  # as a Secret volume swaps them
        os.replace(rotated / name, tls_dir / name)
    eventually(lambda: _export_with(new_ca, port) is None, timeout=30)
    https = f"https://127.0.0.1:{collector['ports']['http']}/v1/traces"
    eventually(lambda: _https_status(https, rotated / "ca.crt") == 401, timeout=30)
    assert collector["process"].poll() is None  # the same process
    (tls_dir / "ca.crt").write_bytes(new_ca)  # later tests trust the served pair
