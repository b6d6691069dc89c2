"""How a proxied HTTP/1.1 message is framed toward the next hop.

The body of a response reaches the proxy already de-chunked (httptools), so the proxy
decides anew how the client learns where it ends: the upstream's Content-Length, chunks
of its own, or the end of the connection. Heads are rebuilt from the forwarded field
lines (``sidecar.http_headers``) plus the few fields this decision adds.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple


class ResponseFraming(NamedTuple):
    """How a response goes to the client."""

    chunked: bool  # the proxy chunks the body (the upstream's own chunks are gone)
    close_delimited: bool  # the upstream's body ends when its connection does
    keep_alive: bool  # the client connection carries on after this response


def response_framing(
    method: str,
    version: str,
    status: int,
    has_length: bool,
    chunked: bool,
    keep_alive: bool,
) -> ResponseFraming:
    """The framing of a final (non-1xx) response to a ``method`` request of HTTP
    ``version``, given its upstream framing (a Content-Length, chunked or neither) and
    whether the client connection would otherwise be kept alive.

    An HTTP/1.1 client gets chunks whenever the length is not known up front, so its
    connection survives a close-delimited upstream body; an HTTP/1.0 client, which
    cannot read chunks, gets the body until the connection closes."""
    if method == "HEAD" or status in (204, 304) or has_length:
        return _FRAMINGS[False, False, bool(keep_alive)]
    if version != "1.0":
        return _FRAMINGS[True, not chunked, bool(keep_alive)]
    return _FRAMINGS[False, not chunked, False]


# Every framing there is, made once: the full path picks one per response.
_FRAMINGS = {bits: ResponseFraming(*bits) for bits in itertools.product((False, True), repeat=3)}


def status_line(status: int, reason: bytes) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def upgrade_lines(protocol: bytes) -> bytes:
    """The fields that carry an Upgrade across this hop (RFC 9110 7.8)."""
    return b"connection: upgrade\r\nupgrade: " + protocol + b"\r\n"


def forward_response_head(
    status: int, reason: bytes, fields: bytes, framing: ResponseFraming, version: str
) -> bytes:
    """The head of a final response: the forwarded ``fields`` plus the framing fields."""
    added = b"transfer-encoding: chunked\r\n" if framing.chunked else b""
    if not framing.keep_alive:
        added += b"connection: close\r\n"
    elif version == "1.0":
        added += b"connection: keep-alive\r\n"
    return b"HTTP/1.1 %d %s\r\n%b%b\r\n" % (status, reason, fields, added)


def forward_request_head(
    method: bytes,
    target: bytes,
    fields: bytes,
    trace_lines: bytes,
    missing_host: tuple[str, int] | None,
    chunked: bool,
    upgrade: bytes,
) -> bytes:
    """The head of a request sent upstream, always as HTTP/1.1: ``fields`` as forwarded,
    a Host naming ``missing_host`` when the request had none, the ``trace_lines``, and
    the framing and Upgrade fields this hop carries on."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n", fields]
    if missing_host is not None:
        lines.append(b"host: %s:%d\r\n" % (missing_host[0].encode(), missing_host[1]))
    lines.append(trace_lines)
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    if upgrade:
        lines.append(upgrade_lines(upgrade))
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
