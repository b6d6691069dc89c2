"""sidetrace's own JSON for a trace and for search results (``/api/v1/...``).

Absolute times are strings of Unix nanoseconds (they exceed JavaScript's exact
integers); offsets from the trace start and durations are plain numbers.
"""

from __future__ import annotations

import math
from typing import Any

from dashboard.trace_analysis import Analysis, analyze
from tracestore.trace_queries import (
    SPAN_KINDS,
    STATUS_CODES,
    Attribute,
    Span,
    Trace,
    TraceSummary,
)


def json_double(value: Any) -> Any:
    """A value JSON can carry: NaN and ±Inf become proto3 JSON's "NaN" / "Infinity" text.

    Strict JSON has no literal for them, and an encoder refusing one would turn a
    whole trace into a 500; OTLP's JSON encoding spells them as these strings.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def attributes_json(attrs: list[Attribute]) -> list[dict[str, Any]]:
    return [{"key": a.key, "value": json_double(a.typed())} for a in attrs]


def span_record_json(span: Span, trace_start_ns: int) -> dict[str, Any]:
    """What is stored of one span (no analysis): also the trace view's per-span detail."""
    return {
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id,
        "traceState": span.trace_state,
        "flags": span.flags,
        "service": span.service,
        "name": span.name,
        "kind": SPAN_KINDS.get(span.kind, str(span.kind)),
        "status": {
            "code": STATUS_CODES.get(span.status_code, str(span.status_code)),
            "message": span.status_message,
        },
        "startTimeUnixNano": str(span.start_ns),
        "offsetNs": span.start_ns - trace_start_ns,
        "durationNs": span.duration_ns,
        "scope": {"name": span.scope_name, "version": span.scope_version},
        "attributes": attributes_json(span.attributes),
        "resource": attributes_json(span.resource),
        "events": [
            {
                "timeUnixNano": str(e["time_ns"]),
                "offsetNs": e["time_ns"] - trace_start_ns,
                "name": e["name"],
                "attributes": attributes_json(e["attributes"]),
            }
            for e in span.events
        ],
        "links": [
            {
                "traceId": lk["trace_id"],
                "spanId": lk["span_id"],
                "traceState": lk["trace_state"],
                "attributes": attributes_json(lk["attributes"]),
            }
            for lk in span.links
        ],
        "dropped": {
            "attributes": span.dropped_attributes,
            "events": span.dropped_events,
            "links": span.dropped_links,
        },
    }


def span_json(span: Span, trace_start_ns: int, analysis: Analysis) -> dict[str, Any]:
    info = analysis.info[span.span_id]
    return {
        **span_record_json(span, trace_start_ns),
        "selfNs": info.self_ns,
        "depth": info.depth,
        "childCount": info.child_count,
        "orphan": info.orphan,
        "critical": info.critical,
        "clockSkew": {
            "startsBeforeParentNs": info.starts_before_parent_ns,
            "endsAfterParentNs": info.ends_after_parent_ns,
        },
    }


def trace_json(trace: Trace, max_spans: int) -> dict[str, Any]:
    """The whole trace in tree order, with statistics and what was left out."""
    analysis = analyze(trace.spans)
    spans = trace.spans
    start = min((s.start_ns for s in spans), default=trace.summary.start_ns)
    end = max((s.end_ns for s in spans), default=trace.summary.end_ns)
    left_out = trace.left_out
    return {
        "traceId": trace.summary.trace_id,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "durationNs": end - start,
        "spanCount": len(spans),
        "totalSpans": max(trace.summary.span_count, len(spans)),
        "leftOut": left_out,
        "leftOutReason": left_out_reason(left_out, max_spans),
        "services": sorted({s.service for s in spans}),
        "errors": sum(1 for s in spans if s.status_code == 2),
        "orphans": analysis.orphans,
        "skewedSpans": analysis.skewed,
        "stats": [
            {
                "service": st.service,
                "name": st.name,
                "count": st.count,
                "totalNs": st.total_ns,
                "selfNs": st.self_ns,
                "errors": st.errors,
            }
            for st in analysis.stats
        ],
        "spans": [span_json(s, start, analysis) for s in analysis.order],
    }


def left_out_reason(left_out: int, max_spans: int) -> str:
    if not left_out:
        return ""
    return f"the trace has more than {max_spans} spans; the earliest {max_spans} are shown"


def summary_json(s: TraceSummary) -> dict[str, Any]:
    return {
        "traceId": s.trace_id,
        "rootService": s.root_service,
        "rootName": s.root_name,
        "startTimeUnixNano": str(s.start_ns),
        "durationNs": s.duration_ns,
        "spanCount": s.span_count,
        "errorCount": s.error_count,
        "services": s.services,
    }
