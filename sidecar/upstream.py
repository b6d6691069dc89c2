"""Connections from the sidecar to upstreams (the app, or the next hop) and their pool.

An ``UpstreamConnection`` parses HTTP/1.1 responses with httptools and hands
each event to the downstream connection that owns its current exchange; after
an ``Upgrade`` or for opaque traffic it becomes a plain byte pipe. Idle
keep-alive connections wait in ``UpstreamPool`` per address.

An upstream that sends bytes nobody asked for (a response after the one expected,
or anything while idle) no longer frames its exchanges the way the sidecar does:
its connection is closed, never pooled, so no other client reads those bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

import httptools

from sidecar._http1scan import Lane, scan_response

if TYPE_CHECKING:
    from sidecar.exchange import Exchange
    from sidecar.http_proxy import DownstreamConnection

Address = tuple[str, int]
MAX_IDLE_PER_ADDRESS = 256


class OwnListenerError(ConnectionRefusedError):
    """The destination is one of this sidecar's own listeners: connecting would loop."""


class _Unsolicited(Exception):
    """A response began after the one asked for had ended, within the same read."""


def is_own_listener(local: tuple, peer: tuple, own_ports: frozenset[int]) -> bool:
    """Whether a connection from ``local`` to ``peer`` (socket addresses) reached a port
    in ``own_ports`` on this host: a loopback or unspecified address, or the address the
    connection left from (the kernel picks a local destination's own address as source)."""
    if peer[1] not in own_ports:
        return False
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
        source = ipaddress.ip_address(local[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        source = source.ipv4_mapped
    return address.is_loopback or address.is_unspecified or address == source


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to an upstream; owned by at most one downstream at a time."""

    def __init__(self, pool: UpstreamPool, address: Address):
        self.pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.downstream: DownstreamConnection | None = None
        self.exchange: Exchange | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.in_message = False  # the parser is inside a response
        self.tunnel = False
        self.closed = False
        self.reused = False
        self.eof = False
        self.pooled = False
        self.early = b""
        self.bytes_in = 0
        self.answered = False  # a final response ended within the read being parsed
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self.lane: Lane | None = None  # paired with its downstream (see DownstreamConnection)

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        lane = self.lane
        if lane is not None:
            if lane.response(data):
                return
            self.downstream.leave_lane()  # type: ignore[union-attr]
        downstream = self.downstream
        if downstream is None:
            if self.pooled:  # an idle pooled connection must not talk
                self.transport.close()  # type: ignore[union-attr]
            else:  # a server speaking first, before the connect await has resumed
                self.early += data
            return
        downstream.last_activity = downstream.ctx.now
        if self.tunnel:
            self.bytes_in += len(data)
            downstream.transport.write(data)
            return
        if not self.in_message and self.exchange is not None:
            scanned = scan_response(data)  # the common case, without parser callbacks
            if scanned is not None and downstream.response_whole(self, *scanned):
                return
        downstream.out = []
        self.answered = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            if rest and self.tunnel:
                self.bytes_in += len(rest)
                downstream.write(rest)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Unsolicited):
                self._drop_unsolicited()
            else:
                downstream.upstream_failed(self, "invalid_response")
        except httptools.HttpParserError:
            downstream.upstream_failed(self, "invalid_response")
        finally:
            downstream.flush()

    def _drop_unsolicited(self) -> None:
        """Close a connection that answered what nobody asked. Pooled, it is skipped from now
        on; paired in a lane, it is unpaired first; given to the next exchange of the same
        client already, that exchange learns of the loss (and is retried or fails)."""
        if self.lane is not None:
            self.downstream.leave_lane()  # type: ignore[union-attr]
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        """In a tunnel, pass the upstream's half-close on; close once both sides are done."""
        self.eof = True
        downstream = self.downstream
        if not self.tunnel or downstream is None:
            return None
        transport = downstream.transport
        if downstream.client_eof or not transport.can_write_eof():
            return None  # connection_lost follows and closes the downstream
        transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.downstream is not None:
            self.downstream.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.downstream is not None:
            self.downstream.pause_reading("upstream")

    def resume_writing(self) -> None:
        if self.downstream is not None:
            self.downstream.resume_reading("upstream")

    # -- httptools callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        if self.answered:  # sent before the next request could have been written
            raise _Unsolicited
        self.in_message = True
        self._headers = []

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.downstream is not None and self.exchange is not None:
            self.downstream.response_head(
                self, self.parser.get_status_code(), self._reason, self._headers
            )

    def on_body(self, body: bytes) -> None:
        if self.downstream is not None and self.exchange is not None:
            self.downstream.response_body(self.exchange, body)

    def on_message_complete(self) -> None:
        self.in_message = False
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response; the final one follows
        self.answered = True
        if self.downstream is not None and self.exchange is not None:
            self.downstream.response_complete(self, self.parser.should_keep_alive())

    # -- ownership --------------------------------------------------------------
    def attach(self, downstream: DownstreamConnection, exchange: Exchange | None) -> None:
        self.downstream = downstream
        self.exchange = exchange

    def reset_parser(self) -> None:
        """Start a fresh response parser (after a HEAD response, whose body never comes)."""
        self.parser = httptools.HttpResponseParser(self)
        self.in_message = False

    def start_tunnel(self) -> None:
        self.tunnel = True
        self.exchange = None
        early, self.early = self.early, b""
        if early and self.downstream is not None:
            self.data_received(early)

    def close(self) -> None:
        self.downstream = None
        self.exchange = None
        if self.transport is not None and not self.closed:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per upstream address, most recently used first."""

    def __init__(self) -> None:
        self._idle: dict[Address, list[UpstreamConnection]] = {}

    def take(self, address: Address) -> UpstreamConnection | None:
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                conn.reused = True
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        conn.pooled = True
        conn.downstream = None
        conn.exchange = None
        transport = conn.transport
        if transport is not None and not transport.is_closing() and not transport.is_reading():
            transport.resume_reading()  # its last client may have paused it for backpressure
        idle = self._idle.get(conn.address)
        if idle is None:
            idle = self._idle[conn.address] = []
        if len(idle) >= MAX_IDLE_PER_ADDRESS or conn.closed:
            conn.close()
            return
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)

    def close_all(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    async def connect(
        self,
        loop: asyncio.AbstractEventLoop,
        address: Address,
        timeout: float,
        own_ports: frozenset[int] = frozenset(),
    ) -> UpstreamConnection:
        """A new connection; raises ``TimeoutError`` or ``OSError`` (``OwnListenerError``
        when it reached one of ``own_ports`` on this host: whatever name or address the
        destination was given, the connected socket tells)."""
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(self, address), *address),
            timeout,
        )
        if own_ports:
            local = transport.get_extra_info("sockname")
            peer = transport.get_extra_info("peername")
            if local and peer and is_own_listener(local, peer, own_ports):
                transport.abort()
                raise OwnListenerError(f"{address[0]}:{address[1]} is this sidecar's own listener")
        return protocol
