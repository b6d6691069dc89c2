"""How much the store holds, and a recent trace to show: what a running demo reports."""

from __future__ import annotations

from collections.abc import Sequence

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
