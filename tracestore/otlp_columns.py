"""OTLP protobuf → named columns for the ``spans`` and ``metric_points`` tables.

Two halves, used at two points of the pipeline:

* ``validate_traces`` / ``validate_metrics`` run in the receivers. They check what
  must be answered to the client (invalid ids, timestamps outside the window when
  the policy is "reject"), drop the offending items and count them for the OTLP
  partial-success reply. When nothing was dropped the client's bytes are spooled
  as they came, so the request is never re-encoded on the hot path.
* ``TraceColumns`` / ``MetricColumns`` run in the writer. They turn a batch of
  spooled requests into one list per column with list comprehensions (no
  dict-per-span), truncating long attribute values and clamping far timestamps
  (relative to the time the request was received, so a replay gives the same rows).

Attribute values are stored as text with a type code beside them:
0 empty, 1 string, 2 bool (``true``/``false``), 3 int (decimal), 4 double
(Python ``repr``, which round-trips), 5 bytes (base64), 6 array and 7 kvlist (the
value's OTLP JSON encoding, e.g. ``{"values":[{"stringValue":"a"}]}``).
Event and link attributes are JSON text of ``[[key, type, value], ...]``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain
from operator import attrgetter
from sys import intern

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracestore.span_limits import NS, Limits
from tracestore.span_model import ATTR_FIELDS

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
# The largest values both stores hold as sent. Times: the last second of ClickHouse's
# DateTime (2106; ``ts`` is the start second), well inside Int64, so durations fit too.
# Counts: Int64, which chDB's Arrow conversion needs (UInt64 columns, signed Arrow ints).
MAX_TIME_NS = (2**32 - 1) * NS
MAX_COUNT = 2**63 - 1
# OTLP enums are open (any int32 arrives), the columns are UInt8: only known codes.
MAX_SPAN_KIND = 5
MAX_STATUS_CODE = 2
MAX_TEMPORALITY = 2

SPAN_COLUMNS = (
    "ts",
    "start_ns",
    "duration_ns",
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "flags",
    "service_name",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
    "scope_name",
    "scope_version",
    "attr_keys",
    "attr_types",
    "attr_values",
    "resource_attr_keys",
    "resource_attr_types",
    "resource_attr_values",
    "event_times_ns",
    "event_names",
    "event_attrs",
    "event_dropped_attributes_counts",
    "link_trace_ids",
    "link_span_ids",
    "link_trace_states",
    "link_attrs",
    "link_dropped_attributes_counts",
    "link_flags",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "resource_dropped_attributes_count",
    "scope_attrs",
    "resource_schema_url",
    "scope_schema_url",
)

METRIC_COLUMNS = (
    "ts",
    "time_ns",
    "start_time_ns",
    "service_name",
    "metric_name",
    "metric_type",
    "unit",
    "temporality",
    "is_monotonic",
    "attr_keys",
    "attr_values",
    "resource_attr_keys",
    "resource_attr_values",
    "value",
    "count",
    "sum",
    "bucket_bounds",
    "bucket_counts",
    "scope_name",
)

# metric_type codes stored in metric_points.
GAUGE, SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM, SUMMARY = 1, 2, 3, 4, 5


@dataclass
class Verdict:
    """The receiver's answer for one request: what to spool and what to report."""

    payload: bytes
    accepted: int
    rejected: int = 0
    message: str = ""


class DecodeError(ValueError):
    """The request body is not a valid OTLP message."""


def decode(message_type: type, data: bytes):
    try:
        return message_type.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError and sometimes others
        raise DecodeError(f"cannot decode {message_type.__name__}: {exc}") from None


def _out_of_range(span) -> bool:
    """A time, enum or count the stores cannot hold as sent (see ``MAX_TIME_NS``)."""
    return (
        span.start_time_unix_nano > MAX_TIME_NS
        or span.end_time_unix_nano > MAX_TIME_NS
        or not 0 <= span.kind <= MAX_SPAN_KIND
        or (span.HasField("status") and not 0 <= span.status.code <= MAX_STATUS_CODE)
        or (len(span.events) > 0 and max(e.time_unix_nano for e in span.events) > MAX_TIME_NS)
    )


def _bad_spans(spans, lo: int, hi: int, check_time: bool) -> tuple[set[int], set[int], set[int]]:
    """Indexes of spans with invalid ids, with values out of range, and (if
    checked) with far start times."""
    bad_ids = {
        i
        for i, s in enumerate(spans)
        if len(s.trace_id) != 16
        or len(s.span_id) != 8
        or len(s.parent_span_id) not in (0, 8)
        or s.trace_id == _ZERO_TRACE
        or s.span_id == _ZERO_SPAN
    }
    bad_values = {i for i, s in enumerate(spans) if i not in bad_ids and _out_of_range(s)}
    bad_times: set[int] = set()
    if check_time:
        bad_times = {
            i
            for i, s in enumerate(spans)
            if i not in bad_ids and i not in bad_values and not lo <= s.start_time_unix_nano <= hi
        }
    return bad_ids, bad_values, bad_times


def validate_traces(
    request: ExportTraceServiceRequest, raw: bytes | None, limits: Limits, now_ns: int
) -> Verdict:
    """Drop spans with invalid ids or values out of range (and, under "reject", far
    timestamps); count them."""
    lo, hi = limits.window(now_ns)
    check_time = limits.timestamp_policy == "reject"
    accepted = bad_ids = bad_values = bad_times = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            ids, values, times = _bad_spans(spans, lo, hi, check_time)
            if ids or values or times:
                drop = ids | values | times
                keep = [s for i, s in enumerate(spans) if i not in drop]
                bad_ids += len(ids)
                bad_values += len(values)
                bad_times += len(times)
                del spans[:]
                spans.extend(keep)
            accepted += len(spans)
    rejected = bad_ids + bad_values + bad_times
    if rejected == 0 and raw is not None:
        return Verdict(raw, accepted)
    return Verdict(
        request.SerializeToString(),
        accepted,
        rejected,
        _reject_message(bad_ids, bad_times, "spans", bad_values),
    )


def _reject_message(bad_ids: int, bad_times: int, what: str, bad_values: int = 0) -> str:
    parts = []
    if bad_ids:
        parts.append(f"{bad_ids} {what} with an invalid trace or span id")
    if bad_values:
        parts.append(
            f"{bad_values} {what} with a time after 2106, a count over 2^63-1"
            " or an unknown kind, status or temporality code"
        )
    if bad_times:
        parts.append(f"{bad_times} {what} with a timestamp outside the accepted window")
    return "rejected " + "; ".join(parts) if parts else ""


def _data_points(metric) -> Sequence:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind else ()


def _point_out_of_range(point) -> bool:
    """Times, counts (histograms, summaries) or bucket counts the stores cannot hold."""
    if point.time_unix_nano > MAX_TIME_NS or point.start_time_unix_nano > MAX_TIME_NS:
        return True
    count = getattr(point, "count", 0)  # number data points have none
    if count > MAX_COUNT:
        return True
    buckets = getattr(point, "bucket_counts", None)
    return bool(buckets) and max(buckets) > MAX_COUNT


def validate_metrics(
    request: ExportMetricsServiceRequest, raw: bytes | None, limits: Limits, now_ns: int
) -> Verdict:
    """Count data points; drop the ones with values out of range (a metric with an
    unknown temporality, all of its points) and, under "reject", far timestamps."""
    lo, hi = limits.window(now_ns)
    check_time = limits.timestamp_policy == "reject"
    accepted = bad_values = bad_times = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = _data_points(metric)
                if not points:
                    continue
                data = getattr(metric, metric.WhichOneof("data"))
                if not 0 <= getattr(data, "aggregation_temporality", 0) <= MAX_TEMPORALITY:
                    keep = []
                else:
                    keep = [p for p in points if not _point_out_of_range(p)]
                values_dropped = len(points) - len(keep)
                if check_time:
                    keep = [p for p in keep if lo <= p.time_unix_nano <= hi]
                if len(keep) != len(points):
                    bad_values += values_dropped
                    bad_times += len(points) - values_dropped - len(keep)
                    del points[:]
                    points.extend(keep)
                accepted += len(points)
    if bad_values + bad_times == 0 and raw is not None:
        return Verdict(raw, accepted)
    return Verdict(
        request.SerializeToString(),
        accepted,
        bad_values + bad_times,
        _reject_message(0, bad_times, "data points", bad_values),
    )


@dataclass
class ConversionStats:
    """What the conversion changed, for the admin metrics."""

    truncated_attributes: int = 0
    clamped_timestamps: int = 0


def type_code(kind: str | None) -> int:
    """The stored type code of an AnyValue kind; a kind a trace cannot carry is refused.

    Profiles' dictionary-indexed strings (``string_value_strindex``) have no dictionary
    to index in a trace request."""
    try:
        return ATTR_FIELDS[kind]
    except KeyError:
        raise DecodeError(f"{kind} attribute values are not supported") from None


_KEY, _VALUE, _NAME = attrgetter("key"), attrgetter("value"), attrgetter("name")
_NO_VALUES: list = []  # shared by rows without attributes; never mutated


@dataclass
class _Encoder:
    """Attribute values to (type code, text), truncating long strings and bytes."""

    limit: int
    stats: ConversionStats = field(default_factory=ConversionStats)

    def text(self, value: AnyValue, kind: str | None) -> str:
        if kind == "string_value":
            text = value.string_value
            if len(text) > self.limit:
                self.stats.truncated_attributes += 1
                text = text[: self.limit]
            return text
        if kind == "int_value":
            return str(value.int_value)
        if kind == "bool_value":
            return "true" if value.bool_value else "false"
        if kind == "double_value":
            return repr(value.double_value)
        if kind == "bytes_value":
            data = value.bytes_value
            if len(data) > self.limit:
                self.stats.truncated_attributes += 1
                data = data[: self.limit]
            return base64.b64encode(data).decode()
        if kind == "array_value":
            return _compact_json(MessageToDict(value.array_value))
        if kind == "kvlist_value":
            return _compact_json(MessageToDict(value.kvlist_value))
        return ""

    def value(self, value: AnyValue) -> tuple[int, str]:
        kind = value.WhichOneof("value")
        return type_code(kind), self.text(value, kind)

    def parallel_many(self, attribute_lists: Sequence) -> tuple[list, list, list]:
        """Key, type and value arrays for each of many attribute lists.

        All attributes are handled as one flat run (a few C-speed comprehensions)
        and then cut back into per-row lists by slicing."""
        lengths = [len(attrs) for attrs in attribute_lists]
        if not any(lengths):
            n = len(lengths)
            return [_NO_VALUES] * n, [_NO_VALUES] * n, [_NO_VALUES] * n
        flat = list(chain.from_iterable(attribute_lists))
        keys = list(map(intern, map(_KEY, flat)))  # one copy of each repeated key
        values = list(map(_VALUE, flat))
        kinds = [v.WhichOneof("value") for v in values]
        try:
            codes = [ATTR_FIELDS[k] for k in kinds]
        except KeyError as exc:
            type_code(exc.args[0])
            raise
        limit = self.limit
        texts = [
            v.string_value if k == "string_value" else self.text(v, k)
            for v, k in zip(values, kinds, strict=True)
        ]
        if max(map(len, texts)) > limit:
            for i, (code, text) in enumerate(zip(codes, texts, strict=True)):
                if code == 1 and len(text) > limit:
                    texts[i] = text[:limit]
                    self.stats.truncated_attributes += 1
        texts = list(map(intern, texts))  # values repeat too; interned strings stay mortal
        ends = list(accumulate(lengths))
        bounds = list(zip([0, *ends[:-1]], ends, strict=True))
        return (
            [keys[a:b] for a, b in bounds],
            [codes[a:b] for a, b in bounds],
            [texts[a:b] for a, b in bounds],
        )

    def parallel(self, attributes) -> tuple[list[str], list[int], list[str]]:
        """Key, type and value arrays for one attribute list."""
        keys, codes, texts = self.parallel_many([attributes])
        return keys[0], codes[0], texts[0]

    def as_json(self, attributes) -> str:
        """``[[key, type, value], ...]`` as JSON text, for events, links and scopes."""
        return _compact_json([[kv.key, *self.value(kv.value)] for kv in attributes])

    def untyped(self, attributes) -> tuple[list[str], list[str]]:
        return [kv.key for kv in attributes], [self.value(kv.value)[1] for kv in attributes]


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _service_name(resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


EVENT_COLUMNS = ("event_times_ns", "event_names", "event_attrs", "event_dropped_attributes_counts")
LINK_COLUMNS = (
    "link_trace_ids",
    "link_span_ids",
    "link_trace_states",
    "link_attrs",
    "link_dropped_attributes_counts",
    "link_flags",
)


class _Columns:
    """One list per column of a table, filled request by request."""

    COLUMNS: tuple[str, ...] = ()
    ROW_COLUMN = ""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.encoder = _Encoder(limits.max_attribute_length)
        self.columns: dict[str, list] = {name: [] for name in self.COLUMNS}

    def add(self, payload: bytes, received_ns: int) -> None:
        """Add one request's rows, or none: a DecodeError part-way leaves no rows behind,
        so the writer can quarantine the record and keep the batch's columns aligned."""
        lengths = {name: len(values) for name, values in self.columns.items()}
        try:
            self._add(payload, received_ns)
        except DecodeError:
            for name, values in self.columns.items():
                del values[lengths[name] :]
            raise

    def _add(self, payload: bytes, received_ns: int) -> None:
        raise NotImplementedError

    @property
    def stats(self) -> ConversionStats:
        return self.encoder.stats

    def __len__(self) -> int:
        return len(self.columns[self.ROW_COLUMN])


class TraceColumns(_Columns):
    """Accumulates spans of many requests as one list per ``spans`` column."""

    COLUMNS = SPAN_COLUMNS
    ROW_COLUMN = "span_id"

    def _add(self, payload: bytes, received_ns: int) -> None:
        request = decode(ExportTraceServiceRequest, payload)
        lo, hi = self.limits.window(received_ns)
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource
            service = _service_name(resource)
            resource_attrs = self.encoder.parallel(resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self._add_spans(
                    resource_spans, resource, service, resource_attrs, scope_spans, lo, hi
                )

    def _add_spans(self, resource_spans, resource, service, resource_attrs, scope_spans, lo, hi):
        spans = list(scope_spans.spans)
        n = len(spans)
        if n == 0:
            return
        c = self.columns
        enc = self.encoder
        scope = scope_spans.scope

        starts = [s.start_time_unix_nano for s in spans]
        ends = [s.end_time_unix_nano for s in spans]
        c["duration_ns"] += [e - b if e > b else 0 for b, e in zip(starts, ends, strict=True)]
        if not all(lo <= b <= hi for b in starts):
            clamped = [min(max(b, lo), hi) for b in starts]
            self.stats.clamped_timestamps += sum(
                a != b for a, b in zip(starts, clamped, strict=True)
            )
            starts = clamped
        c["start_ns"] += starts
        c["ts"] += [b // NS for b in starts]
        c["trace_id"] += [s.trace_id.hex() for s in spans]
        c["span_id"] += [s.span_id.hex() for s in spans]
        c["parent_span_id"] += [s.parent_span_id.hex() for s in spans]
        c["trace_state"] += [s.trace_state for s in spans]
        c["flags"] += [s.flags for s in spans]
        c["span_name"] += list(map(intern, map(_NAME, spans)))
        c["span_kind"] += [s.kind for s in spans]
        # Sub-message wrappers are costly in upb: touch `status` only where it is set.
        statuses = [s.status if s.HasField("status") else None for s in spans]
        c["status_code"] += [st.code if st else 0 for st in statuses]
        c["status_message"] += [st.message if st else "" for st in statuses]
        keys, types, values = enc.parallel_many([s.attributes for s in spans])
        c["attr_keys"] += keys
        c["attr_types"] += types
        c["attr_values"] += values
        self._add_nested(spans, "events", EVENT_COLUMNS, self._events)
        self._add_nested(spans, "links", LINK_COLUMNS, self._links)
        c["dropped_attributes_count"] += [s.dropped_attributes_count for s in spans]
        c["dropped_events_count"] += [s.dropped_events_count for s in spans]
        c["dropped_links_count"] += [s.dropped_links_count for s in spans]

        scope_attrs = enc.as_json(scope.attributes) if len(scope.attributes) else ""
        constants = {
            "service_name": service,
            "scope_name": scope.name,
            "scope_version": scope.version,
            "resource_attr_keys": resource_attrs[0],
            "resource_attr_types": resource_attrs[1],
            "resource_attr_values": resource_attrs[2],
            "resource_dropped_attributes_count": resource.dropped_attributes_count,
            "scope_attrs": scope_attrs,
            "resource_schema_url": resource_spans.schema_url,
            "scope_schema_url": scope_spans.schema_url,
        }
        for name, value in constants.items():
            c[name] += [value] * n

    def _add_nested(self, spans: list, field_name: str, names: tuple, convert) -> None:
        """Events or links: per span only for the spans that have any."""
        nested = [getattr(s, field_name) for s in spans]
        if not any(nested):
            for name in names:
                self.columns[name] += [_NO_VALUES] * len(spans)
            return
        empty = (_NO_VALUES,) * len(names)
        rows = [convert(items) if items else empty for items in nested]
        for i, name in enumerate(names):
            self.columns[name] += [row[i] for row in rows]

    def _events(self, events) -> tuple:
        return (
            [e.time_unix_nano for e in events],
            [e.name for e in events],
            [self.encoder.as_json(e.attributes) for e in events],
            [e.dropped_attributes_count for e in events],
        )

    def _links(self, links) -> tuple:
        return (
            [link.trace_id.hex() for link in links],
            [link.span_id.hex() for link in links],
            [link.trace_state for link in links],
            [self.encoder.as_json(link.attributes) for link in links],
            [link.dropped_attributes_count for link in links],
            [link.flags for link in links],
        )


class MetricColumns(_Columns):
    """Accumulates data points of many requests as one list per ``metric_points`` column."""

    COLUMNS = METRIC_COLUMNS
    ROW_COLUMN = "time_ns"

    def _add(self, payload: bytes, received_ns: int) -> None:
        request = decode(ExportMetricsServiceRequest, payload)
        lo, hi = self.limits.window(received_ns)
        for resource_metrics in request.resource_metrics:
            resource = resource_metrics.resource
            service = _service_name(resource)
            resource_keys, resource_values = self.encoder.untyped(resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                shared = {
                    "service_name": service,
                    "resource_attr_keys": resource_keys,
                    "resource_attr_values": resource_values,
                    "scope_name": scope_metrics.scope.name,
                }
                for metric in scope_metrics.metrics:
                    self._add_metric(metric, shared, lo, hi)

    def _add_metric(self, metric, shared: dict, lo: int, hi: int) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        data = getattr(metric, kind)
        points = list(data.data_points)
        n = len(points)
        if n == 0:
            return
        c = self.columns
        metric_type = {
            "gauge": GAUGE,
            "sum": SUM,
            "histogram": HISTOGRAM,
            "exponential_histogram": EXPONENTIAL_HISTOGRAM,
            "summary": SUMMARY,
        }[kind]
        times = [p.time_unix_nano for p in points]
        if not all(lo <= t <= hi for t in times):
            clamped = [min(max(t, lo), hi) for t in times]
            self.stats.clamped_timestamps += sum(
                a != b for a, b in zip(times, clamped, strict=True)
            )
            times = clamped
        c["time_ns"] += times
        c["ts"] += [t // NS for t in times]
        c["start_time_ns"] += [p.start_time_unix_nano for p in points]
        attrs = [self.encoder.untyped(p.attributes) for p in points]
        c["attr_keys"] += [a[0] for a in attrs]
        c["attr_values"] += [a[1] for a in attrs]
        if metric_type in (GAUGE, SUM):
            c["value"] += [_number(p) for p in points]
            c["count"] += [0] * n
            c["sum"] += [0.0] * n
        else:
            c["value"] += [0.0] * n
            c["count"] += [p.count for p in points]
            c["sum"] += [p.sum for p in points]
        if metric_type == HISTOGRAM:
            c["bucket_bounds"] += [list(p.explicit_bounds) for p in points]
            c["bucket_counts"] += [list(p.bucket_counts) for p in points]
        else:
            c["bucket_bounds"] += [[] for _ in points]
            c["bucket_counts"] += [[] for _ in points]
        constants = {
            **shared,
            "metric_name": metric.name,
            "metric_type": metric_type,
            "unit": metric.unit,
            "temporality": getattr(data, "aggregation_temporality", 0),
            "is_monotonic": int(getattr(data, "is_monotonic", False)),
        }
        for name, value in constants.items():
            c[name] += [value] * n


def _number(point) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
