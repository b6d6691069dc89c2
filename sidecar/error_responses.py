"""The responses the proxy itself gives when it cannot carry a request on.

Each is a whole HTTP/1.1 message that closes the connection: after a framing error or a
failed upstream the connection's byte stream can no longer be trusted.
"""

from __future__ import annotations

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    508: b"Loop Detected",
}


def error_response(status: int, detail: str = "") -> bytes:
    """A plain-text ``status`` response whose body names the reason and ``detail``."""
    reason = REASONS.get(status, b"Error")
    body = reason + (b": " + detail.encode("latin-1", "replace") if detail else b"") + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
    )
