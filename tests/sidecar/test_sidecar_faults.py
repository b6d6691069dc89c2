"""Sidecar under stress and faults: big streams, dead collector, opaque TCP, shutdown paths."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.loopback_ports import free_port
from tests.support.polling import eventually, port_open
from tests.support.sidecar_harness import BannerServer, OtlpSink, attributes, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn

MB = 1024 * 1024


@pytest.fixture(scope="module")
def app() -> Iterator[ThreadedUvicorn]:
    server = ThreadedUvicorn(build_app()).start()
    yield server
    server.stop()


@pytest.fixture
def sidecar_factory() -> Iterator:
    started: list[SidecarProcess] = []

    def make(app_port: int, *extra: str) -> SidecarProcess:
        sidecar = SidecarProcess(app_port, *extra)
        started.append(sidecar)
        return sidecar.start()

    yield make
    for sidecar in started:
        sidecar.stop()


def _peak_rss_mb(sidecar: SidecarProcess) -> float:
    status = Path(f"/proc/{sidecar.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_100mb_upload_and_download_stream_with_flat_memory(app, sidecar_factory) -> None:
    sidecar = sidecar_factory(app.port)
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=60)
    conn.request("GET", "/download?mb=1")
    conn.getresponse().read()  # warm up: pools, parsers, buffers
    baseline = _peak_rss_mb(sidecar)
    chunk = b"u" * 65536

    def body():
        for _ in range(100 * 16):
            yield chunk

    conn.request("POST", "/upload", body=body(), encode_chunked=True)
    response = conn.getresponse()
    assert json.loads(response.read()) == {"bytes": 100 * MB}
    conn.request("GET", "/download?mb=100")
    response = conn.getresponse()
    received = 0
    while data := response.read(MB):
        received += len(data)
    assert received == 100 * MB
    conn.request("GET", "/")  # the upstream connection paused for backpressure is usable again
    assert conn.getresponse().read().startswith(b"{")
    conn.close()
    growth = _peak_rss_mb(sidecar) - baseline
    assert growth < 30, f"sidecar peak RSS grew {growth:.1f} MB for 100 MB each way"


def test_dead_collector_drops_and_counts_then_recovers(app, sidecar_factory) -> None:
    collector_port = free_port()
    sidecar = sidecar_factory(
        app.port, "--collector", f"127.0.0.1:{collector_port}", "--export-timeout", "1"
    )
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    started = time.monotonic()
    for _ in range(200):
        conn.request("GET", "/")
        assert conn.getresponse().read()
    assert time.monotonic() - started < 10  # exports failing never block requests
    eventually(
        lambda: sidecar.metric("sidetrace_sidecar_spans_dropped_total"), 20, what="drops counted"
    )
    sink = OtlpSink(port=collector_port).start()
    try:
        trace = "5" * 32

        def resumed() -> bool:
            if any(s.trace_id.hex() == trace for _, s in sink.spans):
                return True
            conn.request("GET", "/", headers={"traceparent": f"00-{trace}-{'6' * 16}-01"})
            conn.getresponse().read()
            return False

        eventually(resumed, 30, 0.5, what="export resumed", ignoring=())
    finally:
        conn.close()
        sink.stop()
    assert sidecar.metric("sidetrace_sidecar_spans_exported_total") > 0


def test_dead_app_answers_502_and_readyz_fails(sidecar_factory) -> None:
    sidecar = sidecar_factory(free_port())
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().status == 502
    assert sidecar.get("/readyz")[0] == 503
    assert sidecar.get("/healthz")[0] == 200


def test_sigterm_drains_in_flight_requests(app, sidecar_factory) -> None:
    sidecar = sidecar_factory(app.port, "--drain-grace", "10")
    result: list = []

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=20)
        conn.request("GET", "/slow?s=2")
        response = conn.getresponse()
        result.append((response.status, response.read(), response.getheader("connection")))

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    sidecar.process.send_signal(15)
    time.sleep(0.3)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=2).close()
    thread.join(15)
    assert result == [(200, b"slow done", "close")]
    assert sidecar.process.wait(15) == 0


def test_admin_shutdown_from_loopback_stops_the_sidecar(app, sidecar_factory) -> None:
    sidecar = sidecar_factory(app.port)
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.admin, timeout=10)
    conn.request("POST", "/shutdown")
    assert conn.getresponse().status == 200
    assert sidecar.process.wait(15) == 0


def _read_banner(port: int, timeout: float = 5.0) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()
        banner = sock.recv(1024)
        waited = time.monotonic() - started
        sock.sendall(b"EHLO x\r\n")
        echoed = sock.recv(1024)
    assert echoed == b"EHLO x\r\n"
    return banner, waited


def test_opaque_tcp_declared_port_and_detection_timeout(sidecar_factory) -> None:
    banner_server = BannerServer()
    sink = OtlpSink().start()
    try:
        declared = sidecar_factory(
            banner_server.port,
            "--opaque-ports", str(banner_server.port),
            "--collector", f"127.0.0.1:{sink.port}",
            "--service-name", "tcp-svc",
            "--detect-timeout", "3",
            "--export-timeout", "1",
        )  # fmt: skip
        banner, waited = _read_banner(declared.inbound)
        # A declared port is piped at once: no waiting for the (3 s) detection timeout.
        assert banner == b"220 banner ready\r\n" and waited < 2
        spans = sink.wait_for(lambda s: any(sp.name.startswith("tcp") for _, sp in s))
        span = next(sp for _, sp in spans if sp.name.startswith("tcp"))
        attrs = attributes(span)
        assert attrs["sidetrace.bytes_in"] == 8 and attrs["sidetrace.bytes_out"] == 26
        assert attrs["server.port"] == banner_server.port
        sniffing = sidecar_factory(banner_server.port, "--detect-timeout", "0.3")
        banner, waited = _read_banner(sniffing.inbound)
        assert banner == b"220 banner ready\r\n" and 0.2 < waited < 2
        assert sniffing.metric("sidetrace_sidecar_protocol_detect_timeouts_total") == 1
    finally:
        banner_server.stop()
        sink.stop()


def test_max_connections_rejects_extra_connections(app, sidecar_factory) -> None:
    sidecar = sidecar_factory(app.port, "--max-connections", "2")
    held = [socket.create_connection(("127.0.0.1", sidecar.inbound)) for _ in range(2)]
    time.sleep(0.2)
    try:
        with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=5) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(1024) == b""
        assert sidecar.metric("sidetrace_sidecar_connections_rejected_total") >= 1
    finally:
        for sock in held:
            sock.close()
    eventually(lambda: port_open(sidecar.inbound), timeout=15, what="the port opens")


def test_idle_keep_alive_connection_is_closed_after_idle_timeout(app, sidecar_factory) -> None:
    sidecar = sidecar_factory(app.port, "--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"}"):  # the whole JSON response
            chunk = sock.recv(65536)
            assert chunk
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the sidecar, not by us
        assert 0.8 < time.monotonic() - started < 5
