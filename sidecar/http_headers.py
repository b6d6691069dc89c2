"""Which header fields a proxy passes on, and how (RFC 9110 7.6.1, RFC 9112).

Every field of a message is classified by one dict lookup into a role: hop-by-hop fields
end at this hop, the framing and routing ones are remembered, trace context is set aside
for the propagator, everything else is copied as is. A ``Connection`` option naming a
field makes it hop-by-hop too, except the fields that frame or route the message: a proxy
dropping those while the next hop keeps its own reading of the bytes is request
smuggling, so such a message is refused (``BadFraming``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.propagation import TRACE_HEADERS

PEER_HEADER = b"x-sidetrace-peer"
# RFC 9110 7.6.1 hop-by-hop fields, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    )
)
# Connection options that name no field.
STANDARD_TOKENS = frozenset((b"keep-alive", b"close", b"upgrade"))
# Fields a Connection option may never remove: they frame or route the message.
NEVER_HOP_BY_HOP = frozenset((b"content-length", b"transfer-encoding", b"host"))
TRACE_NAMES = {n.encode(): n for n in TRACE_HEADERS}

_HOP, _CONNECTION, _TRANSFER_ENCODING, _UPGRADE, _TRACE, _HOST, _USER_AGENT, _PEER = range(8)
_CONTENT_LENGTH = _PEER + 1
_REQUEST_FIELDS = {
    **{name: _HOP for name in HOP_BY_HOP},
    **{name: _TRACE for name in TRACE_NAMES},
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"upgrade": _UPGRADE,
    b"host": _HOST,
    b"user-agent": _USER_AGENT,
    PEER_HEADER: _PEER,
}
_RESPONSE_FIELDS = {
    **{name: _HOP for name in HOP_BY_HOP},
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"upgrade": _UPGRADE,
    b"content-length": _CONTENT_LENGTH,
}
_ROLE_CACHE_LIMIT = 4096


class _Roles(dict[bytes, int | None]):
    """Field name as received -> role (``None``: copy as is), remembering each spelling so
    the case-folding lookup runs once per name rather than once per header."""

    def __init__(self, by_lowercase_name: dict[bytes, int]):
        super().__init__()
        self._by_lowercase_name = by_lowercase_name

    def __missing__(self, name: bytes) -> int | None:
        role = self._by_lowercase_name.get(name.lower())
        if len(self) < _ROLE_CACHE_LIMIT:
            self[name] = role
        return role


_REQUEST_ROLES = _Roles(_REQUEST_FIELDS)
_RESPONSE_ROLES = _Roles(_RESPONSE_FIELDS)


class BadFraming(ValueError):
    """A message this proxy must not forward: its framing or routing is ambiguous."""


@dataclass(slots=True)
class RequestFields:
    """A request's fields as the proxy reads and forwards them."""

    lines: bytes  # the field lines to pass on: no hop-by-hop, no set-aside trace context
    trace_lines: bytes  # the trace context lines the propagator replaces, as received
    trace_headers: dict[str, list[str]]  # every trace context value, by canonical name
    host: bytes = b""
    has_host: bool = False  # an empty Host is still a Host (RFC 9112 3.2)
    user_agent: bytes = b""
    peer: str = ""  # the x-sidetrace-peer value
    chunked: bool = False
    upgrade: bytes = b""  # the Upgrade value, whether or not Connection nominated it


@dataclass(slots=True)
class ResponseFields:
    """A response's fields as the proxy reads and forwards them."""

    lines: bytes  # the field lines to pass on (Content-Length kept), no hop-by-hop
    has_length: bool = False
    chunked: bool = False
    upgrade: bytes = b""


def request_fields(headers: list[tuple[bytes, bytes]], replaced: frozenset[bytes]) -> RequestFields:
    """Classify a request's fields (as httptools gives them: values may keep trailing
    whitespace). ``replaced``: the lowercase trace context names the propagator writes
    anew. Raises ``BadFraming`` for two Host fields or a Connection naming a framing one."""
    roles = _REQUEST_ROLES
    lines: list[bytes] = []
    tokens: list[bytes] = []
    trace_headers: dict[str, list[str]] = {}
    trace_lines: list[bytes] = []
    host = user_agent = upgrade = b""
    has_host = chunked = False
    peer = ""
    for name, value in headers:
        role = roles[name]
        if role is None:
            lines.append(name + b": " + value + b"\r\n")
        elif role == _HOST:  # httptools keeps trailing whitespace, not part of a value
            if has_host:  # RFC 9112 3.2: which one would the app route by?
                raise BadFraming("more than one Host")
            host = value.rstrip(b" \t")
            has_host = True
            lines.append(name + b": " + value + b"\r\n")
        elif role == _USER_AGENT:
            user_agent = value.rstrip(b" \t")
            lines.append(name + b": " + value + b"\r\n")
        elif role == _TRACE:
            lname = name.lower()
            trace_headers.setdefault(TRACE_NAMES[lname], []).append(value.decode("latin-1"))
            if lname in replaced:
                trace_lines.append(name + b": " + value + b"\r\n")
            else:
                lines.append(name + b": " + value + b"\r\n")
        elif role == _CONNECTION:
            if value.lower() not in STANDARD_TOKENS:
                tokens.append(value)
        elif role == _TRANSFER_ENCODING:
            chunked = b"chunked" in value.lower()
        elif role == _UPGRADE:
            upgrade = value
        elif role == _PEER:
            peer = value.rstrip(b" \t").decode("latin-1")
    if tokens:
        lines = drop_connection_listed(lines, tokens)
    return RequestFields(
        b"".join(lines),
        b"".join(trace_lines),
        trace_headers,
        host,
        has_host,
        user_agent,
        peer,
        chunked,
        upgrade,
    )


def response_fields(headers: list[tuple[bytes, bytes]]) -> ResponseFields:
    """Classify a response's fields. Raises ``BadFraming`` for a Connection naming a
    framing field."""
    roles = _RESPONSE_ROLES
    lines: list[bytes] = []
    tokens: list[bytes] = []
    has_length = chunked = False
    upgrade = b""
    for name, value in headers:
        role = roles[name]
        if role is None:
            lines.append(name + b": " + value + b"\r\n")
        elif role == _CONTENT_LENGTH:
            has_length = True
            lines.append(name + b": " + value + b"\r\n")
        elif role == _CONNECTION:
            if value.lower() not in STANDARD_TOKENS:
                tokens.append(value)
        elif role == _TRANSFER_ENCODING:
            chunked = b"chunked" in value.lower()
        elif role == _UPGRADE:
            upgrade = value
    if tokens:
        lines = drop_connection_listed(lines, tokens)
    return ResponseFields(b"".join(lines), has_length, chunked, upgrade)


def drop_connection_listed(lines: list[bytes], connection_values: list[bytes]) -> list[bytes]:
    """``lines`` without the fields ``Connection`` names (RFC 9110 7.6.1: hop-by-hop too,
    rarely any). A framing or routing field named there raises ``BadFraming``."""
    listed = {t.strip().lower() for t in b",".join(connection_values).split(b",")}
    listed -= STANDARD_TOKENS
    if not listed:
        return lines
    if not listed.isdisjoint(NEVER_HOP_BY_HOP):
        named = b", ".join(sorted(listed & NEVER_HOP_BY_HOP)).decode("latin-1")
        raise BadFraming(f"Connection may not name {named}")
    return [line for line in lines if line.split(b":", 1)[0].lower() not in listed]
