"""Read queries over the rollups: services, latency series, operations, the service graph.

Percentiles come from the fixed log buckets (``tracestore/latency_buckets.py``), so
they are within 0.55% of the exact value over the raw spans whatever the range.
They are computed in ClickHouse (``quantiles_sql``, the same rank rule as
``latency_buckets.quantiles``), so results stay small. Ranges are whole minutes:
whole hours inside a range are read from the ``*_hour`` rollups, the ragged ends
from the ``*_minute`` ones; a single figure over more than six hours is read at
whole hours (``TimeRange.summary``). Service figures and series read the plain
bucket rows (``service_buckets_*``), operations the latency states (``latency_*``),
edges the job's rows (``edges_*``, latest run per period).
A service's own figures count its entry spans (server and consumer kinds) — or
every span when it has none, as for a job that only makes calls. Times are unix
seconds; durations in the results are milliseconds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracestore.edge_queries import (
    EDGE_CHILD,
    EDGE_CHILD_KIND,
    EDGE_CONDITION,
    call_pairs_sql,
    latest_rows_sql,
)
from tracestore.store import Store

DEFAULT_QUANTILES = (0.5, 0.9, 0.95, 0.99)
SIDECAR_METRIC = "sidetrace.request.duration"
HOUR = 3600
WIDEN_AFTER_S = 6 * HOUR
EDGE_KEYS = "parent_service, child_service, child_kind"
EDGE_COLUMNS = f"{EDGE_KEYS}, calls, errors, duration_sum, bucket_keys, bucket_counts"


def quantile_name(q: float) -> str:
    """0.5 -> "p50", 0.999 -> "p99.9"."""
    return "p" + f"{q * 100:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class TimeRange:
    """Whole minutes [start_s, end_s); rates divide by seconds up to ``rate_end_s``."""

    start_s: int
    end_s: int
    rate_end_s: int | None = None

    @classmethod
    def of(cls, start_s: float, end_s: float) -> TimeRange:
        start = int(start_s) // 60 * 60
        end = -(-int(end_s) // 60) * 60
        return cls(start, max(end, start + 60))

    @classmethod
    def summary(cls, start_s: float, end_s: float) -> TimeRange:
        """For one figure over a whole range: past WIDEN_AFTER_S, whole hours.

        A long range is widened to the hours it touches so that only the hourly
        rollups are read (the ragged minutes at both ends cost more than the
        hours between them); rates then count the widened range up to now.
        """
        span = cls.of(start_s, end_s)
        if span.seconds <= WIDEN_AFTER_S:
            return span
        start, end = span.start_s // HOUR * HOUR, -(-span.end_s // HOUR) * HOUR
        now = -(-int(time.time()) // 60) * 60
        return cls(start, end, max(span.end_s, min(end, now)))

    @property
    def seconds(self) -> int:
        return (self.rate_end_s or self.end_s) - self.start_s


def pieces(span: TimeRange, hourly: bool = True) -> list[tuple[str, int, int]]:
    """(table suffix, start, end) covering ``span``: whole hours from ``_hour`` tables."""
    first_hour = -(-span.start_s // HOUR) * HOUR
    last_hour = span.end_s // HOUR * HOUR
    if not hourly or last_hour - first_hour < HOUR:
        return [("minute", span.start_s, span.end_s)]
    found = [
        ("minute", span.start_s, first_hour),
        ("hour", first_hour, last_hour),
        ("minute", last_hour, span.end_s),
    ]
    return [p for p in found if p[2] > p[1]]


def _within(lo: int, hi: int) -> str:
    return f"minute >= toDateTime({lo}) AND minute < toDateTime({hi})"


def latency_source(span: TimeRange, where: str = "1", hourly: bool = True) -> str:
    """Rows of latency_minute / latency_hour covering ``span`` exactly, as one subquery.

    ``where`` is an extra condition with ``%(name)s`` parameters (never user text);
    ``hourly=False`` reads minutes only (for steps that do not hold whole hours).
    """
    columns = "service_name, span_name, span_kind, minute, calls, errors, duration_sum, buckets"
    selects = [
        f"SELECT {columns} FROM latency_{suffix} WHERE {_within(lo, hi)} AND ({where})"
        for suffix, lo, hi in pieces(span, hourly)
    ]
    return "(" + " UNION ALL ".join(selects) + ")"


def service_source(span: TimeRange, where: str = "1", hourly: bool = True) -> str:
    """Bucket rows of service_buckets_minute / _hour covering ``span``, as one subquery."""
    columns = "service_name, entry, minute, bucket, calls, errors, duration_sum"
    selects = [
        f"SELECT {columns} FROM service_buckets_{suffix} WHERE {_within(lo, hi)} AND ({where})"
        for suffix, lo, hi in pieces(span, hourly)
    ]
    return "(" + " UNION ALL ".join(selects) + ")"


def edges_source(span: TimeRange, columns: str = EDGE_COLUMNS, where: str = "1") -> str:
    """Edge rows covering ``span``, each period from its latest rollup run.

    Only ``columns`` are read: ClickHouse 18.16 does not prune columns through
    these nested subqueries, and the bucket arrays are most of the bytes.
    """
    selects = [
        f"SELECT {columns} FROM {latest_rows_sql(f'edges_{suffix}', lo, hi, columns)} WHERE {where}"
        for suffix, lo, hi in pieces(span)
    ]
    return "(" + " UNION ALL ".join(selects) + ")"


# quantilesExactWeighted takes the first bucket whose cumulative count reaches
# ceil(level * n); nudging the level up by far less than one rank in n makes that
# floor(q * n) + 1, the rank ``latency_buckets.quantiles`` (and quantileExact) use.
LEVEL_NUDGE = 1e-12
SUMMARY_QUANTILES = (0.5, 0.95, 0.99)


def quantiles_sql(qs: Sequence[float]) -> str:
    """``latency_buckets.quantiles`` in SQL, in ms, over element rows of bucket ``k``
    and count ``c``: one array per group. Computed in ClickHouse, so a day of
    per-minute quantiles comes back as short rows."""
    levels = ", ".join(repr(float(q) + LEVEL_NUDGE) for q in qs)
    return f"arrayMap(b -> exp2((b + 0.5) / 64) / 1e6, quantilesExactWeighted({levels})(k, c))"


# Each *_figures_sql returns, per group: the key columns, calls, errors,
# duration_sum and an array of quantiles (ms). Groups go by a 64-bit hash of the
# keys: on 18.16, grouping by String columns costs several times more.


def _any(keys: str) -> str:
    return ", ".join(f"any({k.strip()})" for k in keys.split(","))


def rows_figures_sql(keys: str, source: str, qs: Sequence[float] = SUMMARY_QUANTILES) -> str:
    """Over bucket rows (``service_buckets_*``), one bucket per row."""
    return (
        f"SELECT {_any(keys)}, sum(calls), sum(errors), sum(duration_sum), {quantiles_sql(qs)} "
        f"FROM (SELECT *, cityHash64({keys}) AS gk, bucket AS k, calls AS c FROM {source}) "
        "GROUP BY gk"
    )


def arrays_figures_sql(
    keys: str, source: str, names: str, qs: Sequence[float] = SUMMARY_QUANTILES
) -> str:
    """Over rows holding bucket arrays (``edges_*``); ``names`` holds just the keys.

    Only a hash and numbers go through ARRAY JOIN (copying the key strings to
    every bucket costs more than joining the names back afterwards).
    """
    gk = f"cityHash64({keys})"
    return (
        f"SELECT {keys}, n, errs, dsum, qs FROM ("
        "SELECT gk, sumIf(n0, idx = 1) AS n, sumIf(e0, idx = 1) AS errs, "
        f"sumIf(d0, idx = 1) AS dsum, {quantiles_sql(qs)} AS qs FROM ("
        f"SELECT {gk} AS gk, calls AS n0, errors AS e0, duration_sum AS d0, bucket_keys, "
        f"bucket_counts FROM {source}) "
        "ARRAY JOIN bucket_keys AS k, bucket_counts AS c, arrayEnumerate(bucket_keys) AS idx "
        f"GROUP BY gk) AS figures ANY LEFT JOIN (SELECT DISTINCT {gk} AS gk, {keys} "
        f"FROM {names}) AS names USING gk"
    )


def states_figures_sql(keys: str, source: str, qs: Sequence[float] = SUMMARY_QUANTILES) -> str:
    """Over latency states (``latency_*``): merged per group first (few groups)."""
    return (
        f"SELECT {_any(keys)}, any(n0), any(e0), any(d0), {quantiles_sql(qs)} FROM ("
        f"SELECT cityHash64({keys}) AS gk, {keys}, countMerge(calls) AS n0, "
        "sumMerge(errors) AS e0, sumMerge(duration_sum) AS d0, sumMapMerge(buckets) AS bm "
        f"FROM {source} GROUP BY {keys}) "
        "ARRAY JOIN tupleElement(bm, 1) AS k, tupleElement(bm, 2) AS c GROUP BY gk"
    )


@dataclass(frozen=True)
class Figures:
    """Calls, errors, total duration and quantiles (ms) of one group of spans."""

    calls: int = 0
    errors: int = 0
    duration_sum: int = 0
    quantiles: tuple[float | None, ...] = (None, None, None)

    @classmethod
    def of(cls, row: Sequence[Any]) -> Figures:
        """From the columns a *_figures_sql query returns after the keys."""
        calls, errors, dsum, qs = row
        return cls(int(calls), int(errors), int(dsum), tuple(float(q) for q in qs))

    def summary(self, seconds: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls,
            "rate": self.calls / seconds if seconds else 0.0,
            "errors": self.errors,
            "error_rate": self.errors / self.calls if self.calls else 0.0,
        }
        names = (quantile_name(q) for q in SUMMARY_QUANTILES)
        out.update(zip(names, self.quantiles, strict=True))
        return out


def _service_figures(store: Store, span: TimeRange) -> dict[str, Figures]:
    """Per service: entry spans (server, consumer) when there are any, else every span."""
    rows = store.query(rows_figures_sql("service_name, entry", service_source(span)))
    per: dict[str, dict[int, Figures]] = defaultdict(dict)
    for service, entry, *figures in rows:
        per[str(service)][int(entry)] = Figures.of(figures)
    return {
        service: by_entry[1] if 1 in by_entry and by_entry[1].calls else by_entry[0]
        for service, by_entry in per.items()
    }


def services(store: Store, start_s: float, end_s: float) -> list[dict[str, Any]]:
    """One row per service: rate, error rate, p50/p95/p99, and sidecar RED where known."""
    span = TimeRange.summary(start_s, end_s)
    sidecar = sidecar_red(store, span.start_s, span.end_s)
    out = []
    for service, figures in sorted(_service_figures(store, span).items()):
        row = {"service": service, **figures.summary(span.seconds)}
        if service in sidecar:
            red = sidecar[service]
            row["sidecar"] = red
            row["sampling_ratio"] = (
                min(figures.calls / red["requests"], 1.0) if red["requests"] else None
            )
        out.append(row)
    return out


def latency_series(
    store: Store,
    service: str,
    start_s: float,
    end_s: float,
    step_s: int,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    operation: str | None = None,
) -> dict[str, Any]:
    """Rate, errors and quantiles (ms) per step for a service (or one of its operations).

    Steps are aligned to the epoch; steps of whole hours read the hourly rollups.
    Steps without calls have ``None`` quantiles.
    """
    step_s = max(60, int(step_s) // 60 * 60)
    first = int(start_s) // step_s * step_s
    span = TimeRange.of(first, -(-int(end_s) // step_s) * step_s)
    params: dict[str, Any] = {"service": service}
    step = f"intDiv(toUInt32(minute), {step_s}) * {step_s}"
    hourly = step_s % HOUR == 0
    if operation is None:  # entry spans only, unless the service has none
        params["entry"] = int(_has_entry_spans(store, service, span))
        where = "service_name = %(service)s AND entry = %(entry)s"
        source = service_source(span, where, hourly)
        sql = rows_figures_sql("t, entry", f"(SELECT *, {step} AS t FROM {source})", qs)
    else:
        params["operation"] = operation
        where = "service_name = %(service)s AND span_name = %(operation)s"
        source = latency_source(span, where, hourly)
        stepped = f"(SELECT *, {step} AS t, toUInt8(1) AS entry FROM {source})"
        sql = states_figures_sql("t, entry", stepped, qs)
    rows = store.query(sql, params)
    use_entry = any(int(r[1]) and int(r[2]) for r in rows)
    steps = {int(r[0]): r[2:] for r in rows if int(r[1]) == int(use_entry)}
    points = []
    for t in range(span.start_s, span.end_s, step_s):
        calls, errors, _, values = steps.get(t, (0, 0, 0, [None] * len(qs)))
        calls, errors = int(calls), int(errors)
        points.append(
            {
                "t": t,
                "calls": calls,
                "rate": calls / step_s,
                "errors": errors,
                "error_rate": errors / calls if calls else 0.0,
                "quantiles": {quantile_name(q): v for q, v in zip(qs, values, strict=True)},
            }
        )
    return {
        "service": service,
        "operation": operation,
        "start": span.start_s,
        "end": span.end_s,
        "step": step_s,
        "quantiles": [quantile_name(q) for q in qs],
        "points": points,
    }


def _has_entry_spans(store: Store, service: str, span: TimeRange) -> bool:
    rows = store.query(
        "SELECT count() FROM service_buckets_hour WHERE service_name = %(service)s "
        f"AND entry = 1 AND minute >= toDateTime({span.start_s // HOUR * HOUR}) "
        f"AND minute < toDateTime({span.end_s})",
        {"service": service},
    )
    return bool(rows and int(rows[0][0]))


def operations(store: Store, service: str, start_s: float, end_s: float) -> list[dict[str, Any]]:
    """One row per (operation, kind) of a service; ``impact`` is its share of the total time."""
    span = TimeRange.summary(start_s, end_s)
    source = latency_source(span, "service_name = %(service)s")
    sql = states_figures_sql("span_name, span_kind", source)
    rows = store.query(sql, {"service": service})
    total_time = sum(int(r[4]) for r in rows) or 1
    out = []
    for name, kind, *figures in rows:
        f = Figures.of(figures)
        out.append(
            {
                "operation": str(name),
                "kind": int(kind),
                **f.summary(span.seconds),
                "total_ms": f.duration_sum / 1e6,
                "impact": f.duration_sum / total_time,
            }
        )
    out.sort(key=lambda r: (-r["impact"], r["operation"]))
    return out


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    child_kind: str
    figures: Figures


def edges(store: Store, start_s: float, end_s: float) -> list[Edge]:
    """Edges over whole minutes, each minute (or hour) from its latest rollup run."""
    span = TimeRange.summary(start_s, end_s)
    sql = arrays_figures_sql(EDGE_KEYS, edges_source(span), edges_source(span, EDGE_KEYS))
    rows = store.query(sql + " ORDER BY parent_service, child_service")
    return [Edge(str(p), str(c), str(k), Figures.of(figures)) for p, c, k, *figures in rows]


def peer_figures(store: Store, span: TimeRange) -> dict[str, Figures]:
    """Calls into each uninstrumented peer, over all its callers."""
    peers = "child_kind != 'service'"
    source = edges_source(span, where=peers)
    rows = store.query(
        arrays_figures_sql("child_service", source, edges_source(span, EDGE_KEYS, peers))
    )
    return {str(child): Figures.of(figures) for child, *figures in rows}


def dependencies(store: Store, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Jaeger's ``/api/dependencies`` shape: [{parent, child, callCount}]."""
    found = edges(store, start_ns / 1e9, end_ns / 1e9)
    return [{"parent": e.parent, "child": e.child, "callCount": e.figures.calls} for e in found]


def service_namespaces(store: Store, start_s: float, end_s: float) -> dict[str, str]:
    span = TimeRange.of(start_s, end_s)
    rows = store.query(
        "SELECT service_name, max(namespace) FROM service_namespaces "
        f"WHERE day >= toDate(toDateTime({span.start_s})) "
        f"AND day <= toDate(toDateTime({span.end_s})) AND namespace != '' "
        "GROUP BY service_name"
    )
    return {str(service): str(ns) for service, ns in rows}


def graph(store: Store, start_s: float, end_s: float) -> dict[str, Any]:
    """Nodes (services and uninstrumented peers) with RED figures, and edges between them.

    A peer's figures are the calls made to it; it takes its callers' namespace
    when they share one.
    """
    span = TimeRange.summary(start_s, end_s)
    found = edges(store, span.start_s, span.end_s)
    namespaces = service_namespaces(store, span.start_s, span.end_s)
    nodes: dict[str, dict[str, Any]] = {}
    for service, figures in _service_figures(store, span).items():
        nodes[service] = _node(service, "service", namespaces.get(service, ""), figures, span)
    for e in found:  # services seen only in edges (e.g. spans older than the latency rollups)
        for name in [e.parent] + ([e.child] if e.child_kind == "service" else []):
            ns = namespaces.get(name, "")
            nodes.setdefault(name, _node(name, "service", ns, Figures(), span))
    callers: dict[str, list[Edge]] = defaultdict(list)
    for e in found:
        if e.child_kind != "service" and e.child not in nodes:
            callers[e.child].append(e)
    # A peer with one caller has that edge's figures; others need their calls merged.
    into = peer_figures(store, span) if any(len(v) > 1 for v in callers.values()) else {}
    for name, calls in callers.items():
        caller_namespaces = {nodes[e.parent]["namespace"] for e in calls}
        ns = caller_namespaces.pop() if len(caller_namespaces) == 1 else ""
        f = calls[0].figures if len(calls) == 1 else into.get(name, Figures())
        nodes[name] = _node(name, calls[0].child_kind, ns, f, span)
    edge_rows = [
        {
            "parent": e.parent,
            "child": e.child,
            "child_kind": e.child_kind,
            **e.figures.summary(span.seconds),
        }
        for e in found
    ]
    return {
        "start": span.start_s,
        "end": span.end_s,
        "nodes": sorted(nodes.values(), key=lambda n: n["id"]),
        "edges": edge_rows,
    }


def _node(name: str, kind: str, namespace: str, f: Figures, span: TimeRange) -> dict[str, Any]:
    return {"id": name, "kind": kind, "namespace": namespace, **f.summary(span.seconds)}


def sidecar_red(store: Store, start_s: float, end_s: float) -> dict[str, dict[str, Any]]:
    """Inbound request rate, errors and mean duration per service from sidecar metrics.

    Sidecars count every request, sampled or not, so beside the span-derived
    figures they give the true rate and the sampling ratio. Cumulative series
    contribute their increase within the range, delta series their sum.
    """
    span = TimeRange.summary(start_s, end_s)
    klass = "attr_values[indexOf(attr_keys, 'status_class')]"
    rows = store.query(
        "SELECT service_name, sum(inc), sumIf(inc, bad), sum(seconds) FROM ("
        f"SELECT service_name, {klass} AS klass, "
        "toUInt8(klass IN ('5xx', 'error') OR (substring(klass, 1, 5) = 'grpc_' "
        "AND klass != 'grpc_0')) AS bad, "
        "if(temporality = 1, sum(count), toUInt64(max(count) - min(count))) AS inc, "
        "if(temporality = 1, sum(sum), max(sum) - min(sum)) AS seconds "
        "FROM metric_points WHERE metric_name = %(metric)s "
        f"AND ts >= toDateTime({span.start_s}) AND ts < toDateTime({span.end_s}) "
        "AND attr_values[indexOf(attr_keys, 'sidetrace.direction')] = 'inbound' "
        "GROUP BY service_name, attr_keys, attr_values, resource_attr_values, "
        "start_time_ns, temporality, klass) GROUP BY service_name",
        {"metric": SIDECAR_METRIC},
    )
    out = {}
    for service, requests, errors, seconds in rows:
        requests, errors = int(requests), int(errors)
        out[str(service)] = {
            "requests": requests,
            "rate": requests / span.seconds,
            "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
            "mean_ms": float(seconds) * 1e3 / requests if requests else None,
        }
    return out


# The orders an edge's calls can be listed in (the first is the default): the allow-list
# the page's ``sort`` parameter is checked against.
EDGE_TRACE_ORDERS = {
    "latest": "p_start DESC",
    "slowest": "p_duration DESC, p_start DESC",
    "errors": "failed DESC, p_start DESC",
}


def edge_traces(
    store: Store,
    parent: str,
    child: str,
    child_kind: str,
    start_s: float,
    end_s: float,
    limit: int,
    order: str = "latest",
) -> list[dict[str, Any]]:
    """The calls that crossed one edge, in ``order`` (a key of EDGE_TRACE_ORDERS), so the
    slowest or failed calls of the whole range are found, not only among the latest."""
    if order not in EDGE_TRACE_ORDERS:
        raise ValueError(f"order must be one of {', '.join(EDGE_TRACE_ORDERS)}")
    span = TimeRange.of(start_s, end_s)
    child_where = "service_name = %(child)s" if child_kind == "service" else "1"
    pairs = call_pairs_sql(span.start_s, span.end_s, "service_name = %(parent)s", child_where)
    rows = store.query(
        "SELECT trace_id, p_start, p_duration, toUInt8(p_status = 2 OR c_status = 2) AS failed "
        f"FROM {pairs} WHERE ({EDGE_CONDITION}) AND {EDGE_CHILD} = %(child)s "
        f"AND {EDGE_CHILD_KIND} = %(kind)s ORDER BY {EDGE_TRACE_ORDERS[order]} LIMIT %(limit)s",
        {"parent": parent, "child": child, "kind": child_kind, "limit": int(limit)},
    )
    return [
        {"trace_id": str(t), "start_ns": int(s), "duration_ms": int(d) / 1e6, "error": bool(e)}
        for t, s, d, e in rows
    ]
