"""Spans an app records itself, for calls its sidecar cannot see as what they are.

Two calls in the sample system need this: inventory's queries to a database
that does not exist (an instrumented driver would record them), and orders'
gRPC calls to payments. grpcio reaches an HTTP proxy only by ``CONNECT``, and
the sidecar pipes a ``CONNECT`` tunnel as opaque TCP, so orders records the
gRPC client span itself, as ``opentelemetry-instrumentation-grpc`` would, and
sends its context on to payments, whose sidecar records the server span.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(service: str, collector: str) -> TracerProvider:
    """OTLP/gRPC straight to the collector, batched; ``shutdown()`` flushes it."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=collector, insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider


def inbound_context(headers: Mapping[str, str]) -> Context:
    """The context the app's sidecar handed it in ``traceparent``/``tracestate``."""
    return PROPAGATOR.extract(dict(headers))


def outbound_headers(context: Context | None = None) -> dict[str, str]:
    """``traceparent``/``tracestate`` naming the current (or given) span as the parent."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier
