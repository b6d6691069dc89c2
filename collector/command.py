"""``sidetrace collector``: OTLP receivers → spool → ClickHouse, until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from collector.config import (
    MAX_CONNECTION_AGE_GRACE_S,
    MAX_CONNECTION_AGE_S,
    STOP_TIMEOUT_S,
    CollectorConfig,
    WriterConfig,
)
from collector.tiering import LatencyRule, TieringConfig
from runtime.coordination import CoordinatorError, add_coordinator_flag, parse_coordinator_url
from tracestore.migrate import Retention
from tracestore.span_limits import Limits
from tracestore.store import add_clickhouse_flag, open_store

MB = 1 << 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("collector", help="OTLP receivers → spool → ClickHouse")
    add_clickhouse_flag(parser)
    add = parser.add_argument
    add("--host", default=CollectorConfig.host, help="address to listen on (0.0.0.0 in a cluster)")
    add("--grpc-port", type=int, default=CollectorConfig.grpc_port, help="OTLP/gRPC port")
    add("--http-port", type=int, default=CollectorConfig.http_port, help="OTLP/HTTP port")
    add(
        "--admin-port",
        type=int,
        default=CollectorConfig.admin_port,
        help="/healthz, /readyz, /metrics port",
    )
    add("--spool-dir", default=CollectorConfig.spool_dir, help="directory of the disk spool")
    add(
        "--spool-max-mb",
        type=int,
        default=CollectorConfig.spool_max_bytes // MB,
        help="spool limit; beyond it clients back off",
    )
    add(
        "--spool-fsync",
        default=CollectorConfig.spool_fsync,
        choices=["always", "interval", "never"],
        help="always: fsync before acknowledging (group commit)",
    )
    add("--batch-rows", type=int, default=WriterConfig.batch_rows, help="rows per INSERT at most")
    add(
        "--batch-mb",
        type=int,
        default=WriterConfig.batch_bytes // MB,
        help="spooled request bytes per INSERT at most (bounds memory for wide spans)",
    )
    add(
        "--batch-seconds",
        type=float,
        default=WriterConfig.batch_seconds,
        help="oldest row waits at most this long",
    )
    add(
        "--max-message-mb",
        type=int,
        default=CollectorConfig.max_message_bytes // MB,
        help="largest request accepted",
    )
    add(
        "--max-attribute-length",
        type=int,
        default=Limits.max_attribute_length,
        help="longer values are truncated",
    )
    add(
        "--timestamp-policy",
        default=Limits.timestamp_policy,
        choices=["clamp", "reject"],
        help="what to do with start times outside the window",
    )
    add(
        "--max-past-seconds",
        type=float,
        default=Limits.max_past_s,
        help="oldest accepted start time",
    )
    add(
        "--max-future-seconds",
        type=float,
        default=Limits.max_future_s,
        help="latest accepted start time",
    )
    add("--auth-token", default=None, help="require 'Authorization: Bearer TOKEN'")
    add("--tls-cert", default=None, help="PEM certificate: serve gRPC and HTTP over TLS")
    add("--tls-key", default=None, help="PEM private key for --tls-cert")
    add(
        "--max-connection-age",
        type=float,
        default=MAX_CONNECTION_AGE_S,
        help="seconds before a gRPC client is asked to reconnect (0: never)",
    )
    add(
        "--max-connection-age-grace",
        type=float,
        default=MAX_CONNECTION_AGE_GRACE_S,
        help="seconds running calls get after that",
    )
    add(
        "--header-timeout",
        type=float,
        default=CollectorConfig.header_timeout_s,
        help="seconds a client has to send an OTLP/HTTP request's headers (then 408),"
        " or to finish the TLS and HTTP/2 handshake on gRPC",
    )
    add(
        "--read-timeout",
        type=float,
        default=CollectorConfig.read_timeout_s,
        help="seconds a client has to send an OTLP/HTTP body or a gRPC message",
    )
    add("--stop-timeout", type=float, default=STOP_TIMEOUT_S, help="seconds to flush on SIGTERM")
    add(
        "--python-decoder",
        action="store_true",
        help="check and convert spans with the Python decoder, not the compiled one",
    )
    add(
        "--tiering",
        action="store_true",
        help="retention tiers: every span for --hot-retention, then only the traces worth keeping",
    )
    add(
        "--hot-retention",
        type=float,
        default=TieringConfig.hot_retention_s / 3600,
        help="hours every span is kept, with --tiering",
    )
    add(
        "--kept-retention",
        type=int,
        default=Retention.kept,
        help="days the kept traces are kept, with --tiering",
    )
    add(
        "--keep-baseline",
        type=float,
        default=TieringConfig.keep_baseline * 100,
        help="percent of traces kept regardless (by trace-id hash), with --tiering",
    )
    add(
        "--settle-seconds",
        type=float,
        default=TieringConfig.settle_s,
        help="a trace with no new span this long is decided, with --tiering",
    )
    add(
        "--slo",
        action="append",
        default=[],
        metavar="FILE",
        help="SLO file whose latency thresholds mark traces to keep, with --tiering (repeatable)",
    )
    add_coordinator_flag(parser)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    return CollectorConfig(
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        admin_port=args.admin_port,
        spool_dir=args.spool_dir,
        spool_max_bytes=args.spool_max_mb * MB,
        spool_fsync=args.spool_fsync,
        max_message_bytes=args.max_message_mb * MB,
        writer=WriterConfig(
            batch_rows=args.batch_rows,
            batch_bytes=args.batch_mb * MB,
            batch_seconds=args.batch_seconds,
            compiled_decoder=not args.python_decoder,
        ),
        limits=Limits(
            max_attribute_length=args.max_attribute_length,
            max_past_s=args.max_past_seconds,
            max_future_s=args.max_future_seconds,
            timestamp_policy=args.timestamp_policy,
        ),
        auth_token=args.auth_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_connection_age_s=args.max_connection_age,
        max_connection_age_grace_s=args.max_connection_age_grace,
        header_timeout_s=args.header_timeout,
        read_timeout_s=args.read_timeout,
        coordinator=args.coordinator,
        retention=Retention(kept=args.kept_retention),
        tiering=tiering_from_args(args) if args.tiering else None,
    )


def slo_rules(paths: list[str]) -> tuple[LatencyRule, ...]:
    """The latency thresholds of the SLO files, for the tiering decision.

    The SLO file model belongs to the dashboard; it is read here, in the collector's
    command (a composition root), only when tiering is given SLO files.
    """
    if not paths:
        return ()
    from slospec.slo_config import SloConfigError, parse_file

    try:
        files = [parse_file(path) for path in paths]
    except SloConfigError as exc:  # names every problem, FILE:LINE: FIELD: message
        raise ValueError(str(exc)) from None
    return tuple(
        LatencyRule(
            service=slo.filters.service,
            threshold_ns=int(slo.threshold_ns),
            operation=slo.filters.operation,
            route=slo.filters.route,
            span_kind=slo.filters.span_kind,
        )
        for slo_file in files
        for slo in slo_file.slos
    )


def tiering_from_args(args: argparse.Namespace) -> TieringConfig:
    """Raises ValueError with a message: windows, baseline or an SLO file out of order."""
    hot_s = args.hot_retention * 3600
    if hot_s >= Retention.spans * 86_400:
        raise ValueError(
            f"--hot-retention {args.hot_retention:g} h must be under the spans' "
            f"{Retention.spans}-day retention"
        )
    return TieringConfig(
        hot_retention_s=hot_s,
        keep_baseline=args.keep_baseline / 100,
        settle_s=args.settle_seconds,
        rules=slo_rules(args.slo),
    )


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.coordinator:
            parse_coordinator_url(args.coordinator)
        config = config_from_args(args)
    except (CoordinatorError, ValueError) as exc:
        print(f"sidetrace collector: {exc}", file=sys.stderr)
        return 2
    from collector.freed_memory import keep_freed_memory
    from collector.service import Collector  # gRPC and Starlette: only when it runs

    keep_freed_memory()
    collector = Collector(open_store(args.clickhouse), config)
    try:
        collector.start()
    except OSError as exc:  # a port in use, an unreadable certificate, a read-only spool
        print(f"sidetrace collector: {exc}", file=sys.stderr)
        collector.stop(5)
        return 2
    print(
        f"collector ready: grpc :{args.grpc_port} http :{args.http_port} admin :{args.admin_port}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    collector.stop(args.stop_timeout)
    return 0
