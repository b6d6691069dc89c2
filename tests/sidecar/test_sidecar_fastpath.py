"""The C fast path (``sidecar._http1scan``) against httptools, the reference parser.

``scan_request``/``request_head``/``scan_response`` may only vouch for a
message that httptools reads the same way and that the proxy may forward
without rewriting; anything else must fall back to the httptools path. Table
tests pin the grammar edges, hypothesis compares both parsers on generated and
mutated messages, and the end-to-end tests send one request through a real
sidecar whole (fast path) and split mid-head (httptools path), inbound and
intercepted outbound, and compare what the app, the upstream and the client saw.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar._http1scan import new_root_ids, request_head, scan_request, scan_response
from sidecar.propagation import Propagator
from sidecar.trace_context import parse_traceparent, trace_flags
from tests.support.sidecar_harness import CannedHttpServer, attributes, spans_of_trace

# The HTTP tests' real sidecar in front of a real app, and its OTLP sink (one per module),
# and the interception tests' iptables REDIRECT of one client connection.

FAST_METHODS = (b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"POST", b"PUT", b"PATCH")
REQUEST_SPECIAL = (
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"proxy-authorization", b"proxy-authenticate", b"expect", b"tracestate", b"b3",
)  # fmt: skip
CONTEXT = (b"traceparent", b"x-sidetrace-peer")  # taken once each, not forwarded as received
PARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
RESPONSE_SPECIAL = (
    b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate",
)  # fmt: skip
OWS = b" \t"
TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FIELD_VCHAR = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
REQUEST_HEAD = b"GET / HTTP/1.1\r\nHost: a\r\n"
RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\n"
PEER_LINE = b"x-sidetrace-peer: svc-a\r\n"  # what the outbound listener adds
ALWAYS = 2**64 - 1  # the root sample bound of ratio 1


def _odd_case(name: bytes) -> bytes:
    """``transfer-encoding`` -> ``TrAnSfEr-EnCoDiNg``: the scanner must fold case."""
    return bytes(c - 32 if i % 2 == 0 and 97 <= c <= 122 else c for i, c in enumerate(name))


class Parsed:
    """What httptools reports for a byte string, recorded from its callbacks."""

    def __init__(self, data: bytes, response: bool) -> None:
        self.url = b""
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.begun = 0
        self.completed = 0
        self.keep_alive: bool | None = None
        self.error: Exception | None = None
        make = httptools.HttpResponseParser if response else httptools.HttpRequestParser
        self.parser = make(self)
        self.feed(data)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = exc

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.completed += 1
        self.keep_alive = self.parser.should_keep_alive()  # only meaningful until it resets

    def trimmed_headers(self) -> list[tuple[bytes, bytes]]:
        """httptools keeps trailing OWS in a value; RFC 9110 5.5 says it is not part of it."""
        return [(n, v.rstrip(OWS)) for n, v in self.headers]

    def one_whole_message(self) -> bool:
        return self.error is None and self.begun == 1 and self.completed == 1


def _field_lines(block: bytes) -> list[tuple[bytes, bytes]]:
    """``name: value`` pairs of CRLF-terminated field lines, values trimmed of OWS."""
    assert block.endswith(b"\r\n")
    pairs = []
    for line in block[:-2].split(b"\r\n"):
        name, value = line.split(b":", 1)
        pairs.append((name, value.strip(OWS)))
    return pairs


def _value_of(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name]


def check_request_agrees(data: bytes) -> tuple | None:
    """Scan ``data``; if the scanner vouches for it, httptools must read it the same way
    and it must meet every condition of the fast path (and ``request_head`` must
    take exactly the requests ``scan_request`` takes)."""
    scanned = scan_request(data)
    if scanned is None:
        assert request_head(data, PEER_LINE, ALWAYS) is None
        return None
    method, target, fields_start, host, user_agent, traceparent, peer = scanned
    parsed = Parsed(data, response=False)
    assert parsed.one_whole_message(), (data, parsed.error)
    assert parsed.parser.get_method() == method and method in FAST_METHODS
    assert parsed.url == target and target.startswith(b"/")
    assert parsed.parser.get_http_version() == "1.1"
    head_end = data.index(b"\r\n\r\n") + 4
    body = data[head_end:]
    assert parsed.body == body
    assert parsed.keep_alive is True
    assert data[:fields_start] == method + b" " + target + b" HTTP/1.1\r\n"
    headers = parsed.trimmed_headers()
    assert _field_lines(data[fields_start : head_end - 2]) == headers
    lengths = _value_of(headers, b"content-length")
    assert (lengths == [] and body == b"") or [int(n) for n in lengths] == [len(body)]
    assert _value_of(headers, b"host") == [host]
    for name, value in [(b"user-agent", user_agent), (b"x-sidetrace-peer", peer)]:
        found = _value_of(headers, name)
        assert found == [value] or (found == [] and value == b"")
    found = _value_of(headers, b"traceparent")
    assert found == [traceparent] or (found == [] and traceparent == b"")
    if traceparent:  # one the full path continues, in the version the fast path writes
        parsed_parent = parse_traceparent(traceparent.decode())
        assert parsed_parent is not None and traceparent.startswith(b"00-")
    for name, _ in headers:
        assert name.lower() not in REQUEST_SPECIAL and not name.lower().startswith(b"x-b3-")
    check_request_head(data, scanned)
    return scanned


def check_request_head(data: bytes, scanned: tuple, extra: bytes = PEER_LINE) -> tuple:
    """``request_head`` on a request ``scan_request`` took: the same facts, the span the
    full path would start (a child of the traceparent, or a new sampled root), and a head
    that is ``data`` without its context lines, with ``extra`` and the span's traceparent
    added last."""
    method, target, _, host, user_agent, incoming, peer = scanned
    prepared = request_head(data, extra, ALWAYS)
    assert prepared is not None
    head, trace_id, span_id, parent_id, sampled, *facts = prepared
    assert facts == [method, target, host, user_agent, peer]
    assert _is_id(trace_id, 32) and _is_id(span_id, 16)
    if incoming:
        parent = parse_traceparent(incoming.decode())
        assert parent is not None
        assert (trace_id, parent_id, sampled) == (parent.trace_id, parent.parent_id, parent.sampled)
        random = parent.random  # Level 2: carried through
    else:
        assert parent_id == "" and sampled is True
        random = True  # ids drawn here
    flags = trace_flags(sampled, random).encode()
    traceparent = b"traceparent: 00-%s-%s-%s\r\n" % (trace_id.encode(), span_id.encode(), flags)
    received_head, body = data.split(b"\r\n\r\n", 1)
    lines = received_head.split(b"\r\n")
    kept = [line for line in lines if line.split(b":", 1)[0].lower() not in CONTEXT]
    assert head == b"\r\n".join(kept) + b"\r\n" + extra + traceparent + b"\r\n" + body
    forwarded = Parsed(head, response=False)
    assert forwarded.one_whole_message(), (head, forwarded.error)
    received = Parsed(data, response=False).trimmed_headers()
    expected = [h for h in received if h[0].lower() not in CONTEXT]
    assert forwarded.trimmed_headers() == expected + _field_lines(extra + traceparent)
    return prepared


def _is_id(text: str, digits: int) -> bool:
    return len(text) == digits and set(text) <= set("0123456789abcdef") and set(text) != {"0"}


def check_response_agrees(data: bytes) -> tuple | None:
    """Scan ``data``; if the scanner vouches for it, httptools must read it (and the
    forwarded bytes) the same way, as one keep-alive message framed by Content-Length."""
    scanned = scan_response(data)
    if scanned is None:
        return None
    status, forward = scanned
    parsed = Parsed(data, response=True)
    assert parsed.one_whole_message(), (data, parsed.error)
    assert parsed.parser.get_status_code() == status and 200 <= status <= 599
    assert status not in (204, 304)
    assert parsed.parser.get_http_version() == "1.1"
    assert parsed.keep_alive is True
    headers = parsed.trimmed_headers()
    [length] = _value_of(headers, b"content-length")
    assert int(length) == len(parsed.body) and data.endswith(parsed.body)
    assert [v.lower() for v in _value_of(headers, b"connection")] in ([], [b"keep-alive"])
    for name, _ in headers:
        assert name.lower() not in RESPONSE_SPECIAL
    forwarded = Parsed(forward, response=True)
    assert forwarded.one_whole_message(), (forward, forwarded.error)
    assert forwarded.parser.get_status_code() == status
    assert forwarded.reason == parsed.reason
    assert forwarded.headers == [h for h in parsed.headers if h[0].lower() != b"connection"]
    assert forwarded.body == parsed.body
    if not _value_of(headers, b"connection"):
        assert forward == data
    return scanned


# -- table tests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", (b"GET", b"/", 16, b"example", b"", b"", b"")),
        (
            b"HEAD /a/b?c=d&e=%20 HTTP/1.1\r\nhost:\t svc:8080 \t\r\n"
            b"User-Agent:  curl/8.5  \r\nAccept: */*\r\n\r\n",
            (b"HEAD", b"/a/b?c=d&e=%20", 30, b"svc:8080", b"curl/8.5", b"", b""),
        ),
        (  # names that only look special are ordinary fields
            b"DELETE /x HTTP/1.1\r\nX-B3: 1\r\nB3-Flags: 1\r\nTEE: 1\r\nHOST: h\r\n"
            b"Content-Lengths: 2\r\nx-sidetrace: p\r\nbaggage: k=v\r\n\r\n",
            (b"DELETE", b"/x", 20, b"h", b"", b"", b""),
        ),
        (  # empty Host, obs-text and inner whitespace in values, every tchar in a name
            b"OPTIONS /!$&'()*+,;=:@~\"<>\\^`{|}# HTTP/1.1\r\nHost:\r\nUser-Agent: a \t b\r\n"
            b"X-Bin: \x80\xff\r\n!#$%&'*+-.^_`|~09azAZ:v\r\n\r\n",
            (b"OPTIONS", b"/!$&'()*+,;=:@~\"<>\\^`{|}#", 44, b"", b"a \t b", b"", b""),
        ),
        (  # a whole Content-Length body, opaque bytes even when they look like a request
            b"POST /orders HTTP/1.1\r\nHost: a\r\ncontent-length:\t027 \r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            (b"POST", b"/orders", 23, b"a", b"", b"", b""),
        ),
        (
            b"PATCH /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            (b"PATCH", b"/x", 19, b"a", b"", b"", b""),
        ),
    ],
)
def test_scan_request_accepts(data: bytes, expected: tuple) -> None:
    assert scan_request(data) == expected
    assert check_request_agrees(data) == expected
    check_request_head(data, expected, extra=b"")  # as the inbound listener calls it


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            REQUEST_HEAD + b"traceparent: " + PARENT + b"\r\n\r\n",
            (b"GET", b"/", 16, b"a", b"", PARENT, b""),
        ),
        (  # any case of the names, OWS around values, context lines anywhere
            b"GET /x HTTP/1.1\r\nX-Sidetrace-Peer:\tsvc-a \r\nHost: a\r\n"
            b"TraceParent:  " + PARENT[:-2] + b"00\t\r\nbaggage: k=v\r\n\r\n",
            (b"GET", b"/x", 17, b"a", b"", PARENT[:-2] + b"00", b"svc-a"),
        ),
        (  # unknown flags are kept out of the span; only "sampled" is read
            REQUEST_HEAD + b"traceparent: " + PARENT[:-2] + b"fe\r\n\r\n",
            (b"GET", b"/", 16, b"a", b"", PARENT[:-2] + b"fe", b""),
        ),
    ],
)
def test_scan_request_takes_one_traceparent_and_peer(data: bytes, expected: tuple) -> None:
    assert scan_request(data) == expected
    assert check_request_agrees(data) == expected
    head, trace_id, _, parent_id, sampled, *_ = request_head(data, b"", ALWAYS)
    assert trace_id == "0af7651916cd43dd8448eb211c80319c" and parent_id == "b7ad6b7169203331"
    assert sampled is (expected[5][-1:] in b"13579bdf")
    assert b"b7ad6b7169203331" not in head and b"svc-a" not in head


@pytest.mark.parametrize(
    "value",
    [
        PARENT.upper(),
        PARENT.replace(b"0af7", b"0AF7"),
        b"01" + PARENT[2:],  # a later version: the full path parses those leniently
        b"ff" + PARENT[2:],
        PARENT + b"-extra",
        PARENT[:-1],
        PARENT.replace(b"0af7651916cd43dd8448eb211c80319c", b"0" * 32),
        PARENT.replace(b"b7ad6b7169203331", b"0" * 16),
        PARENT.replace(b"-", b"_"),
        PARENT.replace(b"-01", b"-0g"),
        b"",
    ],
)
def test_scan_request_leaves_other_traceparents_to_the_full_path(value: bytes) -> None:
    assert scan_request(REQUEST_HEAD + b"traceparent: " + value + b"\r\n\r\n") is None


_REQUEST_SPECIAL_IN_ODD_CASE = [
    _odd_case(name)
    for name in (*REQUEST_SPECIAL, b"x-b3-traceid", b"x-b3-", b"x-b3-sampled", b"X-B3-TraceId")
] + [b"TE", b"Transfer-Encoding", b"CONNECTION", b"Expect", b"TraceState", b"B3"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET",
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"Get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # empty lines first: httptools skips them
        REQUEST_HEAD + b"Connection: content-length\r\nContent-Length: 1\r\n\r\nx",  # 400
        *[
            m + b" / HTTP/1.1\r\nHost: a\r\n\r\n"
            for m in (b"CONNECT", b"TRACE", b"GETS", b"GE", b"OPTION", b"POSTS", b"post")
        ],
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / http/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.11\r\nHost: a\r\n\r\n",
        b"GET /\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
        REQUEST_HEAD + b"X: a\r\n b\r\n\r\n",
        REQUEST_HEAD + b"X: a\r\n\tb\r\n\r\n",
        REQUEST_HEAD + b" X: a\r\n\r\n",
        REQUEST_HEAD + b"X : a\r\n\r\n",
        REQUEST_HEAD + b"X\t: a\r\n\r\n",
        REQUEST_HEAD + b": a\r\n\r\n",
        REQUEST_HEAD + b"X a\r\n\r\n",
        REQUEST_HEAD + b"X@Y: a\r\n\r\n",
        REQUEST_HEAD + b"X\x80: a\r\n\r\n",
        REQUEST_HEAD + b"X: a\x00b\r\n\r\n",
        REQUEST_HEAD + b"X: a\x01\r\n\r\n",
        REQUEST_HEAD + b"X: a\x7f\r\n\r\n",
        REQUEST_HEAD + b"X: \x1b\r\n\r\n",
        REQUEST_HEAD + b"Host: a\r\n\r\n",
        REQUEST_HEAD + b"hOST: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHosts: a\r\n\r\n",
        REQUEST_HEAD + b"User-Agent: a\r\nuser-agent: b\r\n\r\n",
        REQUEST_HEAD + b"traceparent: " + PARENT + b"\r\nTraceparent: " + PARENT + b"\r\n\r\n",
        REQUEST_HEAD + b"traceparent: " + PARENT + b"\r\ntracestate: a=b\r\n\r\n",
        REQUEST_HEAD + b"x-sidetrace-peer: a\r\nX-Sidetrace-Peer: b\r\n\r\n",
        *[REQUEST_HEAD + name + b": x\r\n\r\n" for name in _REQUEST_SPECIAL_IN_ODD_CASE],
        REQUEST_HEAD + b"Connection: keep-alive\r\n\r\n",
        REQUEST_HEAD + b"Content-Length: 1\r\n\r\n",  # the body is still arriving
        REQUEST_HEAD + b"Content-Length: 1\r\n\r\nab",
        REQUEST_HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        REQUEST_HEAD + b"Content-Length: +2\r\n\r\nab",
        REQUEST_HEAD + b"Content-Length: 2 2\r\n\r\nab",
        REQUEST_HEAD + b"Content-Length: 0000000000000002\r\n\r\nab",
        REQUEST_HEAD + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: a\r\n\r\nab",  # a body without framing
        REQUEST_HEAD + b"\r\n" + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        REQUEST_HEAD + b"\r\n\r\n",
        REQUEST_HEAD + b"\r\nx",
        REQUEST_HEAD + b"\r\n\x00",
        REQUEST_HEAD + b"\r",
        REQUEST_HEAD,
        REQUEST_HEAD[:-1],
        b"GET / HTTP/1.1\r\nHost: a",
        b"GET / HTTP/1.1\r\nHo",
        b"GET / HTTP/1.1",
    ],
)
def test_scan_request_refuses(data: bytes) -> None:
    assert scan_request(data) is None
    assert request_head(data, PEER_LINE, ALWAYS) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            (200, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"connection:  Keep-Alive \t\r\ncontent-length:\t4 \r\n\r\nbusy",
            (
                503,
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                b"content-length:\t4 \r\n\r\nbusy",
            ),
        ),
        (
            b"HTTP/1.1 404 \r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            (404, b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"),
        ),
        (  # the body is opaque bytes, even when it looks like another message
            b"HTTP/1.1 599 A\tb\x80\r\nX-Te: 1\r\nContent-Length: 000000000000026\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n\x00",
            (
                599,
                b"HTTP/1.1 599 A\tb\x80\r\nX-Te: 1\r\nContent-Length: 000000000000026\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n\x00",
            ),
        ),
        (
            b"HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\nTraceparent: x\r\n\r\n",
            (205, b"HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\nTraceparent: x\r\n\r\n"),
        ),
    ],
)
def test_scan_response_accepts(data: bytes, expected: tuple) -> None:
    assert scan_response(data) == expected
    assert check_response_agrees(data) == expected


def _response(*fields: bytes, body: bytes = b"ok", status_line: bytes = RESPONSE_HEAD) -> bytes:
    return status_line + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200 OK",
        *[
            _response(b"Content-Length: 2", status_line=b"HTTP/1.1 %s OK\r\n" % status)
            for status in (b"100", b"101", b"199", b"204", b"304", b"600", b"999", b"099")
        ],
        _response(b"Content-Length: 0", body=b"", status_line=b"HTTP/1.1 204 No Content\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 20 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 2000 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 2x0 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 200\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1  200 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.0 200 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"http/1.1 200 OK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 200 OK\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 200 O\x00K\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 200 O\x7fK\r\n"),
        _response(b"Content-Length: 2", status_line=b"HTTP/1.1 200 O\rK\r\n"),
        _response(b"Content-Type: text/plain"),
        _response(b"Content-Length: 2", b"Content-Length: 2"),
        _response(b"Content-Length: 2", b"content-length: 3"),
        _response(b"Content-Length: 2, 2"),
        *[
            _response(b"Content-Length: " + value)
            for value in (b"2a", b"+2", b"-2", b"0x2", b"", b"1 1", b"2.0", b"0000000000000002")
        ],
        _response(b"Content-Length: 3"),
        _response(b"Content-Length: 1"),
        _response(b"Content-Length: 2", body=b""),
        _response(b"Content-Length: 2") + RESPONSE_HEAD,
        _response(b"Content-Length: 2", b"Connection: close"),
        _response(b"Content-Length: 2", b"Connection: keep-alive, foo"),
        _response(b"Content-Length: 2", b"Connection: keep-alive, close"),
        _response(b"Content-Length: 2", b"Connection: upgrade"),
        _response(b"Content-Length: 2", b"Connection:"),
        _response(b"Content-Length: 2", b"Connection: keep-alivee"),
        _response(b"Content-Length: 2", b"Connection: keep-alive", b"Connection: keep-alive"),
        *[
            _response(b"Content-Length: 2", _odd_case(name) + b": x")
            for name in (*RESPONSE_SPECIAL, b"Transfer-Encoding", b"TE", b"KEEP-ALIVE")
        ],
        _response(b"Content-Length: 2", b"X: a", b" b"),
        _response(b"Content-Length: 2", b"X : a"),
        _response(b"Content-Length : 2"),
        _response(b"Content-Length: 2", b": a"),
        _response(b"Content-Length: 2", b"X: a\x00"),
        _response(b"Content-Length: 2", b"X: a\rb"),
        RESPONSE_HEAD + b"Content-Length: 2\n\r\nok",
        RESPONSE_HEAD + b"Content-Length: 2\r\n\nok",
        RESPONSE_HEAD + b"Content-Length: 2\r\n",
        RESPONSE_HEAD + b"Content-Length: 2\r\n\r",
        RESPONSE_HEAD + b"Content-Len",
    ],
)
def test_scan_response_refuses(data: bytes) -> None:
    assert scan_response(data) is None


@pytest.mark.parametrize("scan", [scan_request, scan_response])
@pytest.mark.parametrize(
    "data", ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", bytearray(REQUEST_HEAD), memoryview(b""), None]
)
def test_scanners_need_bytes(scan, data) -> None:
    with pytest.raises(TypeError):
        scan(data)


def test_request_head_arguments_are_checked() -> None:
    good = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for args in [(good, b""), (good, b"", ALWAYS, 1), ("GET", b"", ALWAYS), (good, "", ALWAYS)]:
        with pytest.raises(TypeError):
            request_head(*args)
    for bound in (-1, 2**64):
        with pytest.raises(OverflowError):
            request_head(good, b"", bound)
    assert request_head(b"POST / HTTP/1.1\r\n\r\n", b"", ALWAYS) is None


def _sampled_as_the_rule_says(trace_id: str, sampled: bool, bound: int) -> bool:
    """OpenTelemetry's TraceIdRatioBased: the low 64 bits of the trace id below the bound."""
    return sampled == (bound == ALWAYS or int(trace_id[16:], 16) < bound)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_root_sampling_matches_the_propagator(ratio: float) -> None:
    """The fast path samples new traces by the rule the httptools path's Propagator uses."""
    propagator = Propagator(sampling_ratio=ratio)
    bound = propagator.root_sample_bound()
    assert bound is not None
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    decisions = set()
    for _ in range(200):
        head, trace_id, span_id, parent_id, sampled, *_ = request_head(data, b"", bound)
        assert parent_id == ""
        assert _sampled_as_the_rule_says(trace_id, sampled, bound)
        assert head.endswith(b"-%s-%s\r\n\r\n" % (span_id.encode(), b"03" if sampled else b"02"))
        decisions.add(sampled)
        span = propagator.start({})
        assert _sampled_as_the_rule_says(span.trace_id, span.sampled, bound) and span.random
    assert decisions == ({True, False} if 0 < ratio < 1 else {ratio == 1.0})
    assert Propagator(b3_emit=True).root_sample_bound() is None  # B3 needs the full path


def test_new_root_ids_are_random_lowercase_hex() -> None:
    ids = [new_root_ids() for _ in range(1000)]
    assert all(_is_id(trace_id, 32) and _is_id(span_id, 16) for trace_id, span_id in ids)
    assert len({trace_id for trace_id, _ in ids}) == len({span_id for _, span_id in ids}) == 1000


# -- property tests: generated heads, httptools as the oracle --------------------------------

names = st.text(TCHAR.decode(), min_size=1, max_size=12).map(str.encode)
values = st.binary(max_size=16).map(lambda b: bytes(FIELD_VCHAR[c % len(FIELD_VCHAR)] for c in b))
trimmed_values = values.map(lambda v: v.strip(OWS))
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t "])
targets = st.text("".join(map(chr, range(0x21, 0x7F))), max_size=20).map(
    lambda t: b"/" + t.encode()
)


def _hex_id(digits: int) -> st.SearchStrategy[str]:
    """Lowercase hex ids of ``digits`` digits, not all zero (W3C: those are invalid)."""
    return (
        st.binary(min_size=digits // 2, max_size=digits // 2)
        .map(bytes.hex)
        .filter(lambda h: set(h) != {"0"})
    )


traceparents = st.tuples(_hex_id(32), _hex_id(16), st.binary(min_size=1, max_size=1)).map(
    lambda ids: b"00-%s-%s-%s" % (ids[0].encode(), ids[1].encode(), ids[2].hex().encode())
)


@st.composite
def valid_requests(draw) -> tuple[bytes, tuple]:
    """A request the fast path must take, and the tuple ``scan_request`` must return."""
    method = draw(st.sampled_from(FAST_METHODS))
    target = draw(targets)
    ordinary = names.filter(
        lambda n: (
            n.lower() not in (*REQUEST_SPECIAL, *CONTEXT, b"host", b"user-agent", b"content-length")
            and not n.lower().startswith(b"x-b3-")
        )
    )
    fields = draw(st.lists(st.tuples(ordinary, trimmed_values), max_size=5))
    host = draw(trimmed_values)
    fields.insert(draw(st.integers(0, len(fields))), (b"Host", host))
    agent = draw(st.one_of(st.none(), trimmed_values))
    if agent is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"User-Agent", agent))
    parent = draw(st.one_of(st.none(), traceparents))
    if parent is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"traceparent", parent))
    peer = draw(st.one_of(st.none(), trimmed_values))
    if peer is not None:
        fields.insert(draw(st.integers(0, len(fields))), (b"x-sidetrace-peer", peer))
    body = draw(st.one_of(st.none(), st.binary(max_size=40)))
    if body is not None:
        length = b"%0*d" % (draw(st.integers(1, 15)), len(body))
        fields.insert(draw(st.integers(0, len(fields))), (b"Content-Length", length))
    spelled = [(draw(st.sampled_from([n, n.lower(), n.upper()])), v) for n, v in fields]
    lines = b"".join(n + b":" + draw(ows) + v + draw(ows) + b"\r\n" for n, v in spelled)
    request_line = method + b" " + target + b" HTTP/1.1\r\n"
    expected = (method, target, len(request_line), host, agent or b"", parent or b"", peer or b"")
    return request_line + lines + b"\r\n" + (body or b""), expected


@st.composite
def valid_responses(draw) -> tuple[bytes, tuple]:
    """A response the fast path must take, and the tuple ``scan_response`` must return."""
    status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))
    reason = draw(values)
    body = draw(st.binary(max_size=40))
    ordinary = names.filter(
        lambda n: n.lower() not in (*RESPONSE_SPECIAL, b"content-length", b"connection")
    )
    fields = [n + b":" + draw(ows) + v + draw(ows) + b"\r\n" for n, v in draw(
        st.lists(st.tuples(ordinary, values), max_size=5)
    )]  # fmt: skip
    length = b"%0*d" % (draw(st.integers(1, 15)), len(body))
    length_line = b"Content-Length:" + draw(ows) + length + b"\r\n"
    fields.insert(draw(st.integers(0, len(fields))), length_line)
    kept = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(fields) + b"\r\n" + body
    if draw(st.booleans()):
        spelling = draw(st.sampled_from([b"keep-alive", b"Keep-Alive", b"KEEP-ALIVE"]))
        connection = b"Connection:" + draw(ows) + spelling + draw(ows) + b"\r\n"
        fields.insert(draw(st.integers(0, len(fields))), connection)
    data = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(fields) + b"\r\n" + body
    return data, (status, kept)


INTERESTING_NAMES = [
    b"Host", b"host", b"HOST", b"User-Agent", b"user-agent", b"Content-Length",
    b"content-length", b"Connection", b"connection", b"Transfer-Encoding", b"TE", b"te", b"Tee",
    b"Trailer", b"Upgrade", b"Keep-Alive", b"Proxy-Connection", b"Proxy-Authorization",
    b"Proxy-Authenticate", b"Expect", b"Traceparent", b"tracestate", b"b3", b"B3", b"b3x",
    b"X-B3-TraceId", b"x-b3-", b"X-B3", b"x-sidetrace-peer", b"X-Sidetrace", b"Accept",
]  # fmt: skip
INTERESTING_VALUES = [
    b"", b"a", b"keep-alive", b"Keep-Alive", b"close", b"keep-alive, foo", b"chunked", b"0",
    b"2", b"02", b"-1", b"+2", b"2 2", b"999999999999999", b"1234567890123456", b"\x80\xff",
    b"a\tb", b"trailers", PARENT, PARENT.upper(), b"01" + PARENT[2:], PARENT[:-1],
]  # fmt: skip
INTERESTING_BYTES = b"\r\n \t:\x00\x01\x7f\x80\xff/aA0-"


@st.composite
def mutated(draw, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few byte-level edits: inserts of delimiter bytes, deletions, swaps,
    truncation, duplicated or appended tails."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "append", "dup"]))
        byte = draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255))
        if edit == "insert":
            data.insert(at, byte)
        elif edit == "delete" and at < len(data):
            del data[at]
        elif edit == "replace" and at < len(data):
            data[at] = byte
        elif edit == "truncate":
            del data[at:]
        elif edit == "append":
            data += draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"x", b"GET / HTTP/1.1\r\n"]))
        elif edit == "dup":
            data += data[at:]
    return bytes(data)


@st.composite
def with_extra_field(draw, base: st.SearchStrategy[tuple[bytes, tuple]]) -> bytes:
    """A message the fast path takes, with one more field line, often one that must turn
    it away (a special name in some case, a second Host, a Connection value)."""
    data, _ = draw(base)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    spellings = st.sampled_from(INTERESTING_NAMES)
    name = draw(spellings | spellings.map(_odd_case))
    value = draw(st.sampled_from(INTERESTING_VALUES) | values)
    lines.insert(draw(st.integers(1, len(lines))), name + b":" + draw(ows) + value + draw(ows))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@st.composite
def request_heads(draw) -> bytes:
    """Heads from the request grammar with sometimes-wrong parts (methods, targets,
    versions, special or repeated fields, line ends, whitespace)."""
    method = draw(st.sampled_from([*FAST_METHODS, b"POST", b"get", b"CONNECT", b"GE"]))
    target = draw(targets | st.sampled_from([b"*", b"http://a/b", b"", b"/a b", b"/\x80"]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0"]))
    eol = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n"]))
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(INTERESTING_NAMES) | names,
                st.sampled_from(INTERESTING_VALUES) | values,
            ),
            max_size=6,
        )
    )
    if draw(st.booleans()):
        fields.append((b"Host", draw(values)))
    lines = b"".join(n + b":" + draw(ows) + v + draw(ows) + eol for n, v in fields)
    return method + b" " + target + b" " + version + eol + lines + eol


@st.composite
def response_heads(draw) -> bytes:
    """Responses from the grammar with sometimes-wrong parts (statuses, framing fields,
    Connection values, bodies not matching their Content-Length)."""
    status = draw(st.integers(100, 999) | st.sampled_from([200, 204, 304, 101]))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"]))
    eol = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n"]))
    body = draw(st.binary(max_size=12))
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(INTERESTING_NAMES) | names,
                st.sampled_from(INTERESTING_VALUES) | values,
            ),
            max_size=5,
        )
    )
    if draw(st.integers(0, 3)):
        declared = len(body) + draw(st.sampled_from([0, 0, 1, -1]))
        fields.append((b"Content-Length", b"%d" % declared))
    head = b"%s %d %s" % (version, status, draw(values)) + eol
    lines = b"".join(n + b":" + draw(ows) + v + draw(ows) + eol for n, v in fields)
    return head + lines + eol + body


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(valid_requests())
def test_valid_requests_take_the_fast_path(case: tuple[bytes, tuple]) -> None:
    data, expected = case
    assert check_request_agrees(data) == expected


@PROPERTY
@given(valid_responses())
def test_valid_responses_take_the_fast_path(case: tuple[bytes, tuple]) -> None:
    data, expected = case
    assert check_response_agrees(data) == expected


@settings(PROPERTY, max_examples=700)
@given(
    mutated(
        request_heads()
        | valid_requests().map(lambda case: case[0])
        | with_extra_field(valid_requests())
    )
)
def test_any_request_the_scanner_takes_httptools_reads_the_same(data: bytes) -> None:
    check_request_agrees(data)


@settings(PROPERTY, max_examples=700)
@given(
    mutated(
        response_heads()
        | valid_responses().map(lambda case: case[0])
        | with_extra_field(valid_responses())
    )
)
def test_any_response_the_scanner_takes_httptools_reads_the_same(data: bytes) -> None:
    check_response_agrees(data)


# -- end to end: one request, whole (fast path) and split mid-head (httptools path) ---------


def _exchange(sock: socket.socket, parts: list[bytes]) -> Parsed:
    """Send ``parts`` as separate writes (a pause between them, so the sidecar reads them
    separately) on a keep-alive connection; the response as httptools reads it."""
    with sock:
        sock.settimeout(10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.2)
            sock.sendall(part)
        response = Parsed(b"", response=True)
        while not response.completed and response.error is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response.feed(chunk)
    assert response.one_whole_message(), response.error
    return response


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _both_paths(connect: Callable[[], socket.socket], request: bytes) -> tuple[Parsed, Parsed]:
    """``request`` sent whole (the sidecar can take it in one scan) and split inside its
    Host line (so it needs httptools), each on a new connection from ``connect``."""
    assert scan_request(request) is not None
    cut = request.index(b"Host:") + 3
    return _exchange(connect(), [request]), _exchange(connect(), [request[:cut], request[cut:]])


def _without(headers: list[tuple[bytes, bytes]], *names: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if n.lower() not in names]


def _server_span(otlp, seen_traceparent: str) -> dict:
    """Attributes and name of the span the sidecar exported for a request the app saw."""
    _, trace_id, span_id, _ = seen_traceparent.split("-")
    [(_, span)] = spans_of_trace(otlp, trace_id, 1)
    assert span.span_id.hex() == span_id
    found = attributes(span)
    found.pop("client.port", None)  # each request came on a new connection
    found.pop("network.peer.port", None)
    return {"name": span.name, "kind": span.kind, "status": span.status.code, **found}


@pytest.mark.parametrize(
    ("host", "user_agent"),
    [
        pytest.param(b"svc-a:8080", b"fastpath-test/1", id="plain"),
        # httptools keeps trailing OWS in a value; both paths must record it trimmed.
        pytest.param(b"svc-a:8080 ", b"fastpath-test/1\t", id="trailing-ows"),
    ],
)
def test_inbound_request_is_handled_alike_on_both_paths(
    stack, sink, host: bytes, user_agent: bytes
) -> None:
    sidecar, _ = stack
    request = (
        b"GET /users/42?q=1 HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
        b"Accept: application/json\r\nX-Custom: a b\r\nbaggage: k=v\r\n\r\n" % (host, user_agent)
    )
    fast, full = _both_paths(lambda: _connect(sidecar.inbound), request)
    assert fast.parser.get_status_code() == full.parser.get_status_code() == 200
    assert _without(fast.headers, b"date", b"content-length") == _without(
        full.headers, b"date", b"content-length"
    )
    app_saw = [json.loads(r.body) for r in (fast, full)]
    spans = [_server_span(sink, seen["headers"].pop("traceparent")) for seen in app_saw]
    for seen in app_saw:
        del seen["port"]  # the app's view of the sidecar's upstream connection
    assert app_saw[0] == app_saw[1]
    assert app_saw[0]["headers"]["x-custom"] == "a b"
    assert spans[0] == spans[1]
    assert spans[0]["http.route"] == "/users/{uid}"
    assert spans[0]["user_agent.original"] == "fastpath-test/1"


@pytest.mark.parametrize("flags", ["01", "00"])
def test_continued_request_is_handled_alike_on_both_paths(stack, sink, flags: str) -> None:
    """A request carrying its caller's traceparent and peer name, as in a mesh."""
    sidecar, _ = stack
    parents = [f"00-{new_root_ids()[0]}-{new_root_ids()[1]}-{flags}" for _ in range(2)]
    requests = [
        b"GET /users/7 HTTP/1.1\r\nHost: svc-a\r\ntraceparent: %s\r\n"
        b"X-Sidetrace-Peer: svc-z\r\n\r\n" % parent.encode()
        for parent in parents
    ]
    assert all(scan_request(r) is not None for r in requests)
    cut = requests[1].index(b"Host:") + 3
    replies = [
        _exchange(_connect(sidecar.inbound), [requests[0]]),  # whole: the C scanner
        _exchange(_connect(sidecar.inbound), [requests[1][:cut], requests[1][cut:]]),  # httptools
    ]
    spans = []
    for parent, reply in zip(parents, replies, strict=True):
        seen = json.loads(reply.body)["headers"]
        assert "x-sidetrace-peer" not in seen
        _, trace_id, parent_id, _ = parent.split("-")
        version, seen_trace, span_id, seen_flags = seen["traceparent"].split("-")
        assert (version, seen_trace, seen_flags) == ("00", trace_id, flags)
        assert span_id != parent_id
        if flags == "01":
            [(_, span)] = spans_of_trace(sink, trace_id, 1)
            assert span.parent_span_id.hex() == parent_id and span.span_id.hex() == span_id
            found = attributes(span)
            found.pop("client.port", None)
            found.pop("network.peer.port", None)
            spans.append({"kind": span.kind, **found})
    if flags == "01":
        assert spans[0] == spans[1]
    else:  # unsampled callers: nothing recorded either way
        time.sleep(1)
        trace_ids = {p.split("-")[1] for p in parents}
        assert not any(span.trace_id.hex() in trace_ids for _, span in sink.spans)


CANNED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n"
CANNED += b"Content-Length: 5\r\n\r\nhello"


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedHttpServer]:
    server = CannedHttpServer(CANNED)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(b"canned.example", id="plain"),
        # Valid (RFC 9112 3.2): forwarded alone, not taken for a missing Host.
        pytest.param(b"", id="empty-host"),
    ],
)
def test_outbound_request_is_forwarded_alike_on_both_paths(
    stack, canned, redirect, host: bytes
) -> None:
    """Outbound requests take the fast path only when intercepted (the original
    destination is known), as in a pod: an iptables REDIRECT of each client connection."""
    sidecar, _ = stack

    def connect() -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        redirect(sock.getsockname()[1], canned.port, sidecar.outbound)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", canned.port))
        return sock

    request = (
        b"DELETE /items/7?force=1 HTTP/1.1\r\nHost: %s\r\nUser-Agent: client/2\r\n"
        b"Accept:\t*/*\r\n\r\n" % host
    )
    before = len(canned.heads)
    fast, full = _both_paths(connect, request)
    heads = canned.heads[before:]
    assert len(heads) == 2
    # Which path each took shows in the bytes: the fast path forwards field lines as
    # received, the httptools path writes them again as ``name: value``.
    assert b"\r\nAccept:\t*/*\r\n" in heads[0] and b"\r\nAccept: */*\r\n" in heads[1]
    forwarded = []
    for head in heads:
        request_line, fields = head.split(b"\r\n", 1)
        pairs = _field_lines(fields + b"\r\n")
        [traceparent] = _value_of(pairs, b"traceparent")
        assert len(traceparent.split(b"-")) == 4
        forwarded.append((request_line, _without(pairs, b"traceparent")))
    assert forwarded[0] == forwarded[1]
    assert forwarded[0] == (
        b"DELETE /items/7?force=1 HTTP/1.1",
        [
            (b"Host", host),
            (b"User-Agent", b"client/2"),
            (b"Accept", b"*/*"),
            (b"x-sidetrace-peer", b"svc-a"),
        ],
    )
    for reply in (fast, full):
        assert reply.parser.get_status_code() == 200
        assert reply.headers == [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")]
        assert reply.body == b"hello"
