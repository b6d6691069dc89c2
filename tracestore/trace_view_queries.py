"""Reads behind the trace view: a trace's outline as columns, one span's full record, and
find by attribute.

The outline is what the view draws of every span, as one tuple per column (no object per
span: a 100k-span trace is read and handed on in a fraction of the time); the rest is read
one span or one search at a time, by the trace's primary key and pruned to the days
``trace_bounds`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracestore.store import Store
from tracestore.trace_queries import (
    NS_PER_S,
    SPAN_COLUMNS,
    SPAN_TIERS,
    Span,
    span_from_row,
    trace_rows,
)

# Outline column name -> its SQL.
OUTLINE_COLUMNS = {
    "span_id": "span_id",
    "parent_span_id": "parent_span_id",
    "service": "toString(service_name)",
    "name": "toString(span_name)",
    "kind": "span_kind",
    "status_code": "status_code",
    "start_ns": "start_ns",
    "duration_ns": "duration_ns",
}

MAX_FOUND = 10_000  # span ids one find returns at most
_DAYS = "WHERE ts >= toDateTime(%(first)s) AND ts <= toDateTime(%(last)s)"


@dataclass(frozen=True)
class TraceOutline:
    trace_id: str
    bounds: tuple[int, int]  # first start, last end, from the trace index
    span_count: int  # spans the trace has (more than were read when the cap was hit)
    columns: dict[str, tuple]  # OUTLINE_COLUMNS' names -> values, in start order


def load_outline(store: Store, trace_id: str, max_spans: int) -> TraceOutline | None:
    """The trace's ``OUTLINE_COLUMNS`` (at most ``max_spans`` spans, the earliest)."""
    found = trace_rows(store, trace_id, max_spans, tuple(OUTLINE_COLUMNS.values()))
    if found is None:
        return None
    rows, bounds, count = found
    values = list(zip(*rows, strict=True)) if rows else [() for _ in OUTLINE_COLUMNS]
    return TraceOutline(trace_id, bounds, count, dict(zip(OUTLINE_COLUMNS, values, strict=True)))


def _params(trace_id: str, bounds: tuple[int, int]) -> dict[str, object]:
    first_s = bounds[0] // NS_PER_S
    return {"t": trace_id, "first": first_s, "last": max(bounds[1] // NS_PER_S, first_s)}


def load_span(store: Store, trace_id: str, span_id: str, bounds: tuple[int, int]) -> Span | None:
    """One span with its attributes, resource, events and links, from the hot or kept tier."""
    params = {**_params(trace_id, bounds), "s": span_id}
    for table in SPAN_TIERS:
        rows = store.query(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM {table} PREWHERE trace_id = %(t)s "
            f"{_DAYS} AND span_id = %(s)s LIMIT 1",
            params,
        )
        if rows:
            return span_from_row(rows[0])
    return None


def find_spans(
    store: Store, trace_id: str, text: str, bounds: tuple[int, int], limit: int = MAX_FOUND
) -> list[str]:
    """Ids of the trace's spans with an attribute key or value containing ``text``
    (case-insensitive), at most ``limit``."""
    params = {**_params(trace_id, bounds), "q": text.lower(), "cap": int(limit)}
    for table in SPAN_TIERS:
        rows = store.query(
            f"SELECT DISTINCT span_id FROM {table} PREWHERE trace_id = %(t)s {_DAYS} "
            "AND (arrayExists(k -> position(lowerUTF8(k), %(q)s) > 0, attr_keys) "
            "OR arrayExists(v -> position(lowerUTF8(v), %(q)s) > 0, attr_values)) "
            "LIMIT %(cap)s",
            params,
        )
        if rows:
            return [str(r[0]) for r in rows]
    return []
