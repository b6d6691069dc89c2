"""The OpenTelemetry OTLP/gRPC exporters, fed requests that are already encoded.

Imported only when the export protocol is ``grpc`` (``sidecar.otlp_export``): it
brings grpcio, the protobuf runtime and the exporter package into the process.

Channel handling, headers, compression, retry with exponential backoff on
transient errors and the timeout all stay the exporter package's; only the
translation step is skipped because ``sidecar.otlp_encode`` did it in bulk.
Spans go out as the request's wire bytes: parsing them into a message only for
gRPC to serialize it again would cost more than encoding them did.

The methods overridden here are the package's private ones (``_translate_data``,
``_count_data``, ``_initialize_channel_and_stub``, ``_export``, ``_client``):
``pyproject.toml`` bounds the package to the versions tested with them.
Each exporter keeps the last failed call's ``ExportFailure`` so the sidecar can
say why an export failed (a refused token, an untrusted certificate).
"""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sidecar.export_target import ExportTarget
from sidecar.otlp_encode import EncodedSpans
from sidecar.otlp_export import ExportFailure

TRACE_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
_TLS_MARKERS = ("handshake", "certificate", "ssl", "tls")


def classify(error: grpc.RpcError, endpoint: str) -> ExportFailure:
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return ExportFailure(
            "unauthenticated",
            f"collector {endpoint} refused the bearer token ({details}): check the token Secret",
        )
    if code == grpc.StatusCode.UNAVAILABLE and any(m in details.lower() for m in _TLS_MARKERS):
        return ExportFailure(
            "tls",
            f"TLS handshake with collector {endpoint} failed (untrusted or mismatched "
            f"certificate? check the CA bundle): {details}",
        )
    return ExportFailure(
        code.name.lower(), f"export to collector {endpoint} failed: {code.name} {details}"
    )


class _RecordingCall:
    """Wraps a stub's ``Export`` to keep the error of a failed call before re-raising it."""

    def __init__(self, call, owner: _FailureRecorder):
        self._call = call
        self._owner = owner

    def __call__(self, *args, **kwargs):
        try:
            return self._call(*args, **kwargs)
        except grpc.RpcError as error:
            self._owner.last_failure = classify(error, self._owner._endpoint)
            raise


class _FailureRecorder:
    """Mixin: ``last_failure`` is the latest failed call's ``ExportFailure``."""

    last_failure: ExportFailure | None = None
    _endpoint: str

    def _wrap_client(self) -> None:
        client = self._client  # type: ignore[attr-defined]
        client.Export = _RecordingCall(client.Export, self)


class _WireStub:
    """A service's ``Export`` sending a request that is already serialized."""

    def __init__(self, channel: grpc.Channel, method: str, response_type) -> None:
        self.Export = channel.unary_unary(
            method, request_serializer=None, response_deserializer=response_type.FromString
        )


class EncodedSpanExporter(_FailureRecorder, OTLPSpanExporter):
    """``export(spans)`` takes ``EncodedSpans``."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()
        self._client = _WireStub(  # type: ignore[assignment]
            self._channel, TRACE_EXPORT_METHOD, ExportTraceServiceResponse
        )
        self._wrap_client()

    def export(self, spans: EncodedSpans, *args, **kwargs):  # type: ignore[override]
        self.last_failure = None
        return super().export(spans, *args, **kwargs)  # type: ignore[arg-type]

    def _translate_data(self, data: EncodedSpans) -> bytes:  # type: ignore[override]
        return data.payload

    def _count_data(self, data: EncodedSpans) -> int:  # type: ignore[override]
        return data.span_count


class EncodedMetricExporter(_FailureRecorder, OTLPMetricExporter):
    """``export_request(request)`` takes an ``ExportMetricsServiceRequest``'s wire bytes."""

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()
        self._client = _WireStub(  # type: ignore[assignment]
            self._channel, METRICS_EXPORT_METHOD, ExportMetricsServiceResponse
        )
        self._wrap_client()

    def _translate_data(self, data: bytes) -> bytes:  # type: ignore[override]
        return data

    def _count_data(self, data: bytes) -> int:  # type: ignore[override]
        return 2  # the request counter and the duration histogram

    def export_request(self, request: bytes):
        return self._export(request)  # type: ignore[arg-type]


def grpc_exporters(
    target: ExportTarget, timeout_s: float
) -> tuple[EncodedSpanExporter, EncodedMetricExporter]:
    """Span and metric exporters for ``target``; nothing is left to the environment."""
    options: dict = {
        "endpoint": target.endpoint,
        "insecure": target.insecure,
        "timeout": timeout_s,
        "headers": target.headers,  # empty: the variables the package reads are empty too
    }
    if not target.insecure:
        options["credentials"] = grpc.ssl_channel_credentials(root_certificates=target.ca_pem())
    return EncodedSpanExporter(**options), EncodedMetricExporter(**options)
