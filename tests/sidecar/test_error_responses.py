"""The proxy's own error responses: whole, closing, and saying why (pure)."""

from __future__ import annotations

import pytest

from sidecar.error_responses import error_response


@pytest.mark.parametrize(
    ("status", "detail", "body"),
    [
        (400, "", b"Bad Request\n"),
        (400, "more than one Host", b"Bad Request: more than one Host\n"),
        (508, "port 15006 is this sidecar", b"Loop Detected: port 15006 is this sidecar\n"),
        (599, "", b"Error\n"),
        (502, "caf\u00e9 \u2603", b"Bad Gateway: caf\xe9 ?\n"),
    ],
)
def test_error_response(status: int, detail: str, body: bytes) -> None:
    reply = error_response(status, detail)
    head, _, got = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 %d " % status)
    assert b"content-length: %d" % len(body) in lines
    assert b"connection: close" in lines
    assert got == body
