"""The trace view's columnar JSON (``/api/v1/traces/{id}/view``).

One array per field, in tree order, with services, operations, kinds and status codes as
indexes into a string table: a 100k-span trace is a few MB instead of tens, and the
browser reads arrays instead of building 100k objects. Attributes, events and links are
not here; the view fetches them per span (``span_record_json``).
"""

from __future__ import annotations

from typing import Any

from dashboard.trace_analysis import analyze
from dashboard.trace_json import trace_overview_json
from tracestore.trace_queries import SPAN_KINDS, STATUS_CODES, Trace

ORPHAN, CRITICAL = 1, 2  # bits of the ``flags`` column (trace.js reads the same)


def trace_view_json(trace: Trace, max_spans: int) -> dict[str, Any]:
    """The overview (as in ``trace_json``), a string table and the span columns.

    ``parent`` is the parent's row (-1 for a root or a span whose parent is missing);
    ``skew`` maps a row to [starts before, ends after] its parent, for skewed rows only.
    """
    analysis = analyze(trace.spans)
    overview = trace_overview_json(trace, analysis, max_spans)
    start = int(overview["startTimeUnixNano"])
    strings: dict[str, int] = {}

    def ref(text: str) -> int:
        return strings.setdefault(text, len(strings))

    row = {s.span_id: k for k, s in enumerate(analysis.order)}
    names = ("spanId", "parent", "service", "name", "kind", "status", "offsetNs",
             "durationNs", "selfNs", "depth", "childCount", "flags")  # fmt: skip
    cols: dict[str, list[Any]] = {name: [] for name in names}
    skew: dict[int, list[int]] = {}
    for k, s in enumerate(analysis.order):
        info = analysis.info[s.span_id]
        cols["spanId"].append(s.span_id)
        cols["parent"].append(-1 if info.orphan else row.get(s.parent_span_id, -1))
        cols["service"].append(ref(s.service))
        cols["name"].append(ref(s.name))
        cols["kind"].append(ref(SPAN_KINDS.get(s.kind, str(s.kind))))
        cols["status"].append(ref(STATUS_CODES.get(s.status_code, str(s.status_code))))
        cols["offsetNs"].append(s.start_ns - start)
        cols["durationNs"].append(s.duration_ns)
        cols["selfNs"].append(info.self_ns)
        cols["depth"].append(info.depth)
        cols["childCount"].append(info.child_count)
        cols["flags"].append(ORPHAN * info.orphan + CRITICAL * info.critical)
        if info.starts_before_parent_ns or info.ends_after_parent_ns:
            skew[k] = [info.starts_before_parent_ns, info.ends_after_parent_ns]
    return {**overview, "strings": list(strings), "spans": cols, "skew": skew}
