"""The collector as one object: receivers → spool → writer → ClickHouse, plus admin.

``Collector(store, CollectorConfig).start()`` applies pending migrations, opens
(and replays) the spool, and starts the writer, the rollup and retention jobs,
and the gRPC, HTTP and admin listeners. ``stop(timeout)`` stops receiving first,
then lets the writer flush what was acknowledged, then stops the rest.
A port of ``None`` leaves that listener off.
"""

from __future__ import annotations

import logging
import threading

from collector import admin, http_receiver
from collector.config import CollectorConfig
from collector.edge_rollup import JOB as EDGE_JOB
from collector.grpc_receiver import GrpcReceiver
from collector.http_serving import BackgroundServer
from collector.ingest import Ingest
from collector.retention import JOB as RETENTION_JOB
from collector.retention import start_retention_job
from collector.rollup_jobs import start_rollup_jobs
from collector.spool import Spool
from collector.stats import Stats
from collector.tiering import JOB as TIERING_JOB
from collector.tiering import start_tiering_job
from collector.writer import Writer
from runtime.coordination import Coordinator, open_leaderships
from runtime.tls_files import KeyPairFiles
from tracestore.migrate import migrate
from tracestore.store import Store

log = logging.getLogger(__name__)


class Collector:
    """Receivers, spool, writer and side jobs with one start and one stop."""

    def __init__(self, store: Store, config: CollectorConfig | None = None) -> None:
        self.store = store
        self.config = config or CollectorConfig()
        self.stats = Stats()
        self.spool: Spool | None = None
        self.writer: Writer | None = None
        self.grpc: GrpcReceiver | None = None
        self.http: BackgroundServer | None = None
        self.admin: BackgroundServer | None = None
        self._stop_jobs = threading.Event()
        self._coordinator: Coordinator | None = None
        self._receiving = False

    def start(self) -> None:
        """Non-blocking: everything runs on background threads."""
        cfg = self.config
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise ValueError("TLS needs both a certificate and a key")
        migrate(self.store, cfg.retention)
        self.spool = Spool(cfg.spool_dir, max_bytes=cfg.spool_max_bytes, fsync=cfg.spool_fsync)
        spool = self.spool
        self.stats.gauge("spool_pending_bytes", lambda: spool.pending_bytes)
        self.stats.gauge("spool_disk_bytes", lambda: spool.disk_bytes)
        self.writer = Writer(self.store, spool, cfg.limits, self.stats, cfg.writer)
        self.writer.start()
        jobs = (EDGE_JOB, RETENTION_JOB, *((TIERING_JOB,) if cfg.tiering else ()))
        self._coordinator, leaders = open_leaderships(cfg.coordinator, jobs, "collector")
        if cfg.tiering is not None:
            start_tiering_job(self.store, self._stop_jobs, cfg.tiering, leaders[TIERING_JOB])
        start_rollup_jobs(self.store, self._stop_jobs, leadership=leaders[EDGE_JOB])
        start_retention_job(
            self.store,
            cfg.retention,
            self._stop_jobs,
            cfg.retention_interval_s,
            leadership=leaders[RETENTION_JOB],
        )
        if cfg.admin_port is not None:
            self.admin = BackgroundServer(
                admin.create_app(self.stats, self.ready), cfg.host, cfg.admin_port, "admin"
            )
            self.admin.start()
        ingest = Ingest(spool, cfg.limits, self.stats, cfg.auth_token, cfg.writer.compiled_decoder)
        if cfg.grpc_port is not None:
            tls = KeyPairFiles(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
            self.grpc = GrpcReceiver(
                ingest,
                cfg.host,
                cfg.grpc_port,
                cfg.max_message_bytes,
                workers=cfg.grpc_workers,
                tls=tls,
                max_connection_age_s=cfg.max_connection_age_s,
                max_connection_age_grace_s=cfg.max_connection_age_grace_s,
                read_timeout=cfg.read_timeout_s,
                handshake_timeout=cfg.header_timeout_s,
            )
            self.grpc.start()
        if cfg.http_port is not None:
            self.http = BackgroundServer(
                http_receiver.create_app(ingest, cfg.max_message_bytes, cfg.read_timeout_s),
                cfg.host,
                cfg.http_port,
                "otlp-http",
                certfile=cfg.tls_cert,
                keyfile=cfg.tls_key,
                header_timeout=cfg.header_timeout_s,
            )
            self.http.start()
        self._receiving = True
        log.info("collector started (spool %s)", cfg.spool_dir)

    def ready(self) -> tuple[bool, str]:
        """Ready to take traffic: receiving, spool under 90% full."""
        if not self._receiving:
            return False, "not receiving"
        if self.spool is not None and self.spool.is_full(self.spool.max_bytes // 10):
            return False, "spool full"
        return True, "ready"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop receiving, flush the spool to ClickHouse, stop. True if fully flushed."""
        self._receiving = False
        if self.grpc is not None:
            self.grpc.stop(grace=min(5.0, timeout / 4))
        if self.http is not None:
            self.http.stop(timeout=min(10.0, timeout / 4))
        flushed = self.writer.stop(timeout) if self.writer is not None else True
        self._stop_jobs.set()
        if self._coordinator is not None:
            self._coordinator.close()
            self._coordinator = None
        if self.admin is not None:
            self.admin.stop()
        if self.spool is not None:
            self.spool.close()
        log.info("collector stopped (%s)", "flushed" if flushed else "spool kept for replay")
        return flushed
