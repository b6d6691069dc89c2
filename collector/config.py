"""The collector's configuration: every default of ``sidetrace collector`` is written here.

Light on purpose: the CLI reads these defaults for every command's ``--help``, so
importing this module must not import gRPC, Starlette or the ClickHouse driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.tiering import TieringConfig
from tracestore.migrate import Retention
from tracestore.span_limits import Limits

MAX_CONNECTION_AGE_S = 300.0  # clients reconnect, so they rebalance over replicas
MAX_CONNECTION_AGE_GRACE_S = 30.0
STOP_TIMEOUT_S = 30.0  # seconds to flush on SIGTERM


@dataclass(frozen=True)
class WriterConfig:
    batch_rows: int = 50_000
    batch_bytes: int = 16 << 20  # spooled request bytes a batch: wide spans' memory bound
    batch_seconds: float = 2.0
    first_backoff: float = 0.25
    max_backoff: float = 8.0
    orphan_insert_wait: float = 60.0
    dead_letter_max_bytes: int = 256 << 20
    compiled_decoder: bool = True  # tracestore/_otlpdecode.c where built; False: the Python one


@dataclass(frozen=True)
class CollectorConfig:
    host: str = "127.0.0.1"
    grpc_port: int | None = 4317
    http_port: int | None = 4318
    admin_port: int | None = 13133
    spool_dir: str = "./data/spool"
    spool_max_bytes: int = 1 << 30
    spool_fsync: str = "always"
    max_message_bytes: int = 8 << 20  # with 16 requests at once: bounded memory
    writer: WriterConfig = field(default_factory=WriterConfig)
    limits: Limits = field(default_factory=Limits)
    retention: Retention = field(default_factory=Retention)
    auth_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    grpc_workers: int = 8
    header_timeout_s: float = 10.0  # OTLP/HTTP: each request's headers; gRPC: the handshake
    read_timeout_s: float = 30.0  # an OTLP/HTTP body or a gRPC message, from the call's start
    max_connection_age_s: float = MAX_CONNECTION_AGE_S  # clients rebalance over replicas
    max_connection_age_grace_s: float = MAX_CONNECTION_AGE_GRACE_S
    retention_interval_s: float = 3600.0
    coordinator: str | None = None  # zk://…: elect one replica for the rollup and retention jobs
    tiering: TieringConfig | None = None  # retention tiers (collector/tiering.py); None: off
