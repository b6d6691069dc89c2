"""How much the store holds, and a recent trace to show: what a running demo reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tracestore.store import Store


def span_count(store: Store) -> int:
    return int(store.query("SELECT count() FROM spans")[0][0])


def latest_trace_through(store: Store, services: Sequence[str]) -> str | None:
    """The trace id of the most recent trace that crossed every one of ``services``."""
    rows = store.query(
        "SELECT trace_id FROM trace_index GROUP BY trace_id "
        "HAVING hasAll(groupUniqArrayMerge(services), %(services)s) "
        "ORDER BY maxMerge(trace_end_ns) DESC LIMIT 1",
        {"services": list(services)},
    )
    return str(rows[0][0]) if rows else None


def oldest_trace_ns(store: Store) -> int | None:
    """Unix nanoseconds of the start of the first day the trace index holds, or None when
    it holds no trace (what a trace that is not found was searched among)."""
    rows = store.query("SELECT toString(min(day)), count() FROM trace_index")
    if not rows or not int(rows[0][1]):
        return None
    day = datetime.strptime(str(rows[0][0]), "%Y-%m-%d").replace(tzinfo=UTC)
    return int(day.timestamp()) * 10**9
