"""The spans two traces are compared by, in one read by primary key.

Only the tree's columns (ids, names, kind, status, times) are read, for both
traces at once: a comparison never shows attributes, events or links, and they
are most of a span's bytes. Replayed copies of a span are dropped.
"""

from __future__ import annotations

from collections import defaultdict

from tracestore.store import Store
from tracestore.trace_queries import Span, Trace, TraceSummary

_COLUMNS = (
    "trace_id, span_id, parent_span_id, toString(service_name), toString(span_name), "
    "span_kind, status_code, start_ns, duration_ns"
)


def load_skeletons(store: Store, trace_ids: list[str], max_spans: int) -> dict[str, Trace]:
    """Traces by id (those found), each with at most ``max_spans`` spans (the earliest)."""
    rows = store.query(
        f"SELECT * FROM (SELECT {_COLUMNS} FROM spans_by_trace PREWHERE trace_id IN %(ids)s "
        "LIMIT 1 BY trace_id, span_id) ORDER BY trace_id, start_ns, span_id "
        "LIMIT %(cap)s BY trace_id",
        {"ids": tuple(trace_ids), "cap": int(max_spans)},
    )
    spans: dict[str, list[Span]] = defaultdict(list)
    for tid, sid, pid, service, name, kind, status, start, duration in rows:
        spans[tid].append(
            Span(
                tid,
                sid,
                pid,
                "",
                0,
                service,
                name,
                int(kind),
                int(status),
                "",
                "",
                "",
                int(start),
                int(duration),
                [],
                [],
                [],
                [],
            )  # fmt: skip
        )
    return {tid: Trace(_summary(tid, found), found) for tid, found in spans.items()}


def _summary(trace_id: str, spans: list[Span]) -> TraceSummary:
    roots = [s for s in spans if not s.parent_span_id] or spans
    first = min(roots, key=lambda s: s.start_ns)
    return TraceSummary(
        trace_id=trace_id,
        start_ns=min(s.start_ns for s in spans),
        end_ns=max(s.end_ns for s in spans),
        span_count=len(spans),
        error_count=sum(1 for s in spans if s.status_code == 2),
        services=sorted({s.service for s in spans}),
        root_service=first.service,
        root_name=first.name,
    )
