"""The framing decision for responses and the heads the proxy sends on (pure)."""

from __future__ import annotations

import pytest

from sidecar.http_framing import (
    LAST_CHUNK,
    ResponseFraming,
    chunk,
    forward_request_head,
    forward_response_head,
    response_framing,
)

# (method, version, status, has_length, chunked, keep_alive) -> (chunked, close_delimited, keep)
FRAMINGS = [
    pytest.param("GET", "1.1", 200, True, False, True, (False, False, True), id="length"),
    pytest.param("GET", "1.1", 200, True, False, False, (False, False, False), id="length close"),
    pytest.param("GET", "1.1", 200, False, True, True, (True, False, True), id="chunked 1.1"),
    pytest.param(
        "GET", "1.1", 200, False, False, True, (True, True, True), id="close-delimited 1.1"
    ),
    pytest.param("GET", "1.0", 200, False, True, True, (False, False, False), id="chunked 1.0"),
    pytest.param(
        "GET", "1.0", 200, False, False, True, (False, True, False), id="close-delimited 1.0"
    ),
    pytest.param("GET", "1.0", 200, True, False, True, (False, False, True), id="length 1.0"),
    pytest.param("HEAD", "1.1", 200, False, False, True, (False, False, True), id="head"),
    pytest.param("GET", "1.1", 204, False, False, True, (False, False, True), id="204"),
    pytest.param("GET", "1.0", 304, False, False, True, (False, False, True), id="304 1.0"),
    pytest.param("POST", "1.1", 500, False, False, False, (True, True, False), id="draining"),
]


@pytest.mark.parametrize(
    ("method", "version", "status", "has_length", "chunked", "keep_alive", "expected"), FRAMINGS
)
def test_response_framing(
    method: str,
    version: str,
    status: int,
    has_length: bool,
    chunked: bool,
    keep_alive: bool,
    expected: tuple[bool, bool, bool],
) -> None:
    framing = response_framing(method, version, status, has_length, chunked, keep_alive)
    assert framing == ResponseFraming(*expected)


RESPONSE_HEADS = [
    pytest.param(
        ResponseFraming(False, False, True),
        "1.1",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
        id="kept alive, nothing added",
    ),
    pytest.param(
        ResponseFraming(True, True, True),
        "1.1",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
        id="chunked by the proxy",
    ),
    pytest.param(
        ResponseFraming(False, True, False),
        "1.0",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
        id="closing",
    ),
    pytest.param(
        ResponseFraming(False, False, True),
        "1.0",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n",
        id="1.0 kept alive says so",
    ),
]


@pytest.mark.parametrize(("framing", "version", "expected"), RESPONSE_HEADS)
def test_forward_response_head(framing: ResponseFraming, version: str, expected: bytes) -> None:
    head = forward_response_head(200, b"OK", b"content-length: 2\r\n", framing, version)
    assert head == expected


TRACE = b"traceparent: 00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01\r\n"
REQUEST_HEADS = [
    pytest.param(
        dict(missing_host=None, chunked=False, upgrade=b""),
        b"GET /a?b HTTP/1.1\r\nhost: svc\r\n" + TRACE + b"\r\n",
        id="plain",
    ),
    pytest.param(
        dict(missing_host=("10.0.0.7", 8080), chunked=False, upgrade=b""),
        b"GET /a?b HTTP/1.1\r\nhost: svc\r\nhost: 10.0.0.7:8080\r\n" + TRACE + b"\r\n",
        id="missing host named by its destination",
    ),
    pytest.param(
        dict(missing_host=None, chunked=True, upgrade=b"websocket"),
        b"GET /a?b HTTP/1.1\r\nhost: svc\r\n"
        + TRACE
        + b"transfer-encoding: chunked\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        id="chunked and upgrading",
    ),
]


@pytest.mark.parametrize(("options", "expected"), REQUEST_HEADS)
def test_forward_request_head(options: dict, expected: bytes) -> None:
    head = forward_request_head(b"GET", b"/a?b", b"host: svc\r\n", TRACE, **options)
    assert head == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"hello", b"5\r\nhello\r\n"), (b"x" * 26, b"1a\r\n" + b"x" * 26 + b"\r\n")],
)
def test_chunk(data: bytes, expected: bytes) -> None:
    assert chunk(data) == expected
    assert LAST_CHUNK == b"0\r\n\r\n"
