"""What the collector's writer asks of ClickHouse: insert a batch, and tell which of its
rows are already there (after a crash or a failed insert the writer may not know).

Keys are primary-key prefixes, so each lookup reads few granules: ``(trace_id,
span_id)`` in ``spans_by_trace`` (fed from ``spans`` by a materialized view, ordered by
trace id); ``(service, metric, time, attribute values)`` in ``metric_points``, looked
up by time within the day range the times cover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracestore.otlp_columns import SPAN_COLUMNS
from tracestore.store import Store

LOOKUP_CHUNK = 1000  # keys per IN (…) list

SpanKey = tuple[str, str]
MetricKey = tuple[str, str, int, tuple[str, ...]]


def insert_spans(store: Store, columns: Mapping[str, Sequence[Any]]) -> None:
    """One block into ``spans``; the views fill spans_by_trace, trace_index and rollups."""
    store.insert("spans", columns)


def span_column_codes(store: Store) -> tuple[int, ...] | None:
    """The encoder's code of each ``spans`` column as the server has it (``SPAN_COLUMNS``
    order), so the decoder can write the INSERT's Native bytes; None where the store
    takes lists only or a type is not one the decoder writes."""
    if not store.native_inserts:
        return None
    from tracestore.native_columns import column_code

    rows = store.query(
        "SELECT name, type FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'spans'"
    )
    types = dict(rows)
    codes = tuple(column_code(types.get(name, "")) for name in SPAN_COLUMNS)
    return None if None in codes else codes  # type: ignore[return-value]


def insert_metric_points(store: Store, columns: Mapping[str, Sequence[Any]]) -> None:
    store.insert("metric_points", columns)


def present_spans(store: Store, keys: Sequence[SpanKey]) -> set[SpanKey]:
    """Which of the (trace_id, span_id) ``keys`` are stored."""
    found: set[SpanKey] = set()
    trace_ids = sorted({k[0] for k in keys})
    for i in range(0, len(trace_ids), LOOKUP_CHUNK):
        rows = store.query(
            "SELECT trace_id, span_id FROM spans_by_trace WHERE trace_id IN %(t)s",
            {"t": tuple(trace_ids[i : i + LOOKUP_CHUNK])},
        )
        found.update((r[0], r[1]) for r in rows)
    return found & set(keys)


def present_metric_points(store: Store, keys: Sequence[MetricKey]) -> set[MetricKey]:
    """Which of the (service, metric, time_ns, attribute values) ``keys`` are stored."""
    found: set[MetricKey] = set()
    times = sorted({k[2] for k in keys})
    for i in range(0, len(times), LOOKUP_CHUNK):
        chunk = times[i : i + LOOKUP_CHUNK]
        rows = store.query(
            "SELECT service_name, metric_name, time_ns, attr_values FROM metric_points "
            "WHERE ts BETWEEN toDateTime(%(lo)s) AND toDateTime(%(hi)s) AND time_ns IN %(t)s",
            {"lo": chunk[0] // 10**9, "hi": chunk[-1] // 10**9, "t": tuple(chunk)},
        )
        found.update((r[0], r[1], int(r[2]), tuple(r[3])) for r in rows)
    return found & set(keys)


def running_inserts(store: Store, older_than_s: float) -> int:
    """INSERTs still running on the server that began more than ``older_than_s`` ago
    (a killed collector's last insert, which may yet land)."""
    rows = store.query(
        "SELECT count() FROM system.processes "
        "WHERE substring(query, 1, 11) = 'INSERT INTO' AND elapsed > %(age)s",
        {"age": older_than_s},
    )
    return int(rows[0][0])
