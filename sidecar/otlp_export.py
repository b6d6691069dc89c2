"""The OpenTelemetry OTLP/gRPC exporters, fed requests that are already encoded.

Channel handling, headers, compression, retry with exponential backoff on
transient errors and the timeout all stay the exporter package's; only the
translation step is skipped because ``sidecar.otlp_encode`` did it in bulk.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class EncodedSpanExporter(OTLPSpanExporter):
    """``export(request)`` takes an ``ExportTraceServiceRequest``."""

    def _translate_data(self, data: ExportTraceServiceRequest) -> ExportTraceServiceRequest:  # type: ignore[override]
        return data

    def _count_data(self, data: ExportTraceServiceRequest) -> int:  # type: ignore[override]
        return sum(len(s.spans) for r in data.resource_spans for s in r.scope_spans)


class EncodedMetricExporter(OTLPMetricExporter):
    """``export_request(request)`` takes an ``ExportMetricsServiceRequest``."""

    def _translate_data(self, data: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest:  # type: ignore[override]
        return data

    def _count_data(self, data: ExportMetricsServiceRequest) -> int:  # type: ignore[override]
        return sum(len(s.metrics) for r in data.resource_metrics for s in r.scope_metrics)

    def export_request(self, request: ExportMetricsServiceRequest):
        return self._export(request)
