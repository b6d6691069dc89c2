"""The state one proxy listener (inbound or outbound) shares with all its connections.

Built once per listener from the sidecar's configuration, so a connection reads
precomputed values (the peer field line, the trace fields the propagator replaces, the
settings every ``Lane`` shares) instead of working them out per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar.cardinality import peer_header_value
from sidecar.config import SidecarConfig
from sidecar.http_headers import PEER_HEADER
from sidecar.propagation import Propagator
from sidecar.red_metrics import ProxyCounters
from sidecar.telemetry import Telemetry
from sidecar.telemetry_record import CLIENT, LANE_RECORDS, SERVER
from sidecar.upstream import UpstreamPool

if TYPE_CHECKING:
    from sidecar.http_proxy import DownstreamConnection
    from sidecar.lazy_bridge import LazyGrpcBridge


@dataclass
class ListenerContext:
    """State shared by every connection of one listener (inbound or outbound)."""

    config: SidecarConfig
    kind: int  # SERVER for inbound, CLIENT for outbound
    propagator: Propagator
    telemetry: Telemetry
    counters: ProxyCounters
    pool: UpstreamPool
    loop: asyncio.AbstractEventLoop
    grpc_bridge: LazyGrpcBridge | None = None
    connections: set[DownstreamConnection] = field(default_factory=set)
    now: float = 0.0  # coarse monotonic clock, advanced by the sweeper
    draining: bool = False
    peer_line: bytes = b""
    replaced_names: frozenset[bytes] = frozenset()
    root_extra: bytes = b""  # fields a fast-path request gets besides its traceparent
    root_sample_bound: int | None = None  # new traces' sampling; None: no fast path
    skip_probes: bool = False
    lane_settings: tuple | None = None  # what every Lane of this listener shares
    own_ports: frozenset[int] = frozenset()  # this sidecar's listeners: never a destination

    def __post_init__(self) -> None:
        self.now = time.monotonic()
        cfg = self.config
        self.own_ports = frozenset((cfg.inbound_port, cfg.outbound_port, cfg.admin_port))
        service = self.telemetry.resource_attributes["service.name"]
        peer = peer_header_value(service, self.telemetry.peer_key)
        self.peer_line = PEER_HEADER + b": " + peer.encode() + b"\r\n"
        self.replaced_names = frozenset(n.encode() for n in self.propagator.replaced())
        self.root_extra = self.peer_line if self.kind == CLIENT else b""
        self.root_sample_bound = self.propagator.root_sample_bound()
        self.skip_probes = self.kind == SERVER and not self.config.trace_probes
        if self.root_sample_bound is not None:
            append, queue, max_queue = self.telemetry.queue_handles()
            self.lane_settings = (
                append, queue, max_queue, self.counters, self.root_extra,
                self.root_sample_bound, self.skip_probes, self.config.max_header_bytes,
                self.kind, LANE_RECORDS,
            )  # fmt: skip

    def untraced_probe(self, user_agent: bytes) -> bool:
        """A kubelet probe to the app, which is not traced unless asked for."""
        return self.skip_probes and user_agent.startswith(b"kube-probe/")

    def sweep(self) -> None:
        """Enforce header, idle and keep-alive deadlines (called twice a second)."""
        self.now = now = time.monotonic()
        for conn in list(self.connections):
            conn.check_deadline(now)
