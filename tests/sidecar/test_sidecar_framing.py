"""Response framing and hop-by-hop handling against upstreams that answer with exact bytes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.sidecar_harness import CannedHttpServer
from tests.support.sidecar_process import SidecarProcess


@pytest.fixture
def through() -> Iterator:
    parts: list = []

    def make(
        response: bytes, close: bool = False, answers: int = 0
    ) -> tuple[CannedHttpServer, SidecarProcess]:
        upstream = CannedHttpServer(response, close, answers)
        sidecar = SidecarProcess(upstream.port).start()
        parts.extend([upstream, sidecar])
        return upstream, sidecar

    yield make
    for part in parts:
        part.stop()


def _exchange(port: int, request: bytes, until: bytes | None = None) -> bytes:
    """Send ``request``; read until ``until`` appears or the sidecar closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while until is None or until not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_connection_listed_response_headers_are_dropped(through) -> None:
    _, sidecar = through(
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\n"
        b"X-Public: 2\r\nContent-Length: 2\r\n\r\nok"
    )
    reply = _exchange(sidecar.inbound, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head = reply.split(b"\r\n\r\n")[0].lower()
    assert b"x-public: 2" in head
    assert b"x-internal" not in head and b"keep-alive" not in head
    assert reply.endswith(b"\r\n\r\nok")


def test_close_delimited_body_becomes_chunked_for_http11(through) -> None:
    _, sidecar = through(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", close=True
    )
    reply = _exchange(sidecar.inbound, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", until=b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in reply.lower()
    assert reply.endswith(b"b\r\nuntil close\r\n0\r\n\r\n")


def test_http10_client_gets_close_delimited_body(through) -> None:
    _, sidecar = through(b"HTTP/1.1 200 OK\r\n\r\nold client", close=True)
    reply = _exchange(sidecar.inbound, b"GET / HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\nold client")
    assert b"connection: close" in reply.lower()


def test_head_with_content_length_then_next_request(through) -> None:
    upstream, sidecar = through(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    reply = _exchange(
        sidecar.inbound,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /again HTTP/1.1\r\nHost: a\r\n\r\n",
        until=b"1234\r\n\r\nHTTP/1.1 200 OK",
    )
    assert reply.count(b"content-length: 1234") + reply.count(b"Content-Length: 1234") == 2
    assert len(upstream.heads) == 2


def test_invalid_upstream_response_is_502(through) -> None:
    _, sidecar = through(b"NOT HTTP AT ALL\r\n\r\n")
    reply = _exchange(sidecar.inbound, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502")


def test_upstream_closing_before_answering_is_502(through) -> None:
    _, sidecar = through(b"", close=True)
    reply = _exchange(sidecar.inbound, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 502")


def test_request_host_added_for_http10_without_host(through) -> None:
    upstream, sidecar = through(b"HTTP/1.1 204 No Content\r\n\r\n")
    reply = _exchange(sidecar.inbound, b"GET /x HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 204")
    assert b"host: 127.0.0.1:%d" % upstream.port in upstream.heads[0].lower()
    assert b"traceparent: 00-" in upstream.heads[0]


def test_stale_pooled_connection_is_retried_for_idempotent_requests(through) -> None:
    upstream, sidecar = through(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", answers=1)
    with socket.create_connection(("127.0.0.1", sidecar.inbound), timeout=10) as sock:
        for _ in range(3):  # each later one finds the pooled connection dropped
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            reply = b""
            while not reply.endswith(b"ok"):
                chunk = sock.recv(65536)
                assert chunk, "the sidecar gave up instead of retrying"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
    assert len(upstream.heads) == 5  # 3 answered + 2 dropped and retried
