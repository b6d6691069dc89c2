"""One sidecar process: listeners, gRPC bridge, telemetry, admin, and a graceful stop.

SIGTERM (or ``/shutdown``) stops accepting, lets in-flight requests finish for
the grace period while idle keep-alive connections are closed, then flushes
telemetry and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import sys
import time

from sidecar.admin import AdminServer
from sidecar.cardinality import mesh_key
from sidecar.config import SidecarConfig
from sidecar.export_target import ExportTarget, resolve
from sidecar.http_proxy import DownstreamConnection
from sidecar.lazy_bridge import LazyGrpcBridge
from sidecar.listener import ListenerContext
from sidecar.prometheus_metrics import SidecarCollector, exposition, registry_for
from sidecar.propagation import Propagator
from sidecar.red_metrics import ProxyCounters
from sidecar.resource import resource_attributes
from sidecar.routes import RouteMatcher
from sidecar.telemetry import Telemetry
from sidecar.telemetry_record import CLIENT, SERVER
from sidecar.upstream import UpstreamPool

log = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 0.5
GIL_SWITCH_INTERVAL_S = 0.0002
GC_THRESHOLDS = (50_000, 20, 20)


def export_target(config: SidecarConfig) -> ExportTarget | None:
    """``config.export``, else a plaintext target for a bare ``config.collector``."""
    if config.export is not None:
        return config.export
    return resolve(config.collector, None, None, None, {}) if config.collector else None


def _exporters(config: SidecarConfig):
    """OTLP span and metric exporters; ``(None, None)`` without a collector."""
    target = export_target(config)
    if target is None:
        return None, None
    from sidecar.otlp_export import exporters

    return exporters(target, config.export_timeout_s, config.collector_max_connection_age_s)


class Sidecar:
    """Owns every part of the running sidecar; ``run()`` returns after a graceful stop."""

    def __init__(self, config: SidecarConfig):
        self.config = config
        self.counters = ProxyCounters()
        self.resource = resource_attributes(
            {"service.name": config.service_name, **config.resource}
        )
        span_exporter, metric_exporter = _exporters(config)
        target = export_target(config)
        self.telemetry = Telemetry(
            self.resource,
            self.counters,
            RouteMatcher(config.routes),
            span_exporter=span_exporter,
            metric_exporter=metric_exporter,
            max_queue=config.max_queue,
            interval_s=config.export_interval_s,
            metric_interval_s=config.metric_export_interval_s,
            peer_key=mesh_key(target.headers if target is not None else ()),
        )
        self.propagator = Propagator(config.sampling_ratio, config.b3_emit)
        self.pool = UpstreamPool()
        self.bridge = LazyGrpcBridge(  # grpcio is loaded only once gRPC is proxied
            self.propagator, self.telemetry, self.counters, eager=bool(config.grpc_ports)
        )
        self.contexts: list[ListenerContext] = []
        self.servers: list[asyncio.AbstractServer] = []
        self._stop: asyncio.Event | None = None
        self._metrics_registry = registry_for(
            SidecarCollector(self.telemetry.red, self.counters, self.telemetry.failures.counts)
        )
        self.admin = AdminServer(
            (config.app_host, config.app_port), self.metrics_text, self.request_stop
        )

    def metrics_text(self) -> str:
        return exposition(self._metrics_registry)

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        cfg = self.config
        self.telemetry.start()
        self.bridge.start()
        for kind, host, port in (
            (SERVER, cfg.bind, cfg.inbound_port),
            (CLIENT, cfg.outbound_bind, cfg.outbound_port),
        ):
            ctx = ListenerContext(
                cfg,
                kind,
                self.propagator,
                self.telemetry,
                self.counters,
                self.pool,
                loop,
                self.bridge,
            )
            self.contexts.append(ctx)
            server = await loop.create_server(
                functools.partial(DownstreamConnection, ctx),
                host,
                port,
                backlog=1024,
                reuse_address=True,
            )
            self.servers.append(server)
        self.servers.append(await asyncio.start_server(self.admin.handle, cfg.bind, cfg.admin_port))
        loop.create_task(self._sweep())
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, self.request_stop)
        target = export_target(cfg)
        log.info(
            "sidecar up: inbound :%d -> app :%d, outbound :%d, admin :%d, collector %s%s",
            cfg.inbound_port, cfg.app_port, cfg.outbound_port, cfg.admin_port,
            target.endpoint if target else None,
            "" if target is None else " (plaintext)" if target.insecure else " (TLS)",
        )  # fmt: skip

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            for ctx in self.contexts:
                ctx.sweep()

    async def run(self) -> None:
        await self.start()
        # Everything alive now lives until exit: keep it out of the collector's scans, and
        # collect less often (per-request objects are freed by reference counting).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        assert self._stop is not None
        await self._stop.wait()
        await self.drain()

    async def drain(self) -> None:
        """Stop accepting, finish in-flight requests within the grace period, flush, return."""
        log.info("sidecar draining (grace %.1fs)", self.config.drain_grace_s)
        for server in self.servers:
            server.close()
        for ctx in self.contexts:
            ctx.draining = True
            ctx.sweep()
        deadline = time.monotonic() + self.config.drain_grace_s
        while time.monotonic() < deadline and any(c.connections for c in self.contexts):
            await asyncio.sleep(0.05)
            for ctx in self.contexts:
                ctx.sweep()
        for ctx in self.contexts:
            for conn in list(ctx.connections):
                conn.transport.abort()
        self.pool.close_all()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.bridge.stop, 1.0)
        await loop.run_in_executor(None, self.telemetry.stop, 10.0)
        log.info(
            "sidecar stopped: %d spans exported, %d dropped",
            self.counters.spans_exported_total,
            self.counters.spans_dropped_total,
        )


def run_sidecar(config: SidecarConfig) -> None:
    """Run on uvloop until SIGTERM/SIGINT or ``/shutdown``."""
    import uvloop

    # The telemetry thread encodes in bulk; a short switch interval bounds how long
    # the event loop can wait for the GIL behind it (the default is 5 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(Sidecar(config).run())
