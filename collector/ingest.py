"""What both receivers do with a decoded request: validate, spool, count, answer.

Receivers only decode and check the transport (auth, size, encoding); this is
the one place that turns a request into a spool record, so gRPC and HTTP behave
the same.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.spool import METRICS, TRACES, Spool, SpoolFull
from collector.stats import Stats
from tracestore import compiled_columns
from tracestore.otlp_columns import Limits, Verdict, decode, validate_metrics, validate_traces

__all__ = ["Ingest", "Signal", "SIGNALS", "SpoolFull"]


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its messages, spool kind and counters."""

    name: str
    request: type
    response: type
    kind: int
    received_stat: str
    rejected_stat: str


TRACES_SIGNAL = Signal(
    "traces",
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    TRACES,
    "received_spans_total",
    "rejected_spans_total",
)
METRICS_SIGNAL = Signal(
    "metrics",
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    METRICS,
    "received_metric_points_total",
    "rejected_metric_points_total",
)
SIGNALS = {"traces": TRACES_SIGNAL, "metrics": METRICS_SIGNAL}


class Ingest:
    """Validate → append to the spool → build the (partial success) response."""

    def __init__(
        self,
        spool: Spool,
        limits: Limits,
        stats: Stats,
        auth_token: str | None,
        compiled: bool = True,
    ) -> None:
        self.spool = spool
        self.limits = limits
        self.stats = stats
        self.compiled = compiled and compiled_columns.available()
        self._token = auth_token.encode() if auth_token else None

    def authorized(self, header: str | None) -> bool:
        """True when no token is configured or ``header`` is ``Bearer <token>``.

        The scheme is case-insensitive (RFC 9110 §11.1), so ``bearer`` works too."""
        if self._token is None:
            return True
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    def accept_bytes(self, signal: Signal, raw: bytes):
        """``accept`` for a request's protobuf bytes; raises DecodeError, SpoolFull.

        Traces are checked by the compiled decoder straight from the bytes; only a
        request with spans to drop is decoded into a message (to re-encode it)."""
        if signal is TRACES_SIGNAL and self.compiled:
            now = time.time_ns()
            verdict = compiled_columns.check_traces(raw, self.limits, now)
            if verdict is not None:
                return self._answer(signal, verdict, now)
        return self.accept(signal, decode(signal.request, raw), raw)

    def accept(self, signal: Signal, request, raw: bytes | None):
        """Spool what is valid and return the response message; raises SpoolFull."""
        now = time.time_ns()
        check = validate_traces if signal is TRACES_SIGNAL else validate_metrics
        return self._answer(signal, check(request, raw, self.limits, now), now)

    def _answer(self, signal: Signal, verdict: Verdict, now: int):
        if verdict.accepted:
            try:
                self.spool.append(signal.kind, verdict.accepted, verdict.payload, now)
            except SpoolFull:
                self.stats.add("refused_requests_total", label="spool_full")
                raise
        self.stats.add(signal.received_stat, verdict.accepted)
        response = signal.response()
        if verdict.rejected:
            self.stats.add(signal.rejected_stat, verdict.rejected)
            partial = response.partial_success
            if signal is TRACES_SIGNAL:
                partial.rejected_spans = verdict.rejected
            else:
                partial.rejected_data_points = verdict.rejected
            partial.error_message = verdict.message
        return response
