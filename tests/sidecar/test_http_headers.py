"""Which request and response fields the proxy passes on, and which it refuses (pure)."""

from __future__ import annotations

import pytest

from sidecar.http_headers import (
    BadFraming,
    RequestFields,
    ResponseFields,
    drop_connection_listed,
    request_fields,
    response_fields,
)
from sidecar.propagation import TRACE_HEADERS, W3C_HEADERS

W3C = frozenset(n.encode() for n in W3C_HEADERS)
ALL_TRACE = frozenset(n.encode() for n in TRACE_HEADERS)


def _lines(*fields: tuple[bytes, bytes]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in fields)


REQUESTS = [
    pytest.param(
        [(b"Accept", b"*/*"), (b"X-Custom", b"a, b ")],
        RequestFields(_lines((b"Accept", b"*/*"), (b"X-Custom", b"a, b ")), b"", {}),
        id="end-to-end fields copied as received",
    ),
    pytest.param(
        [
            (b"Keep-Alive", b"timeout=5"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"TE", b"trailers"),
            (b"Trailer", b"X-Sum"),
            (b"Proxy-Authorization", b"Basic eA=="),
            (b"Connection", b"keep-alive"),
            (b"A", b"1"),
        ],
        RequestFields(_lines((b"A", b"1")), b"", {}),
        id="hop-by-hop fields end here",
    ),
    pytest.param(
        [(b"Host", b"svc:8080 "), (b"User-Agent", b"curl/8 \t")],
        RequestFields(
            _lines((b"Host", b"svc:8080 "), (b"User-Agent", b"curl/8 \t")),
            b"",
            {},
            host=b"svc:8080",
            has_host=True,
            user_agent=b"curl/8",
        ),
        id="host and user-agent read without trailing whitespace, passed on as received",
    ),
    pytest.param(
        [(b"host", b"")],
        RequestFields(_lines((b"host", b"")), b"", {}, has_host=True),
        id="an empty Host is a Host",
    ),
    pytest.param(
        [(b"Connection", b"close, X-Internal"), (b"x-internal", b"1"), (b"X-Public", b"2")],
        RequestFields(_lines((b"X-Public", b"2")), b"", {}),
        id="a field Connection names is dropped, whatever its case",
    ),
    pytest.param(
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"A", b"1")],
        RequestFields(_lines((b"A", b"1")), b"", {}, upgrade=b"websocket"),
        id="upgrade remembered, its fields dropped",
    ),
    pytest.param(
        [(b"Transfer-Encoding", b"gzip, Chunked"), (b"A", b"1")],
        RequestFields(_lines((b"A", b"1")), b"", {}, chunked=True),
        id="chunked framing remembered, its field dropped",
    ),
    pytest.param(
        [(b"Transfer-Encoding", b"gzip")],
        RequestFields(b"", b"", {}, chunked=False),
        id="a coding without chunked is not chunked",
    ),
    pytest.param(
        [(b"X-Sidetrace-Peer", b"checkout "), (b"A", b"1")],
        RequestFields(_lines((b"A", b"1")), b"", {}, peer="checkout"),
        id="the peer field is read and dropped",
    ),
    pytest.param(
        [
            (b"Traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
            (b"tracestate", b"a=1"),
            (b"tracestate", b"b=2"),
            (b"X-B3-Sampled", b"1"),
        ],
        RequestFields(
            _lines((b"X-B3-Sampled", b"1")),
            _lines(
                (b"Traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
                (b"tracestate", b"a=1"),
                (b"tracestate", b"b=2"),
            ),
            {
                "traceparent": ["00-" + "1" * 32 + "-" + "2" * 16 + "-01"],
                "tracestate": ["a=1", "b=2"],
                "x-b3-sampled": ["1"],
            },
        ),
        id="trace context the propagator replaces is set aside, the rest kept",
    ),
]


@pytest.mark.parametrize(("headers", "expected"), REQUESTS)
def test_request_fields(headers: list[tuple[bytes, bytes]], expected: RequestFields) -> None:
    assert request_fields(headers, W3C) == expected


def test_request_trace_fields_all_replaced_when_b3_is_emitted() -> None:
    fields = request_fields([(b"b3", b"1-2-1"), (b"x-b3-traceid", b"1")], ALL_TRACE)
    assert fields.lines == b""
    assert fields.trace_lines == b"b3: 1-2-1\r\nx-b3-traceid: 1\r\n"
    assert fields.trace_headers == {"b3": ["1-2-1"], "x-b3-traceid": ["1"]}


REFUSED = [
    pytest.param([(b"Host", b"a"), (b"host", b"b")], "more than one Host", id="two hosts"),
    pytest.param(
        [(b"Connection", b"Content-Length"), (b"Content-Length", b"5")],
        "Connection may not name content-length",
        id="connection names content-length",
    ),
    pytest.param(
        [(b"Connection", b"close"), (b"Connection", b"host, Transfer-Encoding")],
        "Connection may not name host, transfer-encoding",
        id="connection names host and transfer-encoding over two fields",
    ),
]


@pytest.mark.parametrize(("headers", "message"), REFUSED)
def test_request_fields_refused(headers: list[tuple[bytes, bytes]], message: str) -> None:
    with pytest.raises(BadFraming) as refused:
        request_fields(headers, W3C)
    assert str(refused.value) == message


RESPONSES = [
    pytest.param(
        [(b"Content-Type", b"text/plain"), (b"Content-Length", b"2")],
        ResponseFields(_lines((b"Content-Type", b"text/plain"), (b"Content-Length", b"2")), True),
        id="content-length kept and remembered",
    ),
    pytest.param(
        [(b"Transfer-Encoding", b"chunked"), (b"Keep-Alive", b"5"), (b"A", b"1")],
        ResponseFields(_lines((b"A", b"1")), chunked=True),
        id="chunked remembered, hop-by-hop dropped",
    ),
    pytest.param(
        [(b"Connection", b"upgrade"), (b"Upgrade", b"h2c")],
        ResponseFields(b"", upgrade=b"h2c"),
        id="upgrade remembered",
    ),
    pytest.param(
        [(b"Connection", b"X-Internal"), (b"X-Internal", b"1"), (b"X-Public", b"2")],
        ResponseFields(_lines((b"X-Public", b"2"))),
        id="connection-listed field dropped",
    ),
    pytest.param(
        [(b"traceparent", b"x"), (b"x-sidetrace-peer", b"p"), (b"Host", b"h")],
        ResponseFields(
            _lines((b"traceparent", b"x"), (b"x-sidetrace-peer", b"p"), (b"Host", b"h"))
        ),
        id="request-only roles mean nothing in a response",
    ),
]


@pytest.mark.parametrize(("headers", "expected"), RESPONSES)
def test_response_fields(headers: list[tuple[bytes, bytes]], expected: ResponseFields) -> None:
    assert response_fields(headers) == expected


def test_response_connection_naming_framing_is_refused() -> None:
    with pytest.raises(BadFraming, match="Connection may not name content-length"):
        response_fields([(b"Connection", b"content-length"), (b"Content-Length", b"2")])


LINES = [b"A: 1\r\n", b"X-Y: 2\r\n", b"Close: 3\r\n"]


@pytest.mark.parametrize(
    ("tokens", "kept"),
    [
        ([b"close"], LINES),  # a connection option, not the name of a field
        ([b"keep-alive, upgrade"], LINES),
        ([b" x-y ,"], [b"A: 1\r\n", b"Close: 3\r\n"]),
        ([b"a", b"X-Y"], [b"Close: 3\r\n"]),
    ],
)
def test_drop_connection_listed(tokens: list[bytes], kept: list[bytes]) -> None:
    assert drop_connection_listed(LINES, tokens) == kept


def test_role_lookup_is_case_insensitive_for_every_spelling() -> None:
    for spelling in (b"CONNECTION", b"Connection", b"cOnNeCtIoN"):
        fields = request_fields([(spelling, b"x-a"), (b"X-A", b"1"), (b"B", b"2")], W3C)
        assert fields.lines == b"B: 2\r\n"
