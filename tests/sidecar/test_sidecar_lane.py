"""The C lane: a keep-alive client connection paired with one upstream connection.

After a first simple exchange (``_http1scan.request_head`` / ``scan_response``)
the proxy pairs the client's connection with its upstream connection, and the next
simple exchanges go through ``_http1scan.Lane`` alone. These tests drive a real
sidecar in front of a scripted upstream through every way out of a lane (a request
or a response it does not take, the upstream or the client going away, SIGTERM)
and check the bytes each side saw and the spans the sidecar exported.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.polling import eventually
from tests.support.sidecar_harness import OtlpSink, ScriptedHttpServer, attributes, spans_of_trace
from tests.support.sidecar_process import SidecarProcess

SIMPLE = b"GET /%s HTTP/1.1\r\nHost: svc-b\r\nUser-Agent: lane-test/1\r\n\r\n"


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    sink = OtlpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def upstream() -> Iterator[ScriptedHttpServer]:
    server = ScriptedHttpServer()
    yield server
    server.stop()


@pytest.fixture
def sidecar(upstream: ScriptedHttpServer, sink: OtlpSink) -> Iterator[SidecarProcess]:
    process = SidecarProcess(
        upstream.port,
        "--collector", f"127.0.0.1:{sink.port}",
        "--service-name", "svc-b",
        "--drain-grace", "5",
    ).start()  # fmt: skip
    yield process
    process.stop()


def _traceparents(upstream: ScriptedHttpServer) -> list[str]:
    """The traceparent of every request head the upstream received, in order."""
    found = []
    for head in upstream.heads:
        values = [
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"traceparent:")
        ]
        assert len(values) == 1, head
        found.append(values[0])
    return found


def _server_span(sink: OtlpSink, traceparent: str):
    _, trace_id, span_id, _ = traceparent.split("-")
    [(_, span)] = spans_of_trace(sink, trace_id, 1)
    assert span.span_id.hex() == span_id
    return span


def _comparable(span) -> dict:
    """What two spans of the same request must share: all but ids and times."""
    found = attributes(span)
    return {"name": span.name, "kind": span.kind, "status": span.status.code, **found}


def _get(conn: http.client.HTTPConnection, path: str, method: str = "GET", **kw) -> tuple:
    conn.request(method, path, **kw)
    reply = conn.getresponse()
    return reply.status, reply.read()


def _pairings(sidecar: SidecarProcess) -> float:
    return sidecar.metric("sidetrace_sidecar_lane_pairings_total")


def _read_responses(sock: socket.socket, count: int, timeout: float = 10.0) -> bytes:
    """Bytes until ``count`` Content-Length responses have arrived whole."""
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rest, done = received, 0
        while b"\r\n\r\n" in rest:
            head, _, rest = rest.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            rest, done = rest[length:], done + 1
        if done >= count:
            return received
        received += sock.recv(65536)
    raise AssertionError(f"only {received!r}")


@contextlib.contextmanager
def _paired(sidecar: SidecarProcess) -> Iterator[socket.socket]:
    """A client connection the sidecar has paired with its upstream: two simple
    exchanges (``/one``, ``/two``) are done on it."""
    with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=10) as sock:
        for path in (b"one", b"two"):
            sock.sendall(SIMPLE % path)
            _read_responses(sock, 1)
        yield sock


def test_simple_exchanges_share_one_upstream_and_each_start_a_trace(sidecar, upstream, sink):
    before = _pairings(sidecar)
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    replies = [_get(conn, f"/items/{i}", headers={"User-Agent": "lane-test/1"}) for i in range(6)]
    conn.close()
    assert replies == [(200, b"conn-1")] * 6  # one upstream connection carried them all
    assert _pairings(sidecar) == before + 1  # paired once, after the first exchange
    traceparents = _traceparents(upstream)
    assert len({tp.split("-")[1] for tp in traceparents}) == 6
    # new traces, sampled, their ids drawn at random (Trace Context Level 2's flag)
    assert all(tp.startswith("00-") and tp.endswith("-03") for tp in traceparents)
    spans = [_server_span(sink, tp) for tp in traceparents]
    # The first exchange took the Python path, the others the lane: the spans must agree.
    first = _comparable(spans[0])
    assert first["url.path"] == "/items/0"
    assert first["http.response.status_code"] == 200
    assert first["user_agent.original"] == "lane-test/1"
    assert first["server.address"] == "127.0.0.1"
    for i, span in enumerate(spans[1:], start=1):
        assert _comparable(span) == first | {"url.path": f"/items/{i}"}
        assert span.parent_span_id == b""
        assert span.end_time_unix_nano > span.start_time_unix_nano > 0
    assert sidecar.metric("sidetrace_sidecar_requests_in_flight_inbound") == 0


def test_each_exchange_on_a_lane_records_its_own_fields(sidecar, upstream, sink):
    """The lane keeps a field's object while requests repeat it: a change must show."""
    before = _pairings(sidecar)
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    asked = [
        ("GET", "/same", "svc-b", "agent/1", "svc-x"),
        ("GET", "/same", "svc-b", "agent/1", "svc-x"),
        ("DELETE", "/same", "svc-b", "agent/2", "svc-x"),
        ("OPTIONS", "/other", "svc-c:8080", "agent/2", "svc-y"),
        ("GET", "/other", "svc-c:8080", "", ""),
        ("GET", "/same", "svc-b", "agent/1", "svc-x"),
    ]
    for method, path, host, agent, peer in asked:
        headers = {"Host": host} | ({"User-Agent": agent} if agent else {})
        headers |= {"x-sidetrace-peer": peer} if peer else {}
        assert _get(conn, path, method, headers=headers) == (200, b"conn-1")
    conn.close()
    assert _pairings(sidecar) == before + 1
    spans = [_server_span(sink, tp) for tp in _traceparents(upstream)]
    recorded = [
        (
            found["http.request.method"],
            found["url.path"],
            f"{found['server.address']}:{found['server.port']}",
            found.get("user_agent.original", ""),
        )
        for found in map(attributes, spans)
    ]
    ports = {"svc-b": "svc-b:80", "svc-c:8080": "svc-c:8080"}
    assert recorded == [(m, path, ports[host], agent) for m, path, host, agent, _ in asked]
    for peer, count in (("svc-x", 4), ("svc-y", 1), ("", 1)):
        assert sidecar.metric("sidetrace_requests_total", peer=peer, direction="inbound") == count


def test_continued_traces_stay_in_the_lane(sidecar, upstream, sink):
    """As in a mesh: each request carries its caller's traceparent and peer name."""
    before = _pairings(sidecar)
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    parents = [f"00-{i + 1:032x}-{i + 1:016x}-{'01' if i % 2 == 0 else '00'}" for i in range(5)]
    for i, parent in enumerate(parents):
        headers = {"traceparent": parent, "x-sidetrace-peer": "svc-a", "baggage": "k=v"}
        assert _get(conn, f"/chain/{i}", headers=headers) == (200, b"conn-1")
    conn.close()
    assert _pairings(sidecar) == before + 1
    for head in upstream.heads:
        assert b"x-sidetrace-peer" not in head.lower() and b"\r\nbaggage: k=v" in head
    sent = _traceparents(upstream)
    for i, (parent, forwarded) in enumerate(zip(parents, sent, strict=True)):
        version, trace_id, parent_id, flags = parent.split("-")
        assert forwarded.split("-")[1] == trace_id and forwarded.split("-")[3] == flags
        assert forwarded.split("-")[2] != parent_id
        if flags == "01":  # sampled by the caller: recorded as its child
            span = _server_span(sink, forwarded)
            assert span.parent_span_id.hex() == parent_id
            assert attributes(span)["url.path"] == f"/chain/{i}"
    unsampled = [tp.split("-")[1] for tp in sent[1::2]]
    assert not any(span.trace_id.hex() in unsampled for _, span in sink.spans)
    metrics = sidecar.get("/metrics")[1]
    assert 'peer="svc-a"' in metrics
    assert sidecar.metric("sidetrace_requests_total", peer="svc-a", direction="inbound") == 5


def test_requests_with_whole_bodies_stay_in_the_lane(sidecar, upstream, sink):
    """Each request in one write: a body arriving after its head goes the full path."""
    before = _pairings(sidecar)
    bodies = [b'{"order": %d}' % i for i in range(4)] + [b""]
    with _paired(sidecar) as sock:
        for i, body in enumerate(bodies):
            method = b"PUT" if i % 2 else b"POST"
            sock.sendall(
                b"%s /orders/%d HTTP/1.1\r\nHost: svc-b\r\nContent-Length: %d\r\n\r\n%s"
                % (method, i, len(body), body)
            )
            assert _read_responses(sock, 1).endswith(b"conn-1")
    assert _pairings(sidecar) == before + 1
    assert upstream.bodies[2:] == bodies
    spans = [attributes(_server_span(sink, tp)) for tp in _traceparents(upstream)[2:]]
    assert [s["http.request.method"] for s in spans] == ["POST", "PUT", "POST", "PUT", "POST"]


def test_requests_the_lane_refuses_take_the_full_path_in_order(sidecar, upstream, sink):
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    assert _get(conn, "/a") == (200, b"conn-1")
    assert _get(conn, "/b") == (200, b"conn-1")  # through the lane
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert _get(conn, "/continued", headers={"traceparent": parent}) == (200, b"conn-1")
    assert _get(conn, "/head", method="HEAD") == (200, b"")
    assert _get(conn, "/post", method="POST", body=b"x" * 100) == (200, b"conn-1")
    assert _get(conn, "/again") == (200, b"conn-1")
    conn.close()
    paths = [head.split(b" ")[1] for head in upstream.heads]
    assert paths == [b"/a", b"/b", b"/continued", b"/head", b"/post", b"/again"]
    continued = _traceparents(upstream)[2]
    assert continued.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    span = _server_span(sink, continued)
    assert span.parent_span_id.hex() == "b7ad6b7169203331"


def test_two_requests_in_one_write_on_a_paired_connection(sidecar, upstream):
    with _paired(sidecar) as sock:
        sock.sendall(SIMPLE % b"slow" + SIMPLE % b"after")  # pipelined
        received = _read_responses(sock, 2)
    assert received.count(b"conn-1") == 2
    assert [h.split(b" ")[1] for h in upstream.heads] == [b"/one", b"/two", b"/slow", b"/after"]


def test_request_while_one_is_in_flight_is_answered_after_it(sidecar, upstream):
    with _paired(sidecar) as sock:
        sock.sendall(SIMPLE % b"slow")  # the lane takes it; the upstream answers in 0.5 s
        time.sleep(0.1)
        sock.sendall(SIMPLE % b"next")  # the lane is busy: both go on along the full path
        received = _read_responses(sock, 2)
    assert received.index(b"conn-1") < received.index(b"conn-", received.index(b"conn-1") + 1)
    assert [h.split(b" ")[1] for h in upstream.heads] == [b"/one", b"/two", b"/slow", b"/next"]


def test_response_the_lane_refuses_is_finished_on_the_full_path(sidecar, upstream, sink):
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    assert _get(conn, "/a") == (200, b"conn-1")
    assert _get(conn, "/b") == (200, b"conn-1")
    assert _get(conn, "/chunked") == (200, b"chunk")
    assert _get(conn, "/c") == (200, b"conn-1")
    conn.close()
    span = _server_span(sink, _traceparents(upstream)[2])
    assert attributes(span)["http.response.status_code"] == 200
    assert attributes(span)["url.path"] == "/chunked"


def test_stale_upstream_connection_is_replaced(sidecar, upstream, sink):
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    assert _get(conn, "/a") == (200, b"conn-1")
    assert _get(conn, "/last") == (200, b"conn-1")  # then the upstream closes it, idle
    time.sleep(0.2)
    assert _get(conn, "/b") == (200, b"conn-2")
    assert _get(conn, "/c") == (200, b"conn-2")
    conn.close()
    for traceparent in _traceparents(upstream):
        assert attributes(_server_span(sink, traceparent))["http.response.status_code"] == 200


def test_upstream_closing_mid_exchange_is_retried_then_502(sidecar, upstream, sink):
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    assert _get(conn, "/a") == (200, b"conn-1")
    assert _get(conn, "/b") == (200, b"conn-1")
    status, _ = _get(conn, "/reset")  # dropped on the paired connection, then on a new one
    assert status == 502
    conn.close()
    assert [h.split(b" ")[1] for h in upstream.heads] == [b"/a", b"/b", b"/reset", b"/reset"]
    assert upstream.connections == 2
    span = _server_span(sink, _traceparents(upstream)[2])
    found = attributes(span)
    assert found["error.type"] == "upstream_reset"
    assert found["http.response.status_code"] == 502
    assert sidecar.metric("sidetrace_sidecar_requests_in_flight_inbound") == 0


def test_client_closing_mid_exchange_is_recorded(sidecar, upstream, sink):
    with _paired(sidecar) as sock:
        sock.sendall(SIMPLE % b"slow")
        time.sleep(0.1)
    span = _server_span(sink, _traceparents(upstream)[2])
    assert attributes(span)["error.type"] == "client_closed"
    in_flight = "sidetrace_sidecar_requests_in_flight_inbound"
    eventually(lambda: sidecar.metric(in_flight) == 0, 5, 0.1, what="no request in flight")


def test_kubelet_probe_on_a_paired_connection_is_not_traced(sidecar, upstream, sink):
    conn = http.client.HTTPConnection("127.0.0.1", sidecar.inbound, timeout=10)
    assert _get(conn, "/a") == (200, b"conn-1")
    assert _get(conn, "/b") == (200, b"conn-1")
    assert _get(conn, "/healthz", headers={"User-Agent": "kube-probe/1.30"}) == (200, b"conn-1")
    assert _get(conn, "/c") == (200, b"conn-1")
    conn.close()
    probe = upstream.heads.pop(2)
    assert b"traceparent" not in probe.lower()
    for traceparent in _traceparents(upstream):
        _server_span(sink, traceparent)


def test_intercepted_outbound_exchanges_pair_too(sidecar, upstream, sink, redirect):
    """Outbound, as in a pod: the app's connection to the upstream, redirected by iptables."""
    before = _pairings(sidecar)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        redirect(sock.getsockname()[1], upstream.port, sidecar.outbound)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", upstream.port))
        for i in range(4):
            sock.sendall(SIMPLE % b"out/%d" % i)
            assert _read_responses(sock, 1).endswith(b"conn-1")
    assert _pairings(sidecar) == before + 1
    assert all(b"\r\nx-sidetrace-peer: svc-b" in head for head in upstream.heads)
    spans = [_comparable(_server_span(sink, tp)) for tp in _traceparents(upstream)]
    assert spans[0]["kind"] == 3  # CLIENT
    # The server is the Host the app named; the original destination is the network peer.
    assert spans[0]["server.address"] == "svc-b"
    assert spans[0]["server.port"] == upstream.port
    assert spans[0]["network.peer.address"] == "127.0.0.1"
    assert spans[0]["network.peer.port"] == upstream.port
    for i, span in enumerate(spans):
        assert span == spans[0] | {"url.full": f"http://svc-b/out/{i}"}


def test_sigterm_lets_a_paired_exchange_finish_then_closes(sidecar, upstream):
    with _paired(sidecar) as sock:
        sock.sendall(SIMPLE % b"slow")
        time.sleep(0.1)
        sidecar.process.send_signal(signal.SIGTERM)
        received = _read_responses(sock, 1)
        assert received.endswith(b"conn-1")
        assert b"connection: close" in received.lower()
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # then the sidecar closes the connection
    assert sidecar.process.wait(10) == 0


def test_idle_paired_connection_times_out_and_its_upstream_is_pooled(upstream, sink):
    process = SidecarProcess(
        upstream.port, "--collector", f"127.0.0.1:{sink.port}", "--idle-timeout", "1"
    ).start()
    try:
        with _paired(process) as sock:
            sock.settimeout(10)
            started = time.monotonic()
            assert sock.recv(65536) == b""  # closed by the sidecar, not by this test
            assert time.monotonic() - started >= 0.5
        conn = http.client.HTTPConnection("127.0.0.1", process.inbound, timeout=10)
        assert _get(conn, "/again") == (200, b"conn-1")  # the upstream went back to the pool
        conn.close()
    finally:
        process.stop()
