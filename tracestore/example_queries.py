"""Example traces: the slowest and the erroneous trace of a window, and the record of them.

A latency chart (per service, and per operation), a service map edge page and an
SLO alert notification link to examples. Whatever is linked is written to
``trace_examples`` so retention tiering keeps it (reason ``example``) and the link
still opens after the hot window. Chart and alert examples read both tiers (a
window older than the hot window still has its kept traces); edge examples read the
calls that crossed the edge (``edge_queries.call_pairs_sql``). Names go in as
parameters; only integers are formatted into the SQL text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tracestore.edge_queries import EDGE_CHILD, EDGE_CHILD_KIND, EDGE_CONDITION, call_pairs_sql
from tracestore.store import Store, StoreError

SOURCES = ("chart", "edge", "alert")  # who referenced an example
MAX_SCOPE = 500
_TIERS = ("spans", "spans_kept")
ERROR_STATUS = 2


@dataclass(frozen=True)
class Example:
    """One example trace: its id, the duration of the span that made it one, its start."""

    trace_id: str
    duration_ms: float
    start_ns: int


@dataclass(frozen=True)
class Examples:
    """The slowest and the slowest erroneous trace of one scope over one window."""

    scope: str  # e.g. "checkout Charge", "frontend → checkout", an alert's name
    operation: str | None = None  # chart examples: the operation (None: the whole service)
    slowest: Example | None = None
    error: Example | None = None

    def trace_ids(self) -> list[str]:
        return list(dict.fromkeys(e.trace_id for e in (self.slowest, self.error) if e))


@dataclass(frozen=True)
class SpanFilter:
    """Which spans an alert covers: a service, optionally an operation, route and kind."""

    service: str
    operation: str | None = None
    route: str | None = None
    span_kind: int | None = None

    def condition(self, params: dict[str, Any]) -> str:
        params["f_service"] = self.service
        terms = ["service_name = %(f_service)s"]
        if self.operation is not None:
            params["f_operation"] = self.operation
            terms.append("span_name = %(f_operation)s")
        if self.route is not None:
            params["f_route"] = self.route
            terms.append(
                "(span_name = %(f_route)s OR endsWith(span_name, concat(' ', %(f_route)s)))"
            )
        if self.span_kind is not None:
            terms.append(f"span_kind = {int(self.span_kind)}")
        return " AND ".join(terms)


def _picks(duration: str, start: str, error: str) -> str:
    """Aggregates choosing the slowest row and the slowest erroneous row."""
    return (
        f"argMax(trace_id, {duration}), max({duration}), argMax({start}, {duration}), "
        f"countIf({error}), argMaxIf(trace_id, {duration}, {error}), "
        f"maxIf({duration}, {error}), argMaxIf({start}, {duration}, {error})"
    )


def _examples(scope: str, operation: str | None, row: tuple) -> Examples:
    slow_id, slow_d, slow_s, errors, err_id, err_d, err_s = row
    slowest = Example(str(slow_id), int(slow_d) / 1e6, int(slow_s)) if slow_id else None
    error = Example(str(err_id), int(err_d) / 1e6, int(err_s)) if int(errors) else None
    return Examples(scope, operation, slowest, error)


def _both_tiers(where: str, start_s: int, end_s: int) -> str:
    """Spans matching ``where`` in [start_s, end_s), hot and kept (a trace may be in both)."""
    window = f"ts >= toDateTime({int(start_s)}) AND ts < toDateTime({int(end_s)})"
    columns = "trace_id, toString(span_name) AS op, duration_ns, start_ns, status_code"
    return " UNION ALL ".join(
        f"SELECT {columns} FROM {table} WHERE {window} AND {where}" for table in _TIERS
    )


def chart_examples(store: Store, service: str, start_s: int, end_s: int) -> list[Examples]:
    """The service's examples (``operation`` None) first, then each operation's."""
    params: dict[str, Any] = {}
    where = SpanFilter(service).condition(params)
    picks = _picks("duration_ns", "start_ns", f"status_code = {ERROR_STATUS}")
    rows = store.query(
        f"SELECT op, {picks} FROM ({_both_tiers(where, start_s, end_s)}) GROUP BY op ORDER BY op",
        params,
    )
    per_op = [_examples(f"{service} {r[0]}", str(r[0]), r[1:]) for r in rows]
    if not per_op:
        return []
    return [Examples(service, None, _slowest(e.slowest for e in per_op),
                     _slowest(e.error for e in per_op)), *per_op]  # fmt: skip


def _slowest(found: Iterable[Example | None]) -> Example | None:
    return max((e for e in found if e), key=lambda e: e.duration_ms, default=None)


def filter_examples(
    store: Store, scope: str, spans: SpanFilter, start_s: int, end_s: int
) -> Examples:
    """The examples among the spans an alert covers, over its window."""
    params: dict[str, Any] = {}
    where = spans.condition(params)
    picks = _picks("duration_ns", "start_ns", f"status_code = {ERROR_STATUS}")
    rows = store.query(f"SELECT {picks} FROM ({_both_tiers(where, start_s, end_s)})", params)
    if not rows or not rows[0][0]:
        return Examples(scope)
    return _examples(scope, spans.operation, rows[0])


def edge_examples(
    store: Store, parent: str, child: str, child_kind: str, start_s: int, end_s: int
) -> Examples:
    """The slowest call across one edge and the slowest failed one (either side an error)."""
    child_where = "service_name = %(child)s" if child_kind == "service" else "1"
    pairs = call_pairs_sql(start_s, end_s, "service_name = %(parent)s", child_where)
    failed = f"p_status = {ERROR_STATUS} OR c_status = {ERROR_STATUS}"
    rows = store.query(
        f"SELECT {_picks('p_duration', 'p_start', failed)} FROM {pairs} "
        f"WHERE ({EDGE_CONDITION}) AND {EDGE_CHILD} = %(child)s AND {EDGE_CHILD_KIND} = %(kind)s",
        {"parent": parent, "child": child, "kind": child_kind},
    )
    scope = f"{parent} → {child}"
    if not rows or not rows[0][0]:
        return Examples(scope)
    return _examples(scope, None, rows[0])


def record_examples(
    store: Store, source: str, examples: Iterable[Examples], now_s: float | None = None
) -> int:
    """Write the traces of ``examples`` to ``trace_examples``; returns how many rows."""
    if source not in SOURCES:
        raise StoreError(f"unknown example source {source!r}")
    now = int(time.time() if now_s is None else now_s)
    rows = [(t, e.scope[:MAX_SCOPE]) for e in examples for t in e.trace_ids()]
    if rows:
        store.insert(
            "trace_examples",
            {
                "trace_id": [t for t, _ in rows],
                "ts": [now] * len(rows),
                "source": [source] * len(rows),
                "scope": [s for _, s in rows],
            },
        )
    return len(rows)


def example_traces(store: Store) -> dict[str, tuple[str, ...]]:
    """Every recorded example trace id and the sources that referenced it."""
    rows = store.query(
        "SELECT trace_id, groupUniqArray(source) FROM trace_examples GROUP BY trace_id"
    )
    return {str(r[0]): tuple(sorted(str(s) for s in r[1])) for r in rows}
