"""The sidecar as a real process in front of a real Starlette app: HTTP/1.1 behaviour and spans."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

import pytest
import websockets.sync.client

from runtime.loopback_ports import free_port
from tests.support.sidecar_harness import attributes, spans_of_trace

TID = "0af7651916cd43dd8448eb211c80319c"
SID = "b7ad6b7169203331"


def _get(port: int, path: str, headers: dict | None = None, timeout: float = 10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def _raw(port: int, data: bytes, timeout: float = 5.0, wait_close: bool = True) -> bytes:
    """Send raw bytes, return everything received until the peer closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if data:
            sock.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if not wait_close and _whole_response(received):
                break
        return received


def _whole_response(data: bytes) -> bool:
    """A head and, when it announces a Content-Length, that much body."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return length is None or len(body) >= int(length.group(1))


def test_inbound_continues_trace_and_app_gets_server_span_as_parent(stack, sink) -> None:
    sidecar, _ = stack
    headers = {
        "traceparent": f"00-{TID}-{SID}-01",
        "tracestate": "vendor=1,vendor=2",
        "baggage": "user=alice",
        "user-agent": "tests/1.0",
    }
    response, body = _get(sidecar.inbound, "/users/42?x=1", headers)
    assert response.status == 200
    seen = json.loads(body)["headers"]
    assert seen["traceparent"].startswith(f"00-{TID}-")
    app_parent = seen["traceparent"].split("-")[2]
    assert app_parent != SID
    assert seen["tracestate"] == "vendor=1"
    assert seen["baggage"] == "user=alice"  # W3C baggage passes through untouched
    [(resource, span)] = spans_of_trace(sink, TID, 1)
    assert span.span_id.hex() == app_parent
    assert span.parent_span_id.hex() == SID
    assert span.kind == 2  # SERVER
    assert span.name == "GET /users/{uid}"
    attrs = attributes(span)
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/users/{uid}"
    assert attrs["url.path"] == "/users/42"
    assert attrs["url.query"] == "x=1"
    assert attrs["http.response.status_code"] == 200
    assert attrs["user_agent.original"] == "tests/1.0"
    assert attrs["network.protocol.version"] == "1.1"
    assert attrs["client.address"] == "127.0.0.1"
    assert resource["service.name"] == "svc-a"
    assert resource["k8s.pod.name"] == "svc-a-pod-1"


def test_an_http10_exchange_is_recorded_with_its_version(stack, sink) -> None:
    """HTTP/1.0 takes neither the scanner nor a lane: the httptools path records it."""
    sidecar, _ = stack
    trace = TID[:-4] + "1010"
    request = b"GET /users/10 HTTP/1.0\r\ntraceparent: 00-%s-%s-01\r\n\r\n"
    reply = _raw(sidecar.inbound, request % (trace.encode(), SID.encode()))
    assert reply.startswith(b"HTTP/1.1 200")
    [(_, span)] = spans_of_trace(sink, trace, 1)
    attrs = attributes(span)
    assert attrs["network.protocol.version"] == "1.0"
    assert (attrs["http.route"], attrs["http.response.status_code"]) == ("/users/{uid}", 200)
    assert span.parent_span_id.hex() == SID and span.kind == 2


def test_outbound_child_of_server_span_and_broken_propagation_counted(stack, sink) -> None:
    sidecar, app = stack
    target = f"http://127.0.0.1:{app.port}/users/7"
    before = sidecar.metric("sidetrace_sidecar_broken_propagation_total")
    response, body = _get(
        sidecar.inbound,
        f"/call?forward=1&target={target}",
        {"traceparent": f"00-{TID[::-1]}-{SID}-01"},
    )
    assert response.status == 200
    downstream = json.loads(body)["downstream"]["headers"]
    assert downstream["x-sidetrace-peer"] == "svc-a"
    spans = spans_of_trace(sink, TID[::-1], 2)
    by_kind = {sp.kind: sp for _, sp in spans}
    server, client = by_kind[2], by_kind[3]
    assert client.parent_span_id == server.span_id
    assert downstream["traceparent"] == f"00-{TID[::-1]}-{client.span_id.hex()}-01"
    assert attributes(client)["server.port"] == app.port
    assert attributes(client)["url.full"] == target
    assert sidecar.metric("sidetrace_sidecar_broken_propagation_total") == before
    response, _ = _get(sidecar.inbound, f"/call?forward=0&target={target}")
    assert response.status == 200
    assert sidecar.metric("sidetrace_sidecar_broken_propagation_total") == before + 1


def test_unsampled_parent_is_propagated_but_not_recorded(stack, sink) -> None:
    sidecar, _ = stack
    trace = "1" * 32
    response, body = _get(sidecar.inbound, "/", {"traceparent": f"00-{trace}-{SID}-00"})
    assert json.loads(body)["headers"]["traceparent"].endswith("-00")
    _get(sidecar.inbound, "/", {"traceparent": f"00-{'2' * 32}-{SID}-01"})
    spans_of_trace(sink, "2" * 32, 1)
    assert not [sp for _, sp in sink.spans if sp.trace_id.hex() == trace]


def test_kube_probe_is_not_traced(stack) -> None:
    sidecar, _ = stack
    original = f"00-{'3' * 32}-{SID}-01"
    response, body = _get(
        sidecar.inbound, "/", {"user-agent": "kube-probe/1.29", "traceparent": original}
    )
    assert json.loads(body)["headers"]["traceparent"] == original


def test_keep_alive_reuses_upstream_connection(stack) -> None:
    sidecar, _ = stack
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    ports = set()
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        ports.add(json.loads(response.read())["port"])
        assert response.status == 200
        assert not response.will_close
    conn.close()
    assert len(ports) == 1  # one pooled upstream connection carried all three


def test_hop_by_hop_headers_are_not_forwarded(stack) -> None:
    sidecar, _ = stack
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Private\r\n"
        b"X-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
        b"Proxy-Authorization: Basic eA==\r\nX-Kept: yes\r\n\r\n"
    )
    reply = _raw(sidecar.inbound, request, wait_close=False)
    seen = json.loads(reply.split(b"\r\n\r\n", 1)[1])["headers"]
    assert seen["x-kept"] == "yes"
    for name in ("x-private", "keep-alive", "te", "proxy-authorization", "connection"):
        assert name not in seen


def test_pipelined_requests_are_answered_in_order(stack) -> None:
    sidecar, _ = stack
    request = b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: x\r\n\r\n"
    request += b"GET /users/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = _raw(sidecar.inbound, request)
    assert reply.count(b"HTTP/1.1 200") == 3
    assert reply.index(b"/users/1") < reply.index(b"/users/2") < reply.index(b"/users/3")


def test_expect_100_continue(stack) -> None:
    sidecar, _ = stack
    with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=10) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        reply = b""
        while b'"bytes":5' not in reply:
            chunk = sock.recv(4096)
            assert chunk
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")


def test_chunked_request_and_streamed_response(stack) -> None:
    sidecar, _ = stack
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    request = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    reply = _raw(sidecar.inbound, request)
    assert reply.startswith(b"HTTP/1.1 200") and b'"bytes":11' in reply
    response, data = _get(sidecar.inbound, "/download?mb=1")
    assert response.status == 200 and len(data) == 1024 * 1024


def test_head_response_has_no_body_and_connection_survives(stack) -> None:
    sidecar, _ = stack
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    conn.request("HEAD", "/")
    response = conn.getresponse()
    assert response.status in (200, 405)
    response.read()
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()


def test_websocket_echo_through_sidecar(stack) -> None:
    sidecar, _ = stack
    with websockets.sync.client.connect(f"ws://127.0.0.1:{sidecar.inbound}/ws") as ws:
        for message in ("hello", "x" * 100_000, "bye"):
            ws.send(message)
            assert ws.recv(timeout=10) == message


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
        (
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_bad_input_gets_4xx_and_sidecar_keeps_serving(stack, request_bytes, status) -> None:
    sidecar, _ = stack
    reply = _raw(sidecar.inbound, request_bytes)
    assert reply.startswith(b"HTTP/1.1 %d" % status), reply[:80]
    assert _get(sidecar.inbound, "/")[0].status == 200


def test_garbage_and_binary_input_never_crash(stack) -> None:
    sidecar, _ = stack
    for junk in (b"\x16\x03\x01\x00\xa5\x01\x00", b"\r\n\r\n\r\n", b"GET", b"\xff" * 5000):
        _raw(sidecar.inbound, junk, timeout=2)
    assert sidecar.process.poll() is None
    assert _get(sidecar.inbound, "/")[0].status == 200


def test_slowloris_header_timeout_gets_408(stack) -> None:
    sidecar, _ = stack
    with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        reply = sock.recv(1024)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408")
    assert waited < 5


def test_slow_app_does_not_stall_other_requests(stack) -> None:
    import threading

    sidecar, _ = stack
    slow_result: list = []
    thread = threading.Thread(
        target=lambda: slow_result.append(_get(sidecar.inbound, "/slow?s=2")[0].status)
    )
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    for _ in range(5):
        assert _get(sidecar.inbound, "/")[0].status == 200
    assert time.monotonic() - started < 1.5
    thread.join(10)
    assert slow_result == [200]


def test_outbound_proxy_mode_absolute_uri_and_upstream_errors(stack, sink) -> None:
    sidecar, app = stack
    reply = _raw(
        sidecar.outbound,
        f"GET http://127.0.0.1:{app.port}/users/5 HTTP/1.1\r\nHost: ignored\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 200") and b'"path":"/users/5"' in reply
    dead = free_port()
    errors = sidecar.metric("sidetrace_sidecar_upstream_errors_total")
    trace = "4" * 32
    reply = _raw(
        sidecar.outbound,
        f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{dead}\r\n"
        f"traceparent: 00-{trace}-{SID}-01\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 502")
    assert sidecar.metric("sidetrace_sidecar_upstream_errors_total") == errors + 1
    [(_, span)] = spans_of_trace(sink, trace, 1)
    assert span.kind == 3 and span.status.code == 2
    assert attributes(span)["error.type"] == "connect_error"


def test_connect_timeout_gives_504(stack) -> None:
    sidecar, _ = stack
    # A listener whose accept queue is full drops further SYNs, so connects hang.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        started = time.monotonic()
        reply = _raw(
            sidecar.outbound,
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
            timeout=15,
        )
        for s in fillers:
            s.close()
    assert reply.startswith((b"HTTP/1.1 504", b"HTTP/1.1 502")), reply[:60]
    if reply.startswith(b"HTTP/1.1 504"):
        assert time.monotonic() - started >= 0.9


def test_red_metrics_and_admin_endpoints(stack) -> None:
    sidecar, _ = stack
    _get(sidecar.inbound, "/fail")
    time.sleep(0.6)
    assert sidecar.metric("sidetrace_requests_total", direction="inbound", status_class="5xx") >= 1
    assert (
        sidecar.metric(
            "sidetrace_request_duration_seconds_count", route="/users/{uid}", method="GET"
        )
        >= 1
    )
    assert sidecar.get("/healthz")[0] == 200
    assert sidecar.get("/readyz")[0] == 200
    assert sidecar.get("/nope")[0] == 404
