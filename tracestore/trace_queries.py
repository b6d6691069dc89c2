"""Read queries for traces: one trace by id, and trace search.

Every value reaches ClickHouse as a query parameter; the only text built here is
fixed SQL chosen by which filters are present. A trace loads by primary key
(``trace_index`` gives its time bounds, ``spans_by_trace`` its spans, pruned to those
days), and search reads ``spans`` only inside the requested time range.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tracestore.span_model import (
    ATTR_ARRAY,
    ATTR_BOOL,
    ATTR_DOUBLE,
    ATTR_INT,
    ATTR_KVLIST,
    ATTR_STRING,
)
from tracestore.span_model import (
    ATTR_BYTES as ATTR_BYTES,  # re-exported: rows → spans callers read the codes here
)
from tracestore.span_model import (
    SPAN_KINDS as SPAN_KINDS,
)
from tracestore.span_model import (
    STATUS_CODES as STATUS_CODES,
)
from tracestore.store import Store

NS_PER_S = 1_000_000_000
MAX_SEARCH_LIMIT = 1500
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_ATTR_KEY = re.compile(r"^[^\s=!]{1,256}$")


SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "flags",
    "toString(service_name)",
    "toString(span_name)",
    "span_kind",
    "status_code",
    "status_message",
    "toString(scope_name)",
    "toString(scope_version)",
    "start_ns",
    "duration_ns",
    "attr_keys",
    "attr_types",
    "attr_values",
    "resource_attr_keys",
    "resource_attr_types",
    "resource_attr_values",
    "event_times_ns",
    "event_names",
    "event_attrs",
    "link_trace_ids",
    "link_span_ids",
    "link_trace_states",
    "link_attrs",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
)


class BadQuery(ValueError):
    """A user-supplied parameter that cannot be used; the message says why."""


def normalize_trace_id(text: str) -> str:
    """A 32-hex lowercase id from 16 or 32 hex digits (16 are left-padded with zeros)."""
    text = (text or "").strip()
    if len(text) not in (16, 32) or not _HEX.match(text):
        raise BadQuery(f"trace id must be 16 or 32 hex digits, got {text[:40]!r}")
    return text.lower().rjust(32, "0")


def normalize_span_id(text: str) -> str:
    text = (text or "").strip()
    if len(text) != 16 or not _HEX.match(text):
        raise BadQuery(f"span id must be 16 hex digits, got {text[:40]!r}")
    return text.lower()


@dataclass(frozen=True)
class Attribute:
    key: str
    type: int
    value: str

    def typed(self) -> Any:
        """The value as its JSON type (arrays and kvlists are stored as JSON text)."""
        try:
            if self.type == ATTR_BOOL:
                return self.value.lower() in ("true", "1")
            if self.type == ATTR_INT:
                return int(self.value)
            if self.type == ATTR_DOUBLE:
                return float(self.value)
            if self.type == ATTR_ARRAY:
                return [_plain(v) for v in json.loads(self.value).get("values", [])]
            if self.type == ATTR_KVLIST:
                return _plain({"kvlistValue": json.loads(self.value)})
        except (ValueError, AttributeError, TypeError):
            pass
        return self.value


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    flags: int
    service: str
    name: str
    kind: int
    status_code: int
    status_message: str
    scope_name: str
    scope_version: str
    start_ns: int
    duration_ns: int
    attributes: list[Attribute]
    resource: list[Attribute]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


@dataclass
class TraceSummary:
    trace_id: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int = 0
    services: list[str] = field(default_factory=list)
    root_service: str = ""
    root_name: str = ""

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


@dataclass
class Trace:
    summary: TraceSummary
    spans: list[Span]

    @property
    def left_out(self) -> int:
        """Spans known to the index but not loaded because of the span cap."""
        return max(0, self.summary.span_count - len(self.spans))


def _json_attrs(text: str) -> list[Attribute]:
    """Event and link attributes as the collector stores them: ``[[key, type, text], ...]``."""
    try:
        data = json.loads(text) if text else []
    except ValueError:
        return [Attribute("value", ATTR_STRING, text)]
    if not isinstance(data, list):
        return [Attribute("value", ATTR_STRING, text)]
    return [
        Attribute(str(item[0]), int(item[1]), str(item[2]))
        for item in data
        if isinstance(item, list) and len(item) == 3 and isinstance(item[1], int)
    ]


def _plain(value: Any) -> Any:
    """An OTLP JSON AnyValue (``{"stringValue": "x"}``, arrays, kvlists) as plain JSON."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((kind, inner),) = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "arrayValue":
        return [_plain(v) for v in inner.get("values", [])]
    if kind == "kvlistValue":
        return {kv.get("key", ""): _plain(kv.get("value")) for kv in inner.get("values", [])}
    return inner


def _attrs(keys: Any, types: Any, values: Any) -> list[Attribute]:
    return [Attribute(str(k), int(t), str(v)) for k, t, v in zip(keys, types, values, strict=False)]


def span_from_row(row: tuple) -> Span:
    """One ``SPAN_COLUMNS`` row (tuple or list, either backend) as a Span."""
    (tid, sid, pid, tstate, flags, service, name, kind, scode, smsg, scope, scope_v, start, dur,
     ak, at, av, rk, rt, rv, et, en, ea, lt, ls, lst, la, da, de, dl) = row  # fmt: skip
    events = [
        {"time_ns": int(t), "name": str(n), "attributes": _json_attrs(str(a))}
        for t, n, a in zip(et, en, ea, strict=False)
    ]
    links = [
        {
            "trace_id": str(t),
            "span_id": str(s),
            "trace_state": str(st),
            "attributes": _json_attrs(a),
        }
        for t, s, st, a in zip(lt, ls, lst, la, strict=False)
    ]
    return Span(
        trace_id=tid,
        span_id=sid,
        parent_span_id=pid,
        trace_state=tstate,
        flags=int(flags),
        service=service,
        name=name,
        kind=int(kind),
        status_code=int(scode),
        status_message=smsg,
        scope_name=scope,
        scope_version=scope_v,
        start_ns=int(start),
        duration_ns=int(dur),
        attributes=_attrs(ak, at, av),
        resource=_attrs(rk, rt, rv),
        events=events,
        links=links,
        dropped_attributes=int(da),
        dropped_events=int(de),
        dropped_links=int(dl),
    )


# Retention tiering (collector/tiering.py) copies the traces worth keeping here.
KEPT_TABLE = "spans_kept"
SPAN_TIERS = ("spans_by_trace", KEPT_TABLE)


def trace_bounds(store: Store, trace_id: str) -> tuple[int, int] | None:
    """(first start, last end) of a trace from the index, by primary key.

    Only the two cheap states are read: the index's other states (span id sets,
    service lists) cost far more to decode than the lookup itself.
    """
    rows = store.query(
        "SELECT minMerge(trace_start_ns), maxMerge(trace_end_ns), count() FROM trace_index "
        "PREWHERE trace_id = %(t)s",
        {"t": trace_id},
    )
    if not rows or not int(rows[0][2]):
        # Past the hot window, a trace chosen by retention tiering is in the kept tier.
        rows = store.query(
            f"SELECT min(start_ns), max(start_ns + duration_ns), count() FROM {KEPT_TABLE} "
            "PREWHERE trace_id = %(t)s",
            {"t": trace_id},
        )
        if not rows or not int(rows[0][2]):
            return None
    return int(rows[0][0]), int(rows[0][1])


def _summary_of_spans(trace_id: str, spans: list[Span], bounds: tuple[int, int]) -> TraceSummary:
    roots = [s for s in spans if not s.parent_span_id]
    first = min(roots or spans, key=lambda s: s.start_ns) if spans else None
    return TraceSummary(
        trace_id=trace_id,
        start_ns=bounds[0],
        end_ns=bounds[1],
        span_count=len(spans),
        error_count=sum(1 for s in spans if s.status_code == 2),
        services=sorted({s.service for s in spans}),
        root_service=first.service if first else "",
        root_name=first.name if first else "",
    )


def trace_rows(
    store: Store, trace_id: str, max_spans: int, columns: tuple[str, ...]
) -> tuple[list[tuple], tuple[int, int], int] | None:
    """A trace's rows by primary key: its time bounds from the index, then its spans' ``columns``
    from those days, in start order; with the bounds and how many spans the trace has.

    Replayed copies of a span are dropped with ``LIMIT 1 BY span_id``; at most
    ``max_spans`` rows (the earliest) are returned, and when the cap is hit the count says
    how many the trace really has.
    """
    bounds = trace_bounds(store, trace_id)
    if bounds is None:
        return None
    first_s = bounds[0] // NS_PER_S
    last_s = max(bounds[1] // NS_PER_S, first_s)
    for table in SPAN_TIERS:  # the hot tier, else the kept tier
        rows = store.query(
            f"SELECT {', '.join(columns)} FROM {table} PREWHERE trace_id = %(t)s "
            "WHERE ts >= toDateTime(%(first)s) AND ts <= toDateTime(%(last)s) "
            "ORDER BY start_ns, span_id LIMIT 1 BY span_id LIMIT %(cap)s",
            {"t": trace_id, "first": first_s, "last": last_s, "cap": int(max_spans)},
        )
        if rows:
            break
    count = len(rows)
    if count >= max_spans:
        counted = store.query(
            f"SELECT uniqExact(span_id) FROM {table} PREWHERE trace_id = %(t)s "
            "WHERE ts >= toDateTime(%(first)s) AND ts <= toDateTime(%(last)s)",
            {"t": trace_id, "first": first_s, "last": last_s},
        )
        count = int(counted[0][0])
    return rows, bounds, count


def load_trace(store: Store, trace_id: str, max_spans: int) -> Trace | None:
    """A trace by primary key (``trace_rows``) as Spans, with its summary."""
    found = trace_rows(store, trace_id, max_spans, SPAN_COLUMNS)
    if found is None:
        return None
    rows, bounds, count = found
    spans = [span_from_row(r) for r in rows]
    summary = _summary_of_spans(trace_id, spans, bounds)
    summary.span_count = count
    return Trace(summary=summary, spans=spans)


@dataclass(frozen=True)
class AttributeFilter:
    """``key=value``, ``key!=value`` (key present with another value) or ``key`` (exists)."""

    key: str
    op: str  # "=", "!=", "exists"
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> AttributeFilter:
        text = text.strip()
        if "!=" in text:
            key, _, value = text.partition("!=")
            op = "!="
        elif "=" in text:
            key, _, value = text.partition("=")
            op = "="
        else:
            key, value, op = text, "", "exists"
        key = key.strip()
        if not _ATTR_KEY.match(key):
            raise BadQuery(
                f"bad attribute filter {text[:80]!r}: expected key, key=value or key!=value"
            )
        return cls(key=key, op=op, value=value.strip())


@dataclass
class SearchQuery:
    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    attributes: list[AttributeFilter] = field(default_factory=list)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    errors_only: bool = False
    limit: int = 20

    def validate(self) -> None:
        if self.start_ns < 0 or self.end_ns <= self.start_ns:
            raise BadQuery("time range is empty: start must be before end")
        if not 1 <= self.limit <= MAX_SEARCH_LIMIT:
            raise BadQuery(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        if self.min_duration_ns is not None and self.min_duration_ns < 0:
            raise BadQuery("min duration must not be negative")
        if (
            self.min_duration_ns is not None
            and self.max_duration_ns is not None
            and self.max_duration_ns < self.min_duration_ns
        ):
            raise BadQuery("max duration is below min duration")
        if len(self.attributes) > 20:
            raise BadQuery("at most 20 attribute filters")


def _attribute_condition(i: int, f: AttributeFilter, params: dict[str, Any]) -> str:
    """SQL for one attribute filter over span and resource attributes; values are parameters."""
    params[f"ak{i}"] = f.key
    params[f"av{i}"] = f.value
    span_has = f"has(attr_keys, %(ak{i})s)"
    res_has = f"has(resource_attr_keys, %(ak{i})s)"
    span_val = f"attr_values[indexOf(attr_keys, %(ak{i})s)]"
    res_val = f"resource_attr_values[indexOf(resource_attr_keys, %(ak{i})s)]"
    if f.op == "exists":
        return f"({span_has} OR {res_has})"
    if f.op == "=":
        return f"(({span_has} AND {span_val} = %(av{i})s) OR ({res_has} AND {res_val} = %(av{i})s))"
    return f"(({span_has} AND {span_val} != %(av{i})s) OR ({res_has} AND {res_val} != %(av{i})s))"


def search_trace_ids(store: Store, q: SearchQuery) -> list[str]:
    """Trace ids (latest first) with at least one span matching every filter in the range."""
    q.validate()
    params: dict[str, Any] = {
        "from_s": q.start_ns // NS_PER_S,
        "to_s": q.end_ns // NS_PER_S,
        "from_ns": q.start_ns,
        "to_ns": q.end_ns,
        "limit": q.limit,
    }
    where = [
        "ts >= toDateTime(%(from_s)s)",
        "ts <= toDateTime(%(to_s)s)",
        "start_ns >= %(from_ns)s",
        "start_ns <= %(to_ns)s",
    ]
    if q.service:
        where.append("service_name = %(service)s")
        params["service"] = q.service
    if q.operation:
        where.append("span_name = %(operation)s")
        params["operation"] = q.operation
    if q.min_duration_ns is not None:
        where.append("duration_ns >= %(min_d)s")
        params["min_d"] = q.min_duration_ns
    if q.max_duration_ns is not None:
        where.append("duration_ns <= %(max_d)s")
        params["max_d"] = q.max_duration_ns
    if q.errors_only:
        where.append("status_code = 2")
    where.extend(_attribute_condition(i, f, params) for i, f in enumerate(q.attributes))
    latest: dict[str, int] = {}
    for table in ("spans", KEPT_TABLE):  # both tiers; a trace kept while hot is in both
        rows = store.query(
            f"SELECT trace_id, max(start_ns) AS latest FROM {table} WHERE "
            + " AND ".join(where)
            + " GROUP BY trace_id ORDER BY latest DESC LIMIT %(limit)s",
            params,
        )
        for trace_id, start in rows:
            latest[trace_id] = max(int(start), latest.get(trace_id, 0))
    return sorted(latest, key=lambda t: (-latest[t], t))[: q.limit]


def trace_summaries(
    store: Store, trace_ids: list[str], start_ns: int, end_ns: int
) -> list[TraceSummary]:
    """Summaries of the given traces (in the order given), from the days of the range only.

    Times and root come from the index's cheap states; span, error and service counts
    from the spans-by-trace table, because decoding the index's span-id sets for every
    row of the granules touched costs several times more than reading four plain columns.
    """
    if not trace_ids:
        return []
    params = {"ids": tuple(trace_ids), "from_s": start_ns // NS_PER_S, "to_s": end_ns // NS_PER_S}
    index_rows = store.query(
        "SELECT trace_id, minMerge(trace_start_ns), maxMerge(trace_end_ns), "
        "anyIfMerge(root_service), anyIfMerge(root_name) FROM trace_index "
        "PREWHERE trace_id IN %(ids)s WHERE day >= toDate(toDateTime(%(from_s)s)) "
        "AND day <= toDate(toDateTime(%(to_s)s)) GROUP BY trace_id",
        params,
    )
    count_rows = store.query(
        "SELECT trace_id, uniqExact(span_id), uniqExactIf(span_id, status_code = 2), "
        "groupUniqArray(toString(service_name)) FROM spans_by_trace PREWHERE trace_id IN %(ids)s "
        "WHERE ts >= toDateTime(toDate(toDateTime(%(from_s)s))) "
        "AND ts < toDateTime(toDate(toDateTime(%(to_s)s)) + 1) GROUP BY trace_id",
        params,
    )
    counts = {r[0]: r[1:] for r in count_rows}
    by_id = {}
    for trace_id, start, end, root_service, root_name in index_rows:
        spans, errors, services = counts.get(trace_id, (0, 0, []))
        by_id[trace_id] = TraceSummary(
            trace_id=trace_id,
            start_ns=int(start),
            end_ns=int(end),
            span_count=int(spans),
            error_count=int(errors),
            services=sorted(str(s) for s in services),
            root_service=str(root_service),
            root_name=str(root_name),
        )
    missing = tuple(t for t in trace_ids if t not in by_id)
    if missing:
        by_id.update(_kept_summaries(store, {**params, "ids": missing}))
    return [by_id[t] for t in trace_ids if t in by_id]


# A root span first, else the earliest span: the trace's root as the index reports it.
_ROOT_FIRST = "if(parent_span_id = '', toUInt64(0), start_ns)"


def _kept_summaries(store: Store, params: dict[str, Any]) -> dict[str, TraceSummary]:
    """Summaries of traces past the hot window, from the kept tier's spans."""
    rows = store.query(
        "SELECT trace_id, min(start_ns), max(start_ns + duration_ns), "
        "uniqExact(span_id), uniqExactIf(span_id, status_code = 2), "
        "groupUniqArray(toString(service_name)), "
        f"argMin(toString(service_name), {_ROOT_FIRST}), "
        f"argMin(toString(span_name), {_ROOT_FIRST}) "
        f"FROM {KEPT_TABLE} PREWHERE trace_id IN %(ids)s "
        "WHERE ts >= toDateTime(toDate(toDateTime(%(from_s)s))) "
        "AND ts < toDateTime(toDate(toDateTime(%(to_s)s)) + 1) GROUP BY trace_id",
        params,
    )
    return {
        r[0]: TraceSummary(
            trace_id=r[0],
            start_ns=int(r[1]),
            end_ns=int(r[2]),
            span_count=int(r[3]),
            error_count=int(r[4]),
            services=sorted(str(s) for s in r[5]),
            root_service=str(r[6]),
            root_name=str(r[7]),
        )
        for r in rows
    }


def search(store: Store, q: SearchQuery) -> list[TraceSummary]:
    return trace_summaries(store, search_trace_ids(store, q), q.start_ns, q.end_ns)


def load_traces(store: Store, trace_ids: list[str], max_spans: int) -> list[Trace]:
    """Several traces by id (for the Jaeger search API, which returns whole traces)."""
    traces = []
    for trace_id in trace_ids:
        trace = load_trace(store, trace_id, max_spans)
        if trace is not None:
            traces.append(trace)
    return traces


def services(store: Store, start_ns: int, end_ns: int) -> list[str]:
    """Service names seen in the range, from the per-minute latency rollup."""
    rows = store.query(
        "SELECT DISTINCT toString(service_name) FROM latency_minute "
        "WHERE minute >= toDateTime(%(f)s) AND minute <= toDateTime(%(t)s)",
        {"f": start_ns // NS_PER_S - 60, "t": end_ns // NS_PER_S},
    )
    return sorted(r[0] for r in rows)


def operations(
    store: Store, service: str, start_ns: int, end_ns: int, kind: int | None = None
) -> list[tuple[str, int]]:
    """(operation, span kind) pairs of one service in the range, from the rollup."""
    params: dict[str, Any] = {"s": service, "f": start_ns // NS_PER_S - 60, "t": end_ns // NS_PER_S}
    kind_sql = ""
    if kind is not None:
        kind_sql = " AND span_kind = %(k)s"
        params["k"] = kind
    rows = store.query(
        "SELECT DISTINCT toString(span_name), span_kind FROM latency_minute "
        "WHERE service_name = %(s)s AND minute >= toDateTime(%(f)s) "
        f"AND minute <= toDateTime(%(t)s){kind_sql}",
        params,
    )
    return sorted((str(r[0]), int(r[1])) for r in rows)


def trace_ids_with_prefix(store: Store, prefix: str, limit: int = 5) -> list[str]:
    """Stored trace ids starting with ``prefix`` (lowercase hex), a range of the index's key."""
    rows = store.query(
        "SELECT DISTINCT trace_id FROM trace_index "
        "PREWHERE trace_id >= %(lo)s AND trace_id < %(hi)s LIMIT %(n)s",
        {"lo": prefix, "hi": prefix + "g", "n": limit},
    )
    return sorted(str(r[0]) for r in rows)


ATTRIBUTE_KEY_SAMPLE = 200_000


def attribute_keys(store: Store, start_ns: int, end_ns: int, limit: int = 300) -> list[str]:
    """Span and resource attribute keys seen in the range, commonest first (from a sample)."""
    rows = store.query(
        "SELECT k FROM (SELECT arrayJoin(arrayConcat("
        "arrayMap(x -> toString(x), attr_keys), arrayMap(x -> toString(x), resource_attr_keys)"
        ")) AS k FROM spans WHERE ts >= toDateTime(%(f)s) AND ts <= toDateTime(%(t)s) "
        "LIMIT %(sample)s) GROUP BY k ORDER BY count() DESC, k LIMIT %(n)s",
        {
            "f": start_ns // NS_PER_S,
            "t": end_ns // NS_PER_S,
            "sample": ATTRIBUTE_KEY_SAMPLE,
            "n": limit,
        },
    )
    return [str(r[0]) for r in rows]
