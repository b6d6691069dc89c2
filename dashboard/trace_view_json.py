"""The trace view's columnar JSON (``/api/v1/traces/{id}/view``).

One array per field, in start order, with services, operations, kinds and status codes
as indexes into a string table and each parent as the index of its row: a 100k-span
trace is a few MB instead of tens, built without an object per span. The browser derives
the tree, self times, critical path, clock skew and statistics from these columns
(trace_analysis.js, checked against ``dashboard.trace_analysis``); attributes, events and
links are fetched per span (``span_record_json``).
"""

from __future__ import annotations

from typing import Any

from dashboard.trace_json import left_out_reason
from tracestore.trace_queries import SPAN_KINDS, STATUS_CODES
from tracestore.trace_view_queries import TraceOutline

ROOT, MISSING = -1, -2  # ``parent`` of a span without a parent id / whose parent is not here


def trace_view_json(outline: TraceOutline, max_spans: int) -> dict[str, Any]:
    c = outline.columns
    starts = [int(v) for v in c["start_ns"]]
    durations = [int(v) for v in c["duration_ns"]]
    n = len(starts)
    start = min(starts, default=outline.bounds[0])
    end = max(map(sum, zip(starts, durations, strict=True)), default=outline.bounds[1])
    row = {span_id: k for k, span_id in enumerate(c["span_id"])}
    parents = [
        ROOT if not p else (MISSING if p == s else row.get(p, MISSING))
        for s, p in zip(c["span_id"], c["parent_span_id"], strict=True)
    ]
    strings: dict[str, int] = {}

    def refs(values: Any) -> list[int]:
        return [strings.setdefault(v, len(strings)) for v in values]

    kinds = refs(SPAN_KINDS.get(int(k), str(k)) for k in c["kind"])
    status = refs(STATUS_CODES.get(int(k), str(k)) for k in c["status_code"])
    left_out = max(0, outline.span_count - n)
    return {
        "traceId": outline.trace_id,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "durationNs": end - start,
        "spanCount": n,
        "totalSpans": max(outline.span_count, n),
        "leftOut": left_out,
        "leftOutReason": left_out_reason(left_out, max_spans),
        "spans": {
            "spanId": list(c["span_id"]),
            "parent": parents,
            "service": refs(c["service"]),
            "name": refs(c["name"]),
            "kind": kinds,
            "status": status,
            "offsetNs": [s - start for s in starts],
            "durationNs": durations,
        },
        "strings": list(strings),
    }
