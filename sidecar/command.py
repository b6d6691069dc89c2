"""``sidetrace sidecar``: run the proxy beside one app (flags also read ``SIDETRACE_<FLAG>``)."""

from __future__ import annotations

import argparse
import os

from sidecar.config import SidecarConfig
from sidecar.export_target import ExportConfigError, resolve


def _ports(text: str) -> frozenset[int]:
    return frozenset(int(p) for p in text.replace(" ", "").split(",") if p)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sidecar", help="the tracing proxy beside one app")
    p.add_argument("--app-port", type=int, required=True, help="the app's port on 127.0.0.1")
    p.add_argument(
        "--inbound-port", type=int, default=SidecarConfig.inbound_port, help="inbound listener"
    )
    p.add_argument(
        "--outbound-port",
        type=int,
        default=SidecarConfig.outbound_port,
        help="outbound listener / HTTP proxy",
    )
    p.add_argument(
        "--admin-port", type=int, default=SidecarConfig.admin_port, help="healthz, readyz, metrics"
    )
    p.add_argument(
        "--bind", default=SidecarConfig.bind, help="address of the inbound and admin listeners"
    )
    p.add_argument(
        "--outbound-bind",
        default=SidecarConfig.outbound_bind,
        help="address of the outbound listener",
    )
    p.add_argument(
        "--collector",
        default=None,
        help="OTLP collector [https://|http://]HOST:PORT[/PATH] (else OTEL_EXPORTER_OTLP_ENDPOINT);"
        " OTLP/HTTP (no grpcio loaded) unless OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
    )
    p.add_argument("--collector-ca", default=None, help="CA bundle (PEM) to trust the collector")
    p.add_argument("--collector-token-file", default=None, help="file with the bearer token")
    p.add_argument(
        "--collector-insecure",
        action="store_true",
        default=None,
        help="plaintext to the collector (default: by scheme / OTEL_EXPORTER_OTLP_INSECURE)",
    )
    p.add_argument(
        "--service-name",
        default="",
        help="service.name (default: OTEL_SERVICE_NAME, else unknown_service)",
    )
    p.add_argument("--service-version", default=None, help="service.version")
    p.add_argument("--pod-name", default=None, help="k8s.pod.name (Downward API)")
    p.add_argument("--pod-namespace", default=None, help="k8s.namespace.name (Downward API)")
    p.add_argument("--node-name", default=None, help="k8s.node.name (Downward API)")
    p.add_argument(
        "--grpc-ports",
        type=_ports,
        default=SidecarConfig.grpc_ports,
        help="app ports speaking gRPC",
    )
    p.add_argument(
        "--opaque-ports", type=_ports, default=SidecarConfig.opaque_ports, help="ports piped as TCP"
    )
    p.add_argument("--no-grpc-detect", action="store_true", help="HTTP/2 preface is not gRPC")
    p.add_argument(
        "--sampling-ratio",
        type=float,
        default=SidecarConfig.sampling_ratio,
        help="ratio for new traces",
    )
    p.add_argument("--b3-emit", action="store_true", help="also emit a single b3 header")
    p.add_argument("--trace-probes", action="store_true", help="trace kube-probe/ requests")
    p.add_argument("--route", action="append", default=[], help="http.route template, repeatable")
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=SidecarConfig.max_header_bytes,
        help="larger heads get 431",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=SidecarConfig.header_timeout_s,
        help="seconds to send a head",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=SidecarConfig.idle_timeout_s,
        help="seconds without traffic",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=SidecarConfig.connect_timeout_s,
        help="upstream connect, seconds",
    )
    p.add_argument(
        "--detect-timeout",
        type=float,
        default=SidecarConfig.detect_timeout_s,
        help="protocol sniffing, seconds",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=SidecarConfig.max_connections,
        help="concurrent connections",
    )
    p.add_argument(
        "--drain-grace",
        type=float,
        default=SidecarConfig.drain_grace_s,
        help="seconds to drain on SIGTERM",
    )
    p.add_argument(
        "--metrics-interval",
        type=float,
        default=SidecarConfig.metric_export_interval_s,
        help="OTLP metrics, seconds",
    )
    p.add_argument(
        "--export-timeout",
        type=float,
        default=SidecarConfig.export_timeout_s,
        help="OTLP export, seconds",
    )
    p.add_argument(
        "--collector-max-connection-age",
        type=float,
        default=SidecarConfig.collector_max_connection_age_s,
        help="seconds an OTLP/HTTP export connection serves before the next export reconnects,"
        " ±10 %% (0: never; over gRPC the collector's --max-connection-age decides)",
    )
    p.add_argument(
        "--max-queue", type=int, default=SidecarConfig.max_queue, help="telemetry records queued"
    )
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace, environ=os.environ) -> SidecarConfig:
    resource = {
        "service.version": args.service_version,
        "k8s.pod.name": args.pod_name,
        "k8s.namespace.name": args.pod_namespace,
        "k8s.node.name": args.node_name,
    }
    return SidecarConfig(
        app_port=args.app_port,
        inbound_port=args.inbound_port,
        outbound_port=args.outbound_port,
        admin_port=args.admin_port,
        bind=args.bind,
        outbound_bind=args.outbound_bind,
        collector=args.collector,
        export=resolve(
            args.collector,
            args.collector_ca,
            args.collector_token_file,
            args.collector_insecure,
            environ,
        ),
        service_name=args.service_name,
        resource={k: v for k, v in resource.items() if v},
        grpc_ports=args.grpc_ports,
        opaque_ports=args.opaque_ports,
        grpc_detect=not args.no_grpc_detect,
        sampling_ratio=args.sampling_ratio,
        b3_emit=args.b3_emit,
        trace_probes=args.trace_probes,
        routes=tuple(args.route),
        max_header_bytes=args.max_header_bytes,
        header_timeout_s=args.header_timeout,
        idle_timeout_s=args.idle_timeout,
        connect_timeout_s=args.connect_timeout,
        detect_timeout_s=args.detect_timeout,
        max_connections=args.max_connections,
        drain_grace_s=args.drain_grace,
        max_queue=args.max_queue,
        export_timeout_s=args.export_timeout,
        collector_max_connection_age_s=args.collector_max_connection_age,
        metric_export_interval_s=args.metrics_interval,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from sidecar.app import run_sidecar

    try:
        config = config_from_args(args)
    except ExportConfigError as exc:
        print(f"sidetrace sidecar: {exc}", file=sys.stderr)
        return 2
    run_sidecar(config)
    return 0
