"""Hostile HTTP/1.x input against real sidecar processes in front of real apps (issue 24).

Every hostile request is sent on each way a request can enter the proxy: the C scanner
(the first request of a connection, in one write), the C lane (a later request on a
keep-alive connection that just carried a simple exchange) and httptools (the request
split across two reads). Each must get a clear 4xx, or the handling RFC 9112 asks for,
must reach the app only as the sidecar framed it (never as a raw tunnel, never as two
requests), and must leave the next client's traffic unaffected. Upstreams that answer
more than was asked, and requests addressed to the sidecar's own listeners, are here too.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httptools
import pytest

from sidecar.protocol_detect import is_http_request
from sidecar.upstream import is_own_listener
from tests.support.polling import eventually
from tests.support.sidecar_harness import CannedHttpServer, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn

ENTRIES = ("scanner", "lane", "httptools")
SMUGGLED = b"GET /users/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
READ_TIMEOUT_S = 10.0


class RecordingApp:
    """An ASGI wrapper keeping the method, path and headers of every request the app got."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.seen.append((scope["method"], scope["path"], headers))
        await self.app(scope, receive, send)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[SidecarProcess, RecordingApp, ThreadedUvicorn]]:
    """A sidecar in front of a Starlette app (uvicorn) that records what it receives."""
    recording = RecordingApp(build_app())
    app = ThreadedUvicorn(recording).start()  # type: ignore[arg-type]
    sidecar = SidecarProcess(app.port, "--header-timeout", "3", "--service-name", "hostile")
    sidecar.start()
    yield sidecar, recording, app
    sidecar.stop()
    app.stop()


class Replies:
    """The responses read off one client connection, as httptools parses them."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self.closed = False
        self.error: Exception | None = None
        self._headers: dict[bytes, bytes] = {}
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""

    def read(self, sock: socket.socket, count: int, until_close: bool = False) -> Replies:
        """Read until ``count`` responses are whole (and, if asked, the sidecar closed)."""
        deadline = time.monotonic() + READ_TIMEOUT_S
        while (len(self.done) < count or until_close) and not self.closed:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except TimeoutError:
                break
            if not chunk:
                self.closed = True
                break
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserError as exc:
                self.error = exc
                break
        return self

    def status(self) -> int:
        assert self.error is None, self.error
        assert self.done, "no whole response"
        return self.done[-1][0]


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _simple_get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: a\r\nUser-Agent: hostile-test/1\r\n\r\n" % path.encode()


def _open(port: int, entry: str) -> socket.socket:
    """A client connection whose next request enters the proxy by ``entry``."""
    sock = _connect(port)
    if entry == "lane":  # a simple exchange first: the connection is then paired in C
        sock.sendall(_simple_get("/users/warm-up"))
        assert Replies().read(sock, 1).status() == 200
    return sock


def _send(sock: socket.socket, data: bytes, entry: str) -> None:
    """``data`` in one write, or (``httptools``) in two reads, cut in the middle."""
    if entry != "httptools":
        sock.sendall(data)
        return
    cut = len(data) // 2
    sock.sendall(data[:cut])
    time.sleep(0.3)  # the sidecar reads the first part alone
    sock.sendall(data[cut:])


def _app_answers_next_client(port: int, path: str) -> None:
    """A legitimate request on a new connection gets its own answer."""
    with _connect(port) as sock:
        sock.sendall(_simple_get(path))
        replies = Replies().read(sock, 1)
    assert replies.status() == 200
    assert json.loads(replies.done[0][2])["path"] == path


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


# (id, request, expected status). Each 400 request hides SMUGGLED where a proxy that
# framed it differently from the app would let the app see it.
REJECTED = [
    (
        "connection-content-length",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    ),
    (
        "connection-list-content-length",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    ),
    (
        "connection-transfer-encoding",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(SMUGGLED),
    ),
    (
        "connection-host",
        b"GET /users/host HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n" + SMUGGLED,
    ),
    (
        "content-length-and-transfer-encoding",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(SMUGGLED),
    ),
    (
        "duplicate-content-length",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n%s"
        % (len(SMUGGLED), SMUGGLED),
    ),
    ("duplicate-host", b"GET /users/two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED),
    ("lowercase-method", b"get /users/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("unknown-method", b"G3T /users/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("connect-inbound", b"CONNECT a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n" + SMUGGLED),
]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("request_bytes"), [r for _, r in REJECTED], ids=[i for i, _ in REJECTED])
def test_hostile_request_is_rejected_and_reaches_nothing(stack, entry, request_bytes) -> None:
    sidecar, app, _ = stack
    rejected = sidecar.metric("sidetrace_sidecar_bad_requests_total")
    with _open(sidecar.inbound, entry) as sock:
        seen = len(app.seen)
        _send(sock, request_bytes, entry)
        replies = Replies().read(sock, 1, until_close=True)
    assert replies.status() == 400
    assert replies.closed
    # The sidecar said so (not the app, which a tunnel would have reached).
    assert sidecar.metric("sidetrace_sidecar_bad_requests_total") == rejected + 1
    assert app.paths()[seen:] == []  # not one byte of it became a request
    _app_answers_next_client(sidecar.inbound, "/users/after")
    assert app.paths()[seen:] == ["/users/after"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_leading_empty_lines_are_ignored(stack, entry) -> None:
    """RFC 9112 2.2: a server SHOULD ignore empty lines before a request line. The request
    is proxied (traced, the app sees the sidecar's traceparent), not tunnelled raw."""
    sidecar, app, _ = stack
    with _open(sidecar.inbound, entry) as sock:
        seen = len(app.seen)
        _send(sock, b"\r\n\r\n" + _simple_get("/users/crlf"), entry)
        replies = Replies().read(sock, 1)
        assert replies.status() == 200
        sock.sendall(_simple_get("/users/crlf-next"))  # still HTTP, not a tunnel
        assert replies.read(sock, 2).status() == 200
    assert [path for path in app.paths()[seen:]] == ["/users/crlf", "/users/crlf-next"]
    for _, _, headers in app.seen[seen:]:
        assert headers["traceparent"].startswith("00-")


def test_request_line_sent_slowly_is_still_proxied(stack) -> None:
    """A first request line paused mid-way past the protocol detection timeout is still
    HTTP: never piped raw to the app (which would skip the sidecar), valid or not."""
    sidecar, app, _ = stack
    rejected = sidecar.metric("sidetrace_sidecar_bad_requests_total")
    seen = len(app.seen)
    for first, rest, status in (
        (b"G", b"ET /users/slow-start HTTP/1.1\r\nHost: a\r\n\r\n", 200),
        (b"get /users/sm", b"uggled HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ):
        with _connect(sidecar.inbound) as sock:
            sock.sendall(first)
            time.sleep(1.0)  # five times the detection timeout
            sock.sendall(rest)
            assert Replies().read(sock, 1, until_close=status != 200).status() == status
    [(_, path, headers)] = app.seen[seen:]
    assert path == "/users/slow-start" and headers["traceparent"].startswith("00-")
    assert sidecar.metric("sidetrace_sidecar_bad_requests_total") == rejected + 1


@pytest.mark.parametrize("entry", ENTRIES)
def test_upgrade_not_nominated_by_connection_is_no_upgrade(stack, entry) -> None:
    """``Upgrade`` without ``Connection: upgrade`` (RFC 9110 7.8) is dropped as hop-by-hop;
    the sidecar must not turn the request into an upgrade towards the app."""
    sidecar, app, _ = stack
    with _open(sidecar.inbound, entry) as sock:
        seen = len(app.seen)
        request = b"GET /users/up HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
        _send(sock, request, entry)
        replies = Replies().read(sock, 1)
        assert replies.status() == 200
        sock.sendall(_simple_get("/users/up-next"))
        assert replies.read(sock, 2).status() == 200
    [(_, path, headers), (_, next_path, _)] = app.seen[seen:]
    assert (path, next_path) == ("/users/up", "/users/up-next")
    assert "upgrade" not in headers and "upgrade" not in headers.get("connection", "")


@pytest.mark.parametrize("path", ["fast", "httptools"])
def test_smuggled_response_never_reaches_another_client(stack, path) -> None:
    """Client A smuggles a slow request through a ``Connection: content-length``
    nomination; client B, on a new connection right after, must get its own response."""
    sidecar, app, _ = stack
    smuggled = b"GET /slow?s=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    attack = (
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    )
    entry = "lane" if path == "fast" else "httptools"
    seen = len(app.seen)
    for round_ in range(3):
        with _open(sidecar.inbound, entry) as attacker:
            _send(attacker, attack, entry)
            Replies().read(attacker, 1)
            mine = f"/users/client-b-{round_}"
            with _connect(sidecar.inbound) as victim:
                _send(victim, _simple_get(mine), "scanner" if path == "fast" else "httptools")
                replies = Replies().read(victim, 1)
            assert replies.status() == 200
            body = replies.done[0][2]
            assert body.startswith(b"{"), body  # (b"slow done": the smuggled request's)
            assert json.loads(body)["path"] == mine
    assert "/slow" not in app.paths()[seen:]


@pytest.mark.parametrize(
    ("template", "status"),
    [
        pytest.param(
            b"POST /upload HTTP/1.1\r\nHost: %(app)s\r\nConnection: content-length\r\n"
            b"Content-Length: %(n)d\r\n\r\n%(smuggled)s",
            400,
            id="connection-content-length",
        ),
        pytest.param(
            b"GET /users/o HTTP/1.1\r\nHost: %(app)s\r\nConnection: host\r\n\r\n",
            400,
            id="connection-host",
        ),
        pytest.param(
            b"GET /users/o HTTP/1.1\r\nHost: %(app)s\r\nHost: 127.0.0.1:1\r\n\r\n",
            400,
            id="duplicate-host",
        ),
        pytest.param(b"get /users/o HTTP/1.1\r\nHost: %(app)s\r\n\r\n", 400, id="lowercase"),
        pytest.param(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n"
            b"Content-Length: %(n)d\r\n\r\n%(smuggled)s",
            400,
            id="no-destination",
        ),
        pytest.param(b"\r\nGET /users/o HTTP/1.1\r\nHost: %(app)s\r\n\r\n", 200, id="crlf"),
    ],
)
def test_outbound_listener_enforces_the_same_framing(stack, template, status) -> None:
    """The outbound listener (an app's HTTP proxy, routing by Host) parses alike."""
    sidecar, app, server = stack
    request = template % {
        b"app": b"127.0.0.1:%d" % server.port,
        b"n": len(SMUGGLED),
        b"smuggled": SMUGGLED,
    }
    seen = len(app.seen)
    with _connect(sidecar.outbound) as sock:
        sock.sendall(request)
        replies = Replies().read(sock, 1, until_close=status != 200)
    assert replies.status() == status
    if status == 200:
        [(_, path, headers)] = app.seen[seen:]
        assert path == "/users/o" and headers["x-sidetrace-peer"] == "hostile"
    else:
        assert app.paths()[seen:] == []


# -- upstreams that answer what nobody asked ------------------------------------------------

FIRST = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
# A second response the upstream sends unasked, with the first: its head and part of its body.
UNASKED = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nsmuggled"


@pytest.fixture
def unasking() -> Iterator[tuple[CannedHttpServer, SidecarProcess]]:
    upstream = CannedHttpServer(FIRST + UNASKED)
    sidecar = SidecarProcess(upstream.port).start()
    yield upstream, sidecar
    sidecar.stop()
    upstream.stop()


@pytest.mark.parametrize("entry", ENTRIES)
def test_upstream_sending_more_than_asked_is_closed_not_pooled(unasking, entry) -> None:
    upstream, sidecar = unasking
    for client in range(3):  # each client on its own connection, then one more on A's
        with _open(sidecar.inbound, entry) as sock:
            _send(sock, _simple_get(f"/{client}"), entry)
            replies = Replies().read(sock, 1)
            assert replies.error is None and replies.done, (client, replies.error)
            assert replies.done[0][0] == 200 and replies.done[0][2] == b"first"
            sock.sendall(_simple_get(f"/{client}/again"))
            replies.read(sock, 2)
            assert replies.error is None and len(replies.done) == 2, (client, replies.error)
            assert replies.done[1][2] == b"first"
    # No connection that talked out of turn carried another request.
    assert upstream.connections == len(upstream.heads)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nfirst",
            id="connection-content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n",
            id="connection-transfer-encoding",
        ),
    ],
)
def test_response_framing_nominated_by_connection_is_502(response: bytes) -> None:
    upstream = CannedHttpServer(response)
    sidecar = SidecarProcess(upstream.port).start()
    try:
        with _connect(sidecar.inbound) as sock:
            sock.sendall(_simple_get("/"))
            replies = Replies().read(sock, 1, until_close=True)
        assert replies.status() == 502
    finally:
        sidecar.stop()
        upstream.stop()


# -- the outbound listener addressed to the sidecar itself ---------------------------------


def _outbound_to(sidecar: SidecarProcess, request: bytes) -> Replies:
    with _connect(sidecar.outbound) as sock:
        sock.sendall(request)
        return Replies().read(sock, 1, until_close=True)


def _self_addressed(sidecar: SidecarProcess) -> list[bytes]:
    out = []
    for host in ("127.0.0.1", "localhost", "0.0.0.0"):
        for port in (sidecar.outbound, sidecar.inbound, sidecar.admin):
            out.append(b"GET /loop HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port))
    out.append(b"GET http://127.0.0.1:%d/loop HTTP/1.1\r\nHost: x\r\n\r\n" % sidecar.outbound)
    out.append(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % sidecar.outbound)
    return out


def test_outbound_refuses_its_own_listeners_with_bounded_memory(stack) -> None:
    sidecar, _, app = stack
    rss_before = sidecar.rss_mb()
    for request in _self_addressed(sidecar):
        replies = _outbound_to(sidecar, request)
        assert replies.status() == 508, request
        assert b"own listener" in replies.done[0][2]
    assert sidecar.rss_mb() < rss_before + 40
    # Nothing keeps looping: the sidecar's connections settle, legitimate traffic flows.
    eventually(
        lambda: sidecar.metric("sidetrace_sidecar_connections_active") <= 2,
        10,
        what="connections closed after the refusals",
    )
    reply = _outbound_to(
        sidecar, b"GET /users/out HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % app.port
    )
    assert reply.status() == 200
    _app_answers_next_client(sidecar.inbound, "/users/after-loop")


def _pod_address() -> str | None:
    """A non-loopback address of this host (a pod's IP), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_outbound_refuses_its_own_listeners_by_pod_address() -> None:
    address = _pod_address()
    if address is None:
        pytest.skip("no non-loopback address here")
    sidecar = SidecarProcess(1, "--bind", "0.0.0.0", "--outbound-bind", "0.0.0.0").start()
    try:
        for port in (sidecar.outbound, sidecar.inbound, sidecar.admin):
            request = b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (address.encode(), port)
            assert _outbound_to(sidecar, request).status() == 508
    finally:
        sidecar.stop()


def test_intercepted_connection_to_own_listener_is_refused(stack, redirect) -> None:
    """An iptables-redirected connection whose original destination is the sidecar's own
    inbound port (the outbound fast path: the destination is known before any parsing)."""
    sidecar, _, _ = stack
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    redirect(sock.getsockname()[1], sidecar.inbound, sidecar.outbound)
    sock.settimeout(READ_TIMEOUT_S)
    sock.connect(("127.0.0.1", sidecar.inbound))
    with sock:
        sock.sendall(_simple_get("/users/intercepted"))
        replies = Replies().read(sock, 1, until_close=True)
    assert replies.status() == 508


# -- the pure decisions behind the above ----------------------------------------------------


@pytest.mark.parametrize(
    ("first_bytes", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET ", True),
        (b"SET key value\r\n", True),  # known from its start; the parser refuses it (400)
        (b"get / HTTP/1.1\r\n", True),
        (b"get / http/1.1\r\n", True),
        (b"G3T /a b HTTP/1.0\r\n", True),
        (b"M-SEARCH * HTTP/1.1\r\n", True),
        (b"get\t/ HTTP/1.1\n", True),
        (b"get foo\r\n", False),  # a text protocol (memcached): piped
        (b"*1\r\n$4\r\nPING\r\n", False),  # Redis
        (b"\x16\x03\x01\x00\xa5\x01\n", False),  # TLS
        (b"\x00\x00\x00\x08\x04\xd2\x16/", False),  # PostgreSQL
        (b"", None),
        (b"g", None),
        (b"get /users/1 HT", None),  # still arriving: never piped raw meanwhile
    ],
)
def test_is_http_request(first_bytes: bytes, expected: bool | None) -> None:
    assert is_http_request(first_bytes) is expected


OWN = frozenset((15001, 15006, 15020))


@pytest.mark.parametrize(
    ("local", "peer", "expected"),
    [
        (("127.0.0.1", 40000), ("127.0.0.1", 15001), True),
        (("127.0.0.1", 40000), ("127.0.0.9", 15006), True),
        (("10.1.2.3", 40000), ("10.1.2.3", 15020), True),  # the pod's own IP
        (("10.1.2.3", 40000), ("10.1.2.4", 15001), False),  # another pod's sidecar
        (("127.0.0.1", 40000), ("127.0.0.1", 8080), False),  # the app
        (("::1", 40000, 0, 0), ("::1", 15001, 0, 0), True),
        (("::ffff:10.1.2.3", 40000, 0, 0), ("::ffff:10.1.2.3", 15006, 0, 0), True),
        (("fe80::1%eth0", 40000, 0, 2), ("fe80::1%eth0", 15006, 0, 2), True),
        (("10.1.2.3", 40000), ("0.0.0.0", 15001), True),
        (("10.1.2.3", 40000), ("not-an-address", 15001), False),
    ],
)
def test_is_own_listener(local: tuple, peer: tuple, expected: bool) -> None:
    assert is_own_listener(local, peer, OWN) is expected
