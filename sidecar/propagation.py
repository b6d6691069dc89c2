"""Continue or start a trace for one proxied request and rewrite its context headers.

The proxy collects the trace headers of a request (lowercase name -> values) and
asks ``Propagator.start`` for the span it should record. ``header_lines`` gives
the header block that replaces them towards the next hop, so the next hop's
parent is the span this sidecar records.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from sidecar._http1scan import new_root_ids
from sidecar.trace_context import (
    format_b3_single,
    format_traceparent,
    format_tracestate,
    parse_b3_multi,
    parse_b3_single,
    parse_traceparent,
    parse_tracestate,
    trace_flags,
)

B3_HEADERS = frozenset(
    ("b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid")
)
W3C_HEADERS = frozenset(("traceparent", "tracestate"))
TRACE_HEADERS = B3_HEADERS | W3C_HEADERS
_MAX_64 = (1 << 64) - 1


class SpanStart(NamedTuple):
    """The span a request gets: ids, its parent ('' for a root) and the sampling decision.
    ``random`` is Trace Context Level 2's flag: the sidecar drew the trace id, or the
    parent said it was drawn at random; it travels on in every later ``traceparent``."""

    trace_id: str
    span_id: str
    parent_id: str
    sampled: bool
    tracestate: str
    had_context: bool
    random: bool


_new_span_start = tuple.__new__  # SpanStart without NamedTuple's Python-level __new__


def span_start(
    trace_id: str, span_id: str, parent_id: str, sampled: bool, random: bool | None = None
) -> SpanStart:
    """The span of a request without tracestate: a new trace's (``parent_id`` empty) or
    a child of the request's traceparent. ``random`` defaults to "a new trace" (its ids
    were drawn here)."""
    drawn = not parent_id if random is None else random
    return _new_span_start(
        SpanStart, (trace_id, span_id, parent_id, sampled, "", bool(parent_id), drawn)
    )


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


class Propagator:
    """Parent-based sampling with a ratio for roots; W3C first, then B3 single, then B3 multi."""

    def __init__(self, sampling_ratio: float = 1.0, b3_emit: bool = False):
        self.sampling_ratio = min(max(sampling_ratio, 0.0), 1.0)
        self._bound = round(self.sampling_ratio * _MAX_64)
        self.b3_emit = b3_emit
        self._bits = random.SystemRandom().getrandbits(64) ^ random.getrandbits(64)
        self._rand = random.Random(self._bits).getrandbits

    def _sample_root(self, trace_id: str) -> bool:
        # Same rule as OpenTelemetry's TraceIdRatioBased: the low 64 bits against ratio * 2^64.
        return self.sampling_ratio >= 1.0 or int(trace_id[16:], 16) < self._bound

    def new_span_id(self) -> str:
        return f"{self._rand(64) or 1:016x}"

    def start(self, headers: dict[str, list[str]]) -> SpanStart:
        """The span for a request carrying ``headers`` (only trace headers are looked at)."""
        if not headers:  # most requests: nothing to parse
            return self._new_root()
        span_id = self.new_span_id()
        parent = parse_traceparent(headers.get("traceparent"))
        if parent is not None:
            tracestate = format_tracestate(parse_tracestate(headers.get("tracestate")))
            return SpanStart(
                parent.trace_id,
                span_id,
                parent.parent_id,
                parent.sampled,
                tracestate,
                True,
                parent.random,
            )
        b3 = parse_b3_single(_first(headers, "b3")) or parse_b3_multi(
            _first(headers, "x-b3-traceid"),
            _first(headers, "x-b3-spanid"),
            _first(headers, "x-b3-sampled"),
            _first(headers, "x-b3-flags"),
        )
        if b3 is not None:
            sampled = self._sample_root(b3.trace_id) if b3.sampled is None else b3.sampled
            return SpanStart(b3.trace_id, span_id, b3.span_id, sampled, "", True, False)
        return self._new_root()

    def _new_root(self) -> SpanStart:
        trace_id, span_id = new_root_ids()
        return span_start(trace_id, span_id, "", self._sample_root(trace_id))

    def root_sample_bound(self) -> int | None:
        """The sampling rule of new traces for ``request_head``: sampled when the low
        64 bits of the trace id are below it (2**64 - 1: always). None when new traces'
        requests need more than a ``traceparent`` (B3 emission)."""
        if self.b3_emit:
            return None
        return _MAX_64 if self.sampling_ratio >= 1.0 else self._bound

    def header_pairs(self, span: SpanStart) -> list[tuple[str, str]]:
        """``traceparent`` (+ ``tracestate``, + ``b3`` when emitting) for the next hop."""
        traceparent = format_traceparent(span.trace_id, span.span_id, span.sampled, span.random)
        pairs = [("traceparent", traceparent)]
        if span.tracestate:
            pairs.append(("tracestate", span.tracestate))
        if self.b3_emit:
            pairs.append(("b3", format_b3_single(span.trace_id, span.span_id, span.sampled)))
        return pairs

    def header_lines(self, span: SpanStart) -> bytes:
        """``header_pairs`` as raw HTTP/1.1 header lines (formatted directly: hot path)."""
        flags = trace_flags(span.sampled, span.random)
        lines = f"traceparent: 00-{span.trace_id}-{span.span_id}-{flags}\r\n"
        if span.tracestate:
            lines += f"tracestate: {span.tracestate}\r\n"
        if self.b3_emit:
            lines += f"b3: {format_b3_single(span.trace_id, span.span_id, span.sampled)}\r\n"
        return lines.encode("latin-1")

    def replaced(self) -> frozenset[str]:
        """Incoming header names dropped because ``header_lines`` re-emits them."""
        return TRACE_HEADERS if self.b3_emit else W3C_HEADERS
