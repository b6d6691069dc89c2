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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from runtime.loopback_ports import free_port
from sidecar.resource import SCHEMA_URL
from tests.support.polling import alive, eventually, http_ok
from tests.support.sidecar_harness import build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.store_urls import fresh_store_url
from tests.support.threaded_server import ThreadedUvicorn
from tracestore.store import open_store

TRACE = "9abcdef0123456789abcdef012345678"
CALLER = "1122334455667788"
OTHER = "8abcdef0123456789abcdef012345678"


@pytest.fixture
def collector(clickhouse_server, chdb_path, tmp_path) -> Iterator[tuple[str, int]]:
    url = fresh_store_url("native", clickhouse_server, chdb_path)
    http_port, admin_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sidetrace", "collector",
            "--clickhouse", url,
            "--grpc-port", str(free_port()),
            "--http-port", str(http_port),
            "--admin-port", str(admin_port),
            "--spool-dir", str(tmp_path / "spool"),
            "--batch-seconds", "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ready = f"http://127.0.0.1:{admin_port}/readyz"
        eventually(lambda: alive(process, "the collector") or http_ok(ready), 60, what=ready)
        yield url, http_port  # OTLP/HTTP: the sidecars' default protocol
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Failing(grpc.GenericRpcHandler):
    """A gRPC app whose method ``/shop.Cart/{CODE}`` fails with that status code."""

    def service(self, details):
        code = grpc.StatusCode[details.method.rsplit("/", 1)[1]]

        def fail(request: bytes, context) -> bytes:
            context.abort(code, "as asked")

        return grpc.unary_unary_rpc_method_handler(fail)


def _spans(store, where: str, params: dict, count: int, deadline: float) -> list[tuple]:
    def rows() -> list[tuple] | None:
        found = store.query(
            "SELECT span_id, parent_span_id, service_name, span_kind, span_name,"
            " attr_keys, attr_values, status_code, resource_attr_keys, resource_attr_values,"
            " resource_schema_url FROM spans"
            f" WHERE {where} ORDER BY start_ns",
            params,
        )
        return found if len(found) >= count else None

    left = max(0.0, deadline - time.monotonic())
    return eventually(rows, left, 0.5, what=f"{count} spans in ClickHouse where {where}")


@pytest.mark.slow
def test_two_service_chain_is_one_trace_in_clickhouse(collector) -> None:
    store_url, http_port = collector
    port_a, port_b = free_port(), free_port()
    grpc_app = grpc.server(ThreadPoolExecutor(2), handlers=[Failing()])
    port_c = grpc_app.add_insecure_port("127.0.0.1:0")
    common = ("--collector", f"127.0.0.1:{http_port}", "--route", "/users/{uid}")
    common += ("--metrics-interval", "1")
    sidecar_a = SidecarProcess(port_a, "--service-name", "svc-a", *common)
    sidecar_b = SidecarProcess(port_b, "--service-name", "svc-b", *common)
    sidecar_c = SidecarProcess(port_c, "--grpc-ports", str(port_c), *common)
    sidecar_c.env = {"OTEL_SERVICE_NAME": "svc-c", "OTEL_RESOURCE_ATTRIBUTES": "team=carts%2Fpay"}
    app_a = ThreadedUvicorn(build_app(f"http://127.0.0.1:{sidecar_a.outbound}"), port=port_a)
    app_b = ThreadedUvicorn(build_app(), port=port_b)
    grpc_app.start()
    started = [app_a.start(), app_b.start(), sidecar_a.start(), sidecar_b.start()]
    started.append(sidecar_c.start())
    try:
        # App A calls "svc-b.test" (its Host) at sidecar B's address, as it would call a
        # Service name that iptables sends on to a ClusterIP.
        target = f"http://127.0.0.1:{sidecar_b.inbound}/users/9&host=svc-b.test:{sidecar_b.inbound}"
        conn = http.client.HTTPConnection("127.0.0.1", sidecar_a.inbound, timeout=20)
        conn.request(
            "GET", f"/call?target={target}", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"}
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and body["status"] == 200
        conn.request("PURGE", "/users/7", headers={"traceparent": f"00-{OTHER}-{CALLER}-01"})
        conn.getresponse().read()
        conn.close()
        with grpc.insecure_channel(f"127.0.0.1:{sidecar_c.inbound}") as channel:
            for code in ("NOT_FOUND", "INTERNAL"):
                with pytest.raises(grpc.RpcError):
                    channel.unary_unary(f"/shop.Cart/{code}")(b"x", timeout=20)
        store = open_store(store_url)
        deadline = time.monotonic() + 60
        rows = _spans(store, "trace_id = %(trace)s", {"trace": TRACE}, 3, deadline)
        [other] = _spans(store, "trace_id = %(trace)s", {"trace": OTHER}, 1, deadline)
        grpc_rows = _spans(store, "service_name = 'svc-c'", {}, 2, deadline)
        metric_rows = eventually(
            lambda: store.query(
                "SELECT metric_name, count FROM metric_points WHERE service_name = 'svc-b'"
                " AND metric_name = 'sidetrace.request.duration' ORDER BY ts DESC LIMIT 1"
            ),
            max(0.0, deadline - time.monotonic()),
            0.5,
            what="RED metrics in ClickHouse",
        )
    finally:
        for part in reversed(started):
            part.stop()
        grpc_app.stop(0)

    def shaped(row: tuple) -> dict:
        sid, parent, _, _, name, keys, values, status, res_keys, res_values, schema = row
        return {"id": sid, "parent": parent, "name": name, "status": status, "schema": schema,
                "attrs": dict(zip(keys, values, strict=True)),
                "resource": dict(zip(res_keys, res_values, strict=True))}  # fmt: skip

    spans = {(row[2], row[3]): shaped(row) for row in rows}
    assert set(spans) == {("svc-a", 2), ("svc-a", 3), ("svc-b", 2)}
    server_a, client_a, server_b = spans["svc-a", 2], spans["svc-a", 3], spans["svc-b", 2]
    assert server_a["parent"] == CALLER
    assert client_a["parent"] == server_a["id"]
    assert server_b["parent"] == client_a["id"]
    # http.route only from the configured template; without a match, none and no guess
    assert server_a["name"] == "GET" and "http.route" not in server_a["attrs"]
    assert server_b["name"] == "GET /users/{uid}"
    assert server_b["attrs"]["http.route"] == "/users/{uid}"
    assert server_b["attrs"]["http.response.status_code"] == "200"
    # the client span names the server by its Host; the IP it went to is the network peer
    port_b_text = str(sidecar_b.inbound)
    assert client_a["name"] == "GET"
    assert client_a["attrs"]["server.address"] == "svc-b.test"
    assert client_a["attrs"]["server.port"] == port_b_text
    assert client_a["attrs"]["url.full"] == f"http://svc-b.test:{port_b_text}/users/9"
    assert client_a["attrs"]["network.peer.address"] == "127.0.0.1"
    assert client_a["attrs"]["network.peer.port"] == port_b_text
    assert client_a["attrs"]["http.request.method"] == "GET"
    assert server_b["attrs"]["server.address"] == "svc-b.test"
    assert server_b["attrs"]["network.peer.address"] == "127.0.0.1"
    assert server_b["attrs"]["client.address"] == "127.0.0.1"
    assert {s["status"] for s in spans.values()} == {0}
    # resource and schema
    assert server_b["schema"] == SCHEMA_URL
    assert server_b["resource"]["telemetry.sdk.name"] == "sidetrace"
    assert server_b["resource"]["telemetry.sdk.language"] == "python"
    assert server_b["resource"]["telemetry.sdk.version"]
    # a non-standard method
    purge = shaped(other)
    assert purge["attrs"]["http.request.method"] == "_OTHER"
    assert purge["attrs"]["http.request.method_original"] == "PURGE"
    assert purge["name"] == "HTTP /users/{uid}" and purge["attrs"]["http.route"] == "/users/{uid}"
    # gRPC server spans: NOT_FOUND is the caller's problem, INTERNAL the server's
    by_method = {shaped(r)["attrs"]["rpc.method"]: shaped(r) for r in grpc_rows}
    assert by_method["NOT_FOUND"]["status"] == 0
    assert "error.type" not in by_method["NOT_FOUND"]["attrs"]
    assert by_method["INTERNAL"]["status"] == 2
    assert by_method["INTERNAL"]["attrs"]["error.type"] == "INTERNAL"
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    assert by_method["INTERNAL"]["resource"]["service.name"] == "svc-c"
    assert by_method["INTERNAL"]["resource"]["team"] == "carts/pay"
    assert metric_rows[0][1] >= 1  # svc-b's duration histogram counted the request
    downstream = body["downstream"]["headers"]
    assert downstream["traceparent"] == f"00-{TRACE}-{server_b['id']}-01"
    assert downstream["host"] == f"svc-b.test:{port_b_text}"
