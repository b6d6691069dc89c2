"""Everything one sidecar process is told, with the defaults of ``sidetrace sidecar``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.export_target import ExportTarget

# Ports where the server speaks first (SMTP, FTP, SSH, POP3, IMAP, MySQL, ...):
# waiting for the client's first bytes would stall them, so they are piped at once.
SERVER_FIRST_PORTS = frozenset((21, 22, 25, 110, 143, 465, 587, 993, 995, 3306, 4222, 5222))


PROXY_UID = 1337  # the sidecar's user: the redirect exempts its own traffic

# Seconds an OTLP/HTTP export connection serves before the next export opens a new one
# (±10 % per connection), so sidecars spread over collector replicas the autoscaler adds.
# The same as the collector's --max-connection-age (collector.config.MAX_CONNECTION_AGE_S,
# which only gRPC clients obey); kept equal by hand, as the sidecar must not import the
# collector.
COLLECTOR_MAX_CONNECTION_AGE_S = 300.0


@dataclass
class SidecarConfig:
    app_port: int
    inbound_port: int = 15006
    outbound_port: int = 15001
    admin_port: int = 15020
    bind: str = "0.0.0.0"
    outbound_bind: str = "127.0.0.1"
    app_host: str = "127.0.0.1"
    collector: str | None = None  # a bare HOST:PORT, plaintext (see ``export``)
    export: ExportTarget | None = None  # TLS, CA and headers; wins over ``collector``
    service_name: str = ""  # "": OTEL_SERVICE_NAME, else unknown_service (sidecar.resource)
    resource: dict[str, str] = field(default_factory=dict)
    grpc_ports: frozenset[int] = frozenset()
    grpc_detect: bool = True  # the HTTP/2 preface on other ports means gRPC too
    opaque_ports: frozenset[int] = frozenset()
    server_first_ports: frozenset[int] = SERVER_FIRST_PORTS
    sampling_ratio: float = 1.0
    b3_emit: bool = False
    trace_probes: bool = False
    routes: tuple[str, ...] = ()
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    connect_timeout_s: float = 5.0
    detect_timeout_s: float = 0.2
    max_connections: int = 4096
    drain_grace_s: float = 20.0
    max_queue: int = 65536
    export_interval_s: float = 0.2
    export_timeout_s: float = 10.0
    collector_max_connection_age_s: float = COLLECTOR_MAX_CONNECTION_AGE_S  # 0: never
    metric_export_interval_s: float = 15.0
