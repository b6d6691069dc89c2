"""The OpenTelemetry OTLP/gRPC exporters, fed requests that are already encoded.

Channel handling, headers, compression, retry with exponential backoff on
transient errors and the timeout all stay the exporter package's; only the
translation step is skipped because ``sidecar.otlp_encode`` did it in bulk.
Spans go out as the request's wire bytes: parsing them into a message only for
gRPC to serialize it again would cost more than encoding them did.
"""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sidecar.otlp_encode import EncodedSpans

TRACE_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _WireTraceStub:
    """``TraceService.Export`` sending a request that is already serialized."""

    def __init__(self, channel: grpc.Channel):
        self.Export = channel.unary_unary(
            TRACE_EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class EncodedSpanExporter(OTLPSpanExporter):
    """``export(spans)`` takes ``EncodedSpans``."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()
        self._client = _WireTraceStub(self._channel)  # type: ignore[assignment]

    def _translate_data(self, data: EncodedSpans) -> bytes:  # type: ignore[override]
        return data.payload

    def _count_data(self, data: EncodedSpans) -> int:  # type: ignore[override]
        return data.count


class EncodedMetricExporter(OTLPMetricExporter):
    """``export_request(request)`` takes an ``ExportMetricsServiceRequest``."""

    def _translate_data(self, data: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest:  # type: ignore[override]
        return data

    def _count_data(self, data: ExportMetricsServiceRequest) -> int:  # type: ignore[override]
        return sum(len(s.metrics) for r in data.resource_metrics for s in r.scope_metrics)

    def export_request(self, request: ExportMetricsServiceRequest):
        return self._export(request)
