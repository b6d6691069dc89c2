"""The sidecar's span and metric exporters for an ``ExportTarget``, by protocol.

Both kinds send requests that ``sidecar.otlp_encode`` already wrote as wire bytes.
OTLP/gRPC (``sidecar.otlp_grpc_export``) wraps the OpenTelemetry exporter package
and so loads grpcio and protobuf; OTLP/HTTP (``sidecar.otlp_http_export``) needs
the standard library only. Each is imported only when chosen, so a sidecar that
exports over HTTP and proxies no gRPC never carries grpcio's memory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sidecar.export_target import HTTP_PROTOBUF, ExportTarget


@dataclass(frozen=True)
class ExportFailure:
    """Why the last export call failed: a short reason for counters and a sentence for logs."""

    reason: str  # "unauthenticated", "tls", or the gRPC status / HTTP reason in lowercase
    explanation: str


class ExportResult(enum.Enum):
    """What an export call returns (``.name`` as the SDK's result enums)."""

    SUCCESS = 0
    FAILURE = 1


def exporters(
    target: ExportTarget, timeout_s: float, max_connection_age_s: float
) -> tuple[Any, Any]:
    """Span and metric exporters for ``target``; nothing is left to the environment.

    The span exporter has ``export(EncodedSpans)``, ``last_failure`` and ``shutdown()``;
    the metric exporter ``export_request(bytes)`` and ``shutdown()``. Over HTTP each
    reconnects after ``max_connection_age_s``; over gRPC the collector ends connections.
    """
    if target.protocol == HTTP_PROTOBUF:
        from sidecar.otlp_http_export import HttpExporter

        return (
            HttpExporter(target, target.traces_path, timeout_s, max_connection_age_s),
            HttpExporter(target, target.metrics_path, timeout_s, max_connection_age_s),
        )
    from sidecar.otlp_grpc_export import grpc_exporters

    return grpc_exporters(target, timeout_s)
