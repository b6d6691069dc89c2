"""Two services, each behind its own sidecar, export to a real collector into ClickHouse.

client -> sidecar A (inbound) -> app A -> sidecar A (outbound, HTTP proxy)
       -> sidecar B (inbound) -> app B; the trace must come out whole in ClickHouse.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from sidecar.launch import SidecarProcess
from sidetrace.local_server import free_port
from sidetrace.store import open_store
from tests.conftest import fresh_store_url
from tests.sidecar_harness import ThreadedUvicorn, build_app

TRACE = "9abcdef0123456789abcdef012345678"
CALLER = "1122334455667788"


@pytest.fixture
def collector(clickhouse_server, chdb_path, tmp_path) -> Iterator[tuple[str, int]]:
    url = fresh_store_url("native", clickhouse_server, chdb_path)
    grpc_port, admin_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sidetrace", "collector",
            "--clickhouse", url,
            "--grpc-port", str(grpc_port),
            "--http-port", str(free_port()),
            "--admin-port", str(admin_port),
            "--spool-dir", str(tmp_path / "spool"),
            "--batch-seconds", "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "collector exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "collector not ready"
                time.sleep(0.2)
        yield url, grpc_port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_two_service_chain_is_one_trace_in_clickhouse(collector) -> None:
    store_url, grpc_port = collector
    port_a, port_b = free_port(), free_port()
    common = ("--collector", f"127.0.0.1:{grpc_port}", "--route", "/users/{uid}")
    common += ("--metrics-interval", "1")
    sidecar_a = SidecarProcess(port_a, "--service-name", "svc-a", *common)
    sidecar_b = SidecarProcess(port_b, "--service-name", "svc-b", *common)
    app_a = ThreadedUvicorn(build_app(f"http://127.0.0.1:{sidecar_a.outbound}"), port=port_a)
    app_b = ThreadedUvicorn(build_app(), port=port_b)
    started = [app_a.start(), app_b.start(), sidecar_a.start(), sidecar_b.start()]
    try:
        target = f"http://127.0.0.1:{sidecar_b.inbound}/users/9"
        conn = http.client.HTTPConnection("127.0.0.1", sidecar_a.inbound, timeout=20)
        conn.request(
            "GET", f"/call?target={target}", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"}
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and body["status"] == 200
        store = open_store(store_url)
        rows: list[tuple] = []
        deadline = time.monotonic() + 60
        while len(rows) < 3:
            assert time.monotonic() < deadline, f"only {len(rows)} spans reached ClickHouse"
            time.sleep(0.5)
            rows = store.query(
                "SELECT span_id, parent_span_id, service_name, span_kind, span_name,"
                " attr_keys, attr_values, status_code FROM spans"
                " WHERE trace_id = %(trace)s ORDER BY start_ns",
                {"trace": TRACE},
            )
        metric_rows: list[tuple] = []
        while not metric_rows:
            assert time.monotonic() < deadline, "no RED metrics reached ClickHouse"
            time.sleep(0.5)
            metric_rows = store.query(
                "SELECT metric_name, count FROM metric_points WHERE service_name = 'svc-b'"
                " AND metric_name = 'sidetrace.request.duration' ORDER BY ts DESC LIMIT 1"
            )
    finally:
        for part in reversed(started):
            part.stop()
    spans = {
        (service, kind): {"id": sid, "parent": parent, "name": name, "status": status,
                          "attrs": dict(zip(keys, values, strict=True))}
        for sid, parent, service, kind, name, keys, values, status in rows
    }  # fmt: skip
    assert set(spans) == {("svc-a", 2), ("svc-a", 3), ("svc-b", 2)}
    server_a, client_a, server_b = spans["svc-a", 2], spans["svc-a", 3], spans["svc-b", 2]
    assert server_a["parent"] == CALLER
    assert client_a["parent"] == server_a["id"]
    assert server_b["parent"] == client_a["id"]
    assert server_a["name"] == "GET /call"  # no configured route matches: detected, no query
    assert server_b["name"] == "GET /users/{uid}"
    assert server_b["attrs"]["http.route"] == "/users/{uid}"
    assert server_b["attrs"]["http.response.status_code"] == "200"
    assert client_a["attrs"]["server.port"] == str(sidecar_b.inbound)
    assert client_a["attrs"]["http.request.method"] == "GET"
    assert {s["status"] for s in spans.values()} == {0}
    assert metric_rows[0][1] >= 1  # svc-b's duration histogram counted the request
    downstream = body["downstream"]["headers"]
    assert downstream["traceparent"] == f"00-{TRACE}-{server_b['id']}-01"
