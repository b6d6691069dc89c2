"""The gRPC bridge, made when first needed: grpcio is loaded only if gRPC is proxied.

grpcio (its core library, threads and arenas) is most of an idle sidecar's memory.
With declared ``--grpc-ports`` the bridge starts with the sidecar; otherwise it
starts when a connection first turns out to be gRPC (the HTTP/2 preface), which
delays that one connection by the bridge's start-up (tens of milliseconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.propagation import Propagator
from sidecar.red_metrics import ProxyCounters
from sidecar.telemetry import Telemetry

if TYPE_CHECKING:
    from sidecar.grpc_proxy import GrpcBridge

Address = tuple[str, int]


class LazyGrpcBridge:
    """``GrpcBridge``'s interface to the listeners; the bridge exists once ``port`` is read."""

    def __init__(
        self, propagator: Propagator, telemetry: Telemetry, counters: ProxyCounters, eager: bool
    ) -> None:
        self._args = (propagator, telemetry, counters)
        self._eager = eager
        self._bridge: GrpcBridge | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        return self._bridge is not None

    def _get(self) -> GrpcBridge:
        if self._bridge is None:
            if self._stopped:
                raise RuntimeError("the sidecar is stopping: no gRPC bridge")
            from sidecar.grpc_proxy import GrpcBridge

            self._bridge = GrpcBridge(*self._args)
            self._bridge.start()
        return self._bridge

    def start(self) -> None:
        if self._eager:
            self._get()

    @property
    def port(self) -> int:
        return self._get().port

    def register(self, local_port: int, kind: int, target: Address | None, client: Address) -> None:
        self._get().register(local_port, kind, target, client)

    def unregister(self, local_port: int) -> None:
        if self._bridge is not None:
            self._bridge.unregister(local_port)

    def stop(self, grace: float) -> None:
        self._stopped = True
        if self._bridge is not None:
            self._bridge.stop(grace)
