"""The connection state machine of the proxy: one ``DownstreamConnection`` per accepted
socket, sharing its listener's ``ListenerContext`` (``sidecar.listener``).

A connection first detects its protocol (HTTP/1.x, the HTTP/2 preface, or
anything else), unless its port is declared. HTTP requests are parsed with
httptools and streamed upstream as they arrive (no body is buffered whole);
responses stream back the same way. Each exchange queues one compact record for the
telemetry thread, the shape a lane queues (``sidecar.telemetry_record``). Non-HTTP
traffic, ``CONNECT`` (outbound only) and ``Upgrade`` become byte tunnels; anything an
HTTP server might read as a request (any method token, empty lines first) is parsed,
never piped raw.

Framing is never left ambiguous between the sidecar and the next hop: a
``Connection`` option naming Content-Length, Transfer-Encoding or Host, or two Host
fields, get 400 (a response naming them 502); an ``Upgrade`` the client did not
nominate is dropped; a destination that is one of this sidecar's own listeners gets
508 rather than a loop. The field rules live in ``sidecar.http_headers``, the framing
decision and the heads sent on in ``sidecar.http_framing``, the proxy's own error
responses in ``sidecar.error_responses``: pure functions, tested by tables.

Whole simple messages skip the parser (``sidecar._http1scan``): the first on a
connection through ``_fast_request``/``response_whole``, the next ones through a
``Lane`` pairing the connection with its upstream connection, in C alone, until a
message or event it does not take sends the exchange in flight back here
(``leave_lane``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from sidecar._http1scan import Lane, request_head
from sidecar.error_responses import error_response
from sidecar.exchange import Exchange
from sidecar.http_framing import (
    LAST_CHUNK,
    chunk,
    forward_request_head,
    forward_response_head,
    response_framing,
    status_line,
    upgrade_lines,
)
from sidecar.http_headers import BadFraming, RequestFields, request_fields, response_fields
from sidecar.original_dst import original_destination
from sidecar.outbound_routing import outbound_route
from sidecar.propagation import SpanStart, span_start
from sidecar.protocol_detect import H2_PREFACE, is_http_request
from sidecar.telemetry_record import (
    CLIENT,
    LANE_RECORDS,
    SERVER,
    TCP,
    ExchangeFields,
    Record,
    lane_packed,
    shared_fields,
)
from sidecar.upstream import Address, OwnListenerError, UpstreamConnection

if TYPE_CHECKING:
    from sidecar.listener import ListenerContext

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_RETRYABLE = frozenset((b"GET", b"HEAD", b"OPTIONS"))  # safe to resend on a stale connection
MAX_PENDING_BYTES = 256 * 1024
DETECT, HTTP_MODE, TUNNEL, CLOSED = 0, 1, 2, 3
IDLE, HEADERS, ACTIVE = 0, 1, 2


class _HeadersTooLarge(Exception):
    pass


class DownstreamConnection(asyncio.Protocol):
    """An accepted connection: protocol detection, HTTP/1.1 proxying or a byte tunnel."""

    def __init__(self, ctx: ListenerContext):
        self.ctx = ctx
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.mode = DETECT
        self.parser = httptools.HttpRequestParser(self)
        self.exchanges: collections.deque[Exchange] = collections.deque()
        self.parsing: Exchange | None = None
        self.buffer = b""
        self.client: Address = ("", 0)
        self.original: Address | None = None
        self.target_port = ctx.config.app_port
        self.deadline_kind = IDLE
        self.deadline = 0.0
        self.last_activity = ctx.now
        self.paused_by: set[str] = set()
        self.header_seen = 0
        self.tunnel_upstream: UpstreamConnection | None = None
        self.tunnel_record: Callable[[], None] | None = None
        self.bytes_in = 0
        self.detect_timer: asyncio.TimerHandle | None = None
        self.out: list[bytes] | None = None
        self.client_eof = False
        self.feeding = 0
        # Where this connection's requests and tunnels go, when that is known up front: the
        # app inbound, the original destination outbound.
        self.fixed_address: Address | None = None
        # Paired with an upstream connection, simple exchanges go through C alone.
        self.lane: Lane | None = None
        self.lane_conn: UpstreamConnection | None = None
        # The fields of the last exchange recorded, shared by the next ones while they repeat.
        self.record_fields: ExchangeFields | None = None

    # -- connection lifecycle ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ctx, counters = self.ctx, self.ctx.counters
        counters.connections_total += 1
        if counters.connections_active >= ctx.config.max_connections or ctx.draining:
            counters.connections_rejected_total += 1
            self.mode = CLOSED
            transport.abort()  # type: ignore[attr-defined]
            return
        counters.connections_active += 1
        ctx.connections.add(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client = (peer[0], peer[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.original = original_destination(sock)
        if self.original is not None and ctx.kind == SERVER:
            self.target_port = self.original[1]
        if ctx.kind == SERVER:
            self.fixed_address = (ctx.config.app_host, self.target_port)
        else:
            self.fixed_address = self.original
        self._set_deadline(HEADERS, ctx.config.header_timeout_s)
        port = self.original[1] if self.original else self.target_port
        cfg = ctx.config
        declared_opaque = port in cfg.opaque_ports or port in cfg.server_first_ports
        if declared_opaque and (ctx.kind == SERVER or self.original is not None):
            self._open_tunnel(b"")
            return
        self.detect_timer = ctx.loop.call_later(cfg.detect_timeout_s, self._detect_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.mode == CLOSED and self not in self.ctx.connections:
            return
        self.mode = CLOSED
        ctx = self.ctx
        if self in ctx.connections:
            ctx.connections.discard(self)
            ctx.counters.connections_active -= 1
        if self.detect_timer is not None:
            self.detect_timer.cancel()
        if self.tunnel_upstream is not None:
            self.tunnel_upstream.close()
            self._finish_tunnel()
        if self.lane is not None:
            self.leave_lane()
        while self.exchanges:
            ex = self.exchanges.popleft()
            if ex.upstream is not None:
                ex.upstream.close()
            if ex.start_ns:
                ex.error = ex.error or "client_closed"
                self._record(ex)

    def eof_received(self) -> bool | None:
        """In a tunnel, pass the client's half-close on; close once both sides are done."""
        upstream = self.tunnel_upstream
        if self.mode != TUNNEL or upstream is None or upstream.transport is None:
            return None
        self.client_eof = True
        if upstream.eof or not upstream.transport.can_write_eof():
            upstream.close()
            return None
        upstream.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        upstream = self._upstream_now()
        if upstream is not None and upstream.transport is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        upstream = self._upstream_now()
        if upstream is not None and upstream.transport is not None:
            upstream.transport.resume_reading()

    def _upstream_now(self) -> UpstreamConnection | None:
        """The upstream connection whose bytes this client receives now, if any."""
        active = self.exchanges[0].upstream if self.exchanges else None
        return self.tunnel_upstream or self.lane_conn or active

    def pause_reading(self, reason: str) -> None:
        if not self.paused_by:
            self.transport.pause_reading()
        self.paused_by.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self.paused_by:
            self.paused_by.discard(reason)
            if not self.paused_by and self.mode != CLOSED:
                self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        """Write now, or into the batch an upstream read is collecting (one send per read)."""
        if self.out is not None:
            self.out.append(data)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        out, self.out = self.out, None
        if out and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _close(self) -> None:
        self.flush()
        self.transport.close()

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.ctx.now + seconds

    def check_deadline(self, now: float) -> None:
        cfg = self.ctx.config
        if self.mode == CLOSED:
            return
        lane = self.lane
        if lane is not None:
            if not self.ctx.draining:
                if lane.busy and now - self.last_activity > cfg.idle_timeout_s:
                    self.transport.abort()
                elif not lane.busy and now > lane.done_at + cfg.idle_timeout_s:
                    self.transport.close()
                return
            self.leave_lane()  # the full path ends the connection after its exchange
        if self.mode in (TUNNEL,) or self.exchanges:
            if self.deadline_kind == HEADERS and self.parsing is not None and now > self.deadline:
                self._reject(408, "header_timeout")
            elif now - self.last_activity > cfg.idle_timeout_s:
                self.transport.abort()
            return
        if now > self.deadline:
            if self.deadline_kind == HEADERS and (self.parsing is not None or self.buffer):
                self._reject(408, "header_timeout")
            else:
                self.transport.close()
        elif self.ctx.draining and self.parsing is None:
            self.transport.close()

    # -- data -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_activity = self.ctx.now
        mode = self.mode
        if mode == HTTP_MODE:
            lane = self.lane
            if lane is not None:
                if lane.request(data):
                    return
                self.leave_lane()
            self._feed(data)
        elif mode == TUNNEL:
            self.bytes_in += len(data)
            upstream = self.tunnel_upstream
            if upstream is not None and upstream.transport is not None:
                upstream.transport.write(data)
            else:
                self.buffer += data
        elif mode == DETECT:
            self._detect(self.buffer + data)

    def _detect(self, data: bytes) -> None:
        """HTTP/1.x, the HTTP/2 preface or another protocol, from a connection's first bytes."""
        if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
            self.buffer = data  # could still be the HTTP/2 preface
            return
        if not data.startswith(H2_PREFACE):
            # RFC 9112 2.2: empty lines before a request line are ignored.
            request = data.lstrip(b"\r\n")
            http = is_http_request(request)
            if http is None and len(data) <= self.ctx.config.max_header_bytes:
                self.buffer = data  # a request line may still be arriving
                return
            if http is not False:  # (or too long to still be undecided: the parser decides)
                self._cancel_detect()
                self.buffer = b""
                self.mode = HTTP_MODE
                self._feed(request)
                return
        self._cancel_detect()
        cfg = self.ctx.config
        grpc_port = self.target_port if self.original is None else self.original[1]
        if (
            data.startswith(H2_PREFACE)
            and self.ctx.grpc_bridge is not None
            and (cfg.grpc_detect or grpc_port in cfg.grpc_ports)
        ):
            self._open_tunnel(data, grpc=True)
        else:
            self._open_tunnel(data)

    def _cancel_detect(self) -> None:
        if self.detect_timer is not None:
            self.detect_timer.cancel()
            self.detect_timer = None

    def _detect_timeout(self) -> None:
        """A client that sent nothing yet waits for its server to speak first: pipe it.
        One that sent the start of what may be a request line is never piped raw (that
        would skip the sidecar for the app's HTTP parser); the header deadline applies."""
        self.detect_timer = None
        if self.mode == DETECT and not self.buffer:
            self.ctx.counters.protocol_detect_timeouts_total += 1
            self._open_tunnel(b"")

    def _feed(self, data: bytes) -> None:
        if self.parsing is None and not self.exchanges and self.fixed_address is not None:
            ctx = self.ctx
            if ctx.root_sample_bound is not None and len(data) <= ctx.config.max_header_bytes:
                # The common case, a whole simple request: no parser callbacks.
                prepared = request_head(data, ctx.root_extra, ctx.root_sample_bound)
                if prepared is not None and self._fast_request(prepared):
                    return
        self.feeding = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._begin_upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadersTooLarge):
                self._reject(431, "bad_request")
            else:
                detail = str(cause) if isinstance(cause, BadFraming) else ""
                self._reject(400, "bad_request", detail)
            return
        except httptools.HttpParserError:
            self._reject(400, "bad_request")
            return
        if self.parsing is not None and self.deadline_kind == HEADERS:
            self.header_seen += len(data)
            if self.header_seen > self.ctx.config.max_header_bytes:
                self._reject(431, "bad_request")

    def _reject(self, status: int, error: str, detail: str = "") -> None:
        """Answer a request this connection cannot carry on with, then close."""
        if status in (400, 431):
            self.ctx.counters.bad_requests_total += 1
        active = self.exchanges[0] if self.exchanges else None
        if active is None or not active.response_started:
            self.write(error_response(status, detail))
        self.mode = CLOSED
        self.pause_reading("closed")
        self._close()

    # -- httptools request callbacks ---------------------------------------------
    def on_message_begin(self) -> None:
        ex = self.parsing = Exchange()
        self.exchanges.append(ex)
        self.header_seen = 0
        self.deadline_kind = HEADERS
        self.deadline = self.ctx.now + self.ctx.config.header_timeout_s

    def on_url(self, url: bytes) -> None:
        ex = self.parsing
        ex.target += url  # type: ignore[union-attr]
        ex.header_bytes += len(url)  # type: ignore[union-attr]
        if ex.header_bytes > self.ctx.config.max_header_bytes:  # type: ignore[union-attr]
            raise _HeadersTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.parsing.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        ex = self.parsing
        assert ex is not None
        limit = self.ctx.config.max_header_bytes
        if self.header_seen + self.feeding > limit:  # only then is the exact size worth summing
            size = ex.header_bytes + sum(len(n) + len(v) + 4 for n, v in ex.headers)
            if size > limit:
                raise _HeadersTooLarge
        self.deadline_kind = ACTIVE
        self._request_head(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is None:
            return
        if ex.chunked_request:
            body = chunk(body)
        self._send_up(ex, body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        if ex is None:
            return
        ex.request_done = True
        if ex.chunked_request:
            self._send_up(ex, LAST_CHUNK)
        if len(self.exchanges) > 1:
            self.pause_reading("pipeline")

    # -- request side -----------------------------------------------------------
    def _request_head(self, ex: Exchange) -> None:
        ctx = self.ctx
        parser = self.parser
        method = parser.get_method()
        ex.method = _METHODS.get(method) or method.decode("latin-1")
        ex.version = parser.get_http_version()
        ex.keep_alive = parser.should_keep_alive() and not ctx.draining
        fields = request_fields(ex.headers, ctx.replaced_names)
        ex.host, ex.has_host, ex.user_agent = fields.host, fields.has_host, fields.user_agent
        ex.peer, ex.chunked_request = fields.peer, fields.chunked
        # RFC 9110 7.8: Upgrade without Connection: upgrade is no upgrade.
        ex.upgrade = fields.upgrade if parser.should_upgrade() else b""
        if method == b"CONNECT" and ctx.kind == SERVER:
            raise BadFraming("CONNECT is for the outbound proxy, not an inbound listener")
        self._dispatch(ex, method, fields)

    def _fast_request(self, prepared: tuple) -> bool:
        """A whole simple request ``request_head`` vouched for and rewrote. Written upstream
        before any bookkeeping when a pooled connection is at hand: on a virtual machine
        every microsecond before that write costs several in wake-up latency. False: the
        request is not for this path (a kubelet probe)."""
        head, trace_id, span_id, parent_id, sampled, method, target, host, user_agent, peer = (
            prepared
        )
        ctx = self.ctx
        if ctx.untraced_probe(user_agent):
            return False
        start_ns = time.time_ns()
        address = self.fixed_address
        conn = ctx.pool.take(address)  # type: ignore[arg-type]
        if conn is not None:
            conn.transport.write(head)  # type: ignore[union-attr]
        span = span_start(trace_id, span_id, parent_id, sampled)
        ex = self._simple_exchange(method, target, host, user_agent, peer.decode("latin-1"), span)
        self._sent(ex, method, head, address, start_ns, conn)  # type: ignore[arg-type]
        return True

    def _simple_exchange(
        self,
        method: bytes,
        target: bytes,
        host: bytes,
        user_agent: bytes,
        peer: str,
        span: SpanStart,
    ) -> Exchange:
        """The exchange of a whole simple request, now in flight."""
        ex = Exchange()
        ex.method = _METHODS[method]
        ex.target = target
        ex.host = host
        ex.user_agent = user_agent
        ex.peer = peer
        ex.request_done = True
        ex.keep_alive = not self.ctx.draining
        ex.span = span
        ex.fast = True
        self.exchanges.append(ex)
        self.deadline_kind = ACTIVE
        return ex

    def _enter_lane(self, conn: UpstreamConnection, ex: Exchange) -> bool:
        """Pair this connection with ``conn``, whose simple exchange ``ex`` just ended, when
        nothing else is going on: the next simple exchanges then take no Python frame."""
        ctx = self.ctx
        if not ex.fast or ctx.lane_settings is None or not ex.keep_alive or ctx.draining:
            return False
        if self.exchanges or self.parsing is not None or self.paused_by or self.mode != HTTP_MODE:
            return False
        upstream = conn.transport
        assert upstream is not None  # (it just carried this exchange)
        self.lane = conn.lane = Lane(
            self.transport.write, upstream.write, ctx.lane_settings, self.client, ex.address
        )
        self.lane_conn = conn
        conn.attach(self, None)
        conn.reused = True
        ctx.counters.lane_pairings_total += 1
        return True

    def leave_lane(self) -> None:
        """Unpair: the exchange in flight, if any, goes on along the full path."""
        lane, conn = self.lane, self.lane_conn
        assert lane is not None and conn is not None
        self.lane = self.lane_conn = conn.lane = None
        ctx = self.ctx
        if not lane.busy:
            self._set_deadline(IDLE, lane.done_at - ctx.now + ctx.config.idle_timeout_s)
            ctx.pool.put(conn)
            return
        method = lane.method
        span = span_start(lane.trace_id, lane.span_id, lane.parent_id, lane.sampled)
        ex = self._simple_exchange(method, lane.target, lane.host, lane.user_agent, lane.peer, span)
        ex.address = conn.address
        ex.start_ns = lane.start_ns
        ex.counted_inflight = ctx.kind == SERVER
        if method in _RETRYABLE:
            ex.retry_head = lane.head
        ex.upstream = conn
        ex.pending = None
        lane.forget()
        conn.attach(self, ex)

    def _dispatch(
        self,
        ex: Exchange,
        method: bytes,
        fields: RequestFields,
    ) -> None:
        """Route a parsed request head, start its span and send it upstream. The trace
        context fields the propagator replaces are kept only by an untraced request."""
        ctx = self.ctx
        address = self._route(ex)
        if address is None:  # (raised: the parser must stop reading this request too)
            raise BadFraming("no destination in the Host field or target")
        ex.address = address
        if ex.method == "CONNECT":
            self._connect_tunnel(ex)
            return
        ex.traced = not ctx.untraced_probe(ex.user_agent)
        if ex.traced:
            span = ctx.propagator.start(fields.trace_headers)
            ex.span = span
            trace_lines = ctx.propagator.header_lines(span)
            if ctx.kind == CLIENT:
                trace_lines = ctx.peer_line + trace_lines
        else:
            trace_lines = fields.trace_lines
        # An empty Host is valid (RFC 9112 3.2): only a missing one is added.
        missing_host = None if ex.has_host else address
        head = forward_request_head(
            method, ex.target, fields.lines, trace_lines, missing_host, ex.chunked_request,
            ex.upgrade,
        )  # fmt: skip
        start_ns = time.time_ns()
        # Pipelined requests wait for the ones before them.
        conn = ctx.pool.take(address) if self.exchanges[0] is ex else None
        if conn is not None:
            conn.transport.write(head)  # type: ignore[union-attr]
        self._sent(ex, method, head, address, start_ns, conn)

    def _sent(
        self,
        ex: Exchange,
        method: bytes,
        head: bytes,
        address: Address,
        start_ns: int,
        conn: UpstreamConnection | None,
    ) -> None:
        """Account for a request head just written to ``conn``, or (None) queue it until
        its turn comes or a new connection is open."""
        ctx = self.ctx
        ex.address = address
        ex.start_ns = start_ns
        if method in _RETRYABLE and not ex.chunked_request:
            ex.retry_head = head
        if ctx.kind == SERVER:
            ex.counted_inflight = True
            ctx.counters.requests_in_flight_inbound += 1
        elif ex.traced and not ex.span.had_context and ctx.counters.requests_in_flight_inbound:  # type: ignore[union-attr]
            ctx.counters.broken_propagation_total += 1
        if conn is not None:
            conn.attach(self, ex)
            ex.upstream = conn
            ex.pending = None
            return
        self._send_up(ex, head)
        if self.exchanges[0] is ex:
            ctx.loop.create_task(self._connect_upstream(ex, retry=False))

    def _route(self, ex: Exchange) -> Address | None:
        """Where this request goes: the app, the original destination, or its URL/Host."""
        if self.ctx.kind == SERVER:
            return self.fixed_address
        address, ex.target = outbound_route(ex.method, ex.target, ex.host, self.original)
        return address

    def _send_up(self, ex: Exchange, data: bytes) -> None:
        pending = ex.pending
        if pending is None:
            ex.upstream.transport.write(data)  # type: ignore[union-attr]
            return
        pending.append(data)
        ex.pending_bytes += len(data)
        if ex.pending_bytes > MAX_PENDING_BYTES:
            self.pause_reading("pending")

    def _start_upstream(self, ex: Exchange) -> None:
        conn = self.ctx.pool.take(ex.address)
        if conn is not None:
            self._attach(ex, conn)
        else:
            self.ctx.loop.create_task(self._connect_upstream(ex, retry=False))

    async def _connect_upstream(self, ex: Exchange, retry: bool) -> None:
        ctx = self.ctx
        try:
            conn = await ctx.pool.connect(
                ctx.loop, ex.address, ctx.config.connect_timeout_s, ctx.own_ports
            )
        except TimeoutError:
            self._fail(ex, 504, "connect_timeout")
            return
        except OwnListenerError as exc:
            self._fail(ex, 508, "own_listener", str(exc))
            return
        except OSError:
            self._fail(ex, 502, "connect_error")
            return
        if self.mode == CLOSED or not self.exchanges or self.exchanges[0] is not ex:
            conn.close()
            return
        if retry:
            ex.pending = [ex.retry_head]  # type: ignore[list-item]
            ex.retry_head = None
        self._attach(ex, conn)

    def _attach(self, ex: Exchange, conn: UpstreamConnection) -> None:
        conn.attach(self, ex)
        ex.upstream = conn
        pending, ex.pending = ex.pending, None
        if pending:
            conn.transport.write(b"".join(pending))  # type: ignore[union-attr]
        ex.pending_bytes = 0
        if self.paused_by:
            self.resume_reading("pending")

    def _fail(self, ex: Exchange, status: int, error: str, detail: str = "") -> None:
        """The upstream could not be reached or broke before answering: 502/504 (508 when it
        is this sidecar itself) and close."""
        self.ctx.counters.upstream_errors_total += 1
        ex.error = error
        ex.status = status
        if self.mode == CLOSED:
            return
        if not ex.response_started:
            self.write(error_response(status, detail))
        self._record(ex)
        ex.start_ns = 0
        if ex.upstream is not None:
            ex.upstream.close()
        self.mode = CLOSED
        self._close()

    # -- response side (called by UpstreamConnection) -----------------------------
    def response_head(
        self, conn: UpstreamConnection, status: int, reason: bytes, headers: list
    ) -> None:
        ex = conn.exchange
        assert ex is not None
        fields = response_fields(headers)
        if 100 <= status < 200:
            if status == 101 and fields.upgrade:
                ex.status = status
                upgrade = upgrade_lines(fields.upgrade)
                self.write(status_line(status, reason) + fields.lines + upgrade + b"\r\n")
                self._upgrade_to_tunnel(ex, conn)
            elif status != 101:  # (a 101 naming no protocol switches to nothing)
                self.write(status_line(status, reason) + fields.lines + b"\r\n")
            return
        ex.status = status
        ex.response_started = True
        framing = response_framing(
            ex.method, ex.version, status, fields.has_length, fields.chunked,
            ex.keep_alive and not self.ctx.draining,
        )  # fmt: skip
        ex.chunked_response = framing.chunked
        ex.close_delimited = framing.close_delimited
        ex.keep_alive = framing.keep_alive
        self.write(forward_response_head(status, reason, fields.lines, framing, ex.version))
        if ex.method == "HEAD":
            keep = conn.parser.should_keep_alive()
            conn.reset_parser()
            self.response_complete(conn, keep)

    def response_whole(self, conn: UpstreamConnection, status: int, data: bytes) -> bool:
        """A whole response ``scan_response`` vouched for, forwarded as is when this exchange
        needs no rewriting of it (False: the caller takes the full path). It is written
        before any bookkeeping: the client waits on nothing else."""
        ex = conn.exchange
        if ex is None or ex.method == "HEAD" or not ex.keep_alive or ex.version != "1.1":
            return False
        if self.ctx.draining or self.mode == CLOSED:
            return False
        self.transport.write(data)
        ex.status = status
        ex.response_started = True
        self.response_complete(conn, True)
        return True

    def response_body(self, ex: Exchange, body: bytes) -> None:
        if ex.chunked_response:
            self.write(chunk(body))
        else:
            self.write(body)

    def response_complete(self, conn: UpstreamConnection, upstream_keep_alive: bool) -> None:
        ex = conn.exchange
        if ex is None or self.mode == CLOSED:
            return
        if ex.chunked_response:
            self.write(LAST_CHUNK)
        self._record(ex)
        if self.exchanges and self.exchanges[0] is ex:
            self.exchanges.popleft()
        ex.upstream = None
        if upstream_keep_alive and ex.request_done and not ex.close_delimited:
            if not self._enter_lane(conn, ex):
                self.ctx.pool.put(conn)
        else:
            conn.close()
        if not ex.keep_alive or not ex.request_done:
            self.mode = CLOSED
            self._close()
            return
        if self.paused_by:
            self.resume_reading("upstream")
            self.resume_reading("pipeline")
        if self.exchanges:
            nxt = self.exchanges[0]
            if nxt.start_ns:
                self._start_upstream(nxt)
        else:
            ctx = self.ctx
            self.deadline_kind = IDLE
            self.deadline = ctx.now + ctx.config.idle_timeout_s
            if ctx.draining:
                self._close()

    def upstream_failed(self, conn: UpstreamConnection, error: str) -> None:
        ex = conn.exchange
        conn.close()
        if ex is not None:
            self._fail(ex, 502, error)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        if conn.lane is not None:
            self.leave_lane()
        if conn is self.tunnel_upstream:
            self.tunnel_upstream = None
            self._finish_tunnel()
            if self.mode != CLOSED:
                self._close()
            return
        ex = conn.exchange
        if ex is None or self.mode == CLOSED:
            return
        conn.downstream = None
        ex.upstream = None
        if ex.response_started:
            if ex.close_delimited:
                self.response_complete_closed(ex)
            else:
                ex.error = "upstream_reset"
                self._record(ex)
                ex.start_ns = 0
                self.transport.abort()
            return
        if conn.reused and ex.retry_head is not None and ex.request_done:
            ex.pending = []
            self.ctx.loop.create_task(self._connect_upstream(ex, retry=True))
            return
        self._fail(ex, 502, "upstream_reset")

    def response_complete_closed(self, ex: Exchange) -> None:
        """A close-delimited response ended with the upstream connection."""
        if ex.chunked_response:
            self.write(LAST_CHUNK)
        self._record(ex)
        ex.start_ns = 0
        if self.exchanges and self.exchanges[0] is ex:
            self.exchanges.popleft()
        if ex.keep_alive and ex.request_done:
            self.resume_reading("pipeline")
            if self.exchanges and self.exchanges[0].start_ns:
                self._start_upstream(self.exchanges[0])
            else:
                self._set_deadline(IDLE, self.ctx.config.idle_timeout_s)
        else:
            self.mode = CLOSED
            self._close()

    # -- tunnels ----------------------------------------------------------------
    def _begin_upgrade(self, early: bytes) -> None:
        """The request asked for Upgrade (or CONNECT); bytes after its head wait for the tunnel."""
        if early:
            self.buffer += early
        if self.mode == TUNNEL:
            return  # CONNECT: the tunnel is already being opened
        self.pause_reading("upgrade")
        if self.exchanges:
            self.exchanges[-1].keep_alive = False  # unless a 101 turns it into a tunnel

    def _upgrade_to_tunnel(self, ex: Exchange, conn: UpstreamConnection) -> None:
        if self.exchanges and self.exchanges[0] is ex:
            self.exchanges.popleft()
        conn.start_tunnel()
        self.tunnel_upstream = conn
        self.mode = TUNNEL
        self.deadline_kind = ACTIVE
        started = ex
        self.tunnel_record = lambda: self._record(started)
        if self.buffer:
            conn.transport.write(self.buffer)  # type: ignore[union-attr]
            self.buffer = b""
        self.resume_reading("upgrade")

    def _connect_tunnel(self, ex: Exchange) -> None:
        """``CONNECT host:port`` from an app using the sidecar as its HTTP proxy."""
        self.exchanges.clear()
        self.mode = TUNNEL
        self.pause_reading("connect")
        ex.start_ns = time.time_ns()
        self.ctx.loop.create_task(self._open_tunnel_async(ex.address, b"", connect_reply=True))

    def _open_tunnel(self, first: bytes, grpc: bool = False) -> None:
        """Pipe this connection's bytes to its destination (or to the gRPC bridge)."""
        self.mode = TUNNEL
        self._cancel_detect()
        self.deadline_kind = ACTIVE
        self.pause_reading("connect")
        bridge = self.ctx.grpc_bridge
        if grpc and bridge is not None:
            address: Address | None = ("127.0.0.1", bridge.port)
        else:
            address = self.fixed_address
        if address is None:
            self.transport.close()
            return
        self.bytes_in = len(first)
        self.ctx.loop.create_task(self._open_tunnel_async(address, first, grpc=grpc))

    async def _open_tunnel_async(
        self, address: Address, first: bytes, grpc: bool = False, connect_reply: bool = False
    ) -> None:
        start_ns = time.time_ns()
        ctx = self.ctx
        try:
            conn = await ctx.pool.connect(
                ctx.loop, address, ctx.config.connect_timeout_s, ctx.own_ports
            )
        except (TimeoutError, OSError) as exc:
            ctx.counters.upstream_errors_total += 1
            own = isinstance(exc, OwnListenerError)
            if connect_reply and self.mode != CLOSED:
                status = 508 if own else 504 if isinstance(exc, TimeoutError) else 502
                self.transport.write(error_response(status, str(exc) if own else ""))
            if not grpc:
                self._record_tcp(address, start_ns, "own_listener" if own else "connect_error", 0)
            self.transport.close()
            return
        if self.mode == CLOSED:
            conn.close()
            return
        conn.attach(self, None)
        conn.start_tunnel()
        self.tunnel_upstream = conn
        bridge = ctx.grpc_bridge
        if grpc and bridge is not None:
            sockname = conn.transport.get_extra_info("sockname")  # type: ignore[union-attr]
            bridge.register(sockname[1], ctx.kind, self.fixed_address, self.client)
            port = sockname[1]
            self.tunnel_record = lambda: bridge.unregister(port)
        else:
            self.tunnel_record = lambda: self._record_tcp(address, start_ns, "", conn.bytes_in)
        if connect_reply:
            self.transport.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        data = first + self.buffer
        self.buffer = b""
        if data:
            conn.transport.write(data)  # type: ignore[union-attr]
        self.resume_reading("connect")

    def _finish_tunnel(self) -> None:
        record, self.tunnel_record = self.tunnel_record, None
        if record is not None:
            record()

    # -- telemetry ----------------------------------------------------------------
    def _record(self, ex: Exchange) -> None:
        ctx = self.ctx
        if ex.counted_inflight:
            ex.counted_inflight = False
            ctx.counters.requests_in_flight_inbound -= 1
        span = ex.span
        if not ex.traced or not ex.start_ns or span is None:
            return
        # What a lane queues: the queue keeps no Exchange (its headers, its head) alive.
        fields = self.record_fields = shared_fields(self.record_fields, (
            ctx.kind, self.client, ex.address, ex.method.encode("latin-1"), ex.target,
            ex.host, ex.user_agent, ex.peer, ex.status, ex.error, ex.version,
        ))  # fmt: skip
        packed = lane_packed(
            span.trace_id, span.span_id, span.parent_id, span.sampled, ex.start_ns,
            time.time_ns(),
        )  # fmt: skip
        ctx.telemetry.submit((LANE_RECORDS, fields, packed), span.sampled)

    def _record_tcp(self, address: Address, start_ns: int, error: str, bytes_out: int) -> None:
        ctx = self.ctx
        span = ctx.propagator.start({})
        ctx.telemetry.submit(
            Record(
                TCP,
                ctx.kind,
                span.trace_id if span.sampled else "",
                span.span_id,
                "",
                False,
                start_ns,
                time.time_ns(),
                "",
                "",
                0,
                address[0],
                address[1],
                (self.client if ctx.kind == SERVER else address)[0],
                (self.client if ctx.kind == SERVER else address)[1],
                "",
                "",
                error,
                f"{address[0]}:{address[1]}",
                self.bytes_in,
                bytes_out,
            )
        )
