"""Stored spans back to OTLP's JSON encoding (``TracesData``), as Jaeger's API v3 answers.

Spans are grouped by resource (service plus resource attributes), then by
instrumentation scope. The encoding is proto3 JSON as OTLP/HTTP specifies it:
lowerCamelCase fields, ids in hex, 64-bit integers and nanosecond times as
decimal strings, enums as numbers, and fields at their default value left out.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard.trace_json import json_double
from tracestore import trace_queries as tq


def any_value(a: tq.Attribute) -> dict[str, Any]:
    """One attribute's value as an OTLP ``AnyValue``."""
    if a.type == tq.ATTR_STRING:
        return {"stringValue": a.value}
    if a.type in (tq.ATTR_ARRAY, tq.ATTR_KVLIST):
        try:
            inner = json.loads(a.value)
        except ValueError:
            return {"stringValue": a.value}
        return {"arrayValue" if a.type == tq.ATTR_ARRAY else "kvlistValue": inner}
    if a.type == tq.ATTR_BYTES:
        return {"bytesValue": a.value}  # stored as base64, as proto3 JSON writes bytes
    typed = a.typed()
    if a.type == tq.ATTR_BOOL:
        return {"boolValue": typed}
    if a.type == tq.ATTR_INT and isinstance(typed, int):
        return {"intValue": str(typed)}
    if a.type == tq.ATTR_DOUBLE and isinstance(typed, float):
        return {"doubleValue": json_double(typed)}
    return {"stringValue": a.value} if a.value else {}


def key_values(attrs: list[tq.Attribute]) -> list[dict[str, Any]]:
    return [{"key": a.key, "value": any_value(a)} for a in attrs]


def _drop_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """proto3 JSON leaves out fields at their default (empty, zero, "0")."""
    return {k: v for k, v in obj.items() if v not in ("", 0, "0", [], {}, None)}


def span_json(s: tq.Span) -> dict[str, Any]:
    status = _drop_defaults({"code": s.status_code, "message": s.status_message})
    return _drop_defaults(
        {
            "traceId": s.trace_id,
            "spanId": s.span_id,
            "traceState": s.trace_state,
            "parentSpanId": s.parent_span_id,
            "flags": s.flags,
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": str(s.start_ns),
            "endTimeUnixNano": str(s.end_ns),
            "attributes": key_values(s.attributes),
            "droppedAttributesCount": s.dropped_attributes,
            "events": [
                _drop_defaults(
                    {
                        "timeUnixNano": str(e["time_ns"]),
                        "name": e["name"],
                        "attributes": key_values(e["attributes"]),
                    }
                )
                for e in s.events
            ],
            "droppedEventsCount": s.dropped_events,
            "links": [
                _drop_defaults(
                    {
                        "traceId": lk["trace_id"],
                        "spanId": lk["span_id"],
                        "traceState": lk["trace_state"],
                        "attributes": key_values(lk["attributes"]),
                    }
                )
                for lk in s.links
            ],
            "droppedLinksCount": s.dropped_links,
            "status": status,
        }
    )


def _resource(s: tq.Span) -> list[tq.Attribute]:
    """Resource attributes with ``service.name`` first (it is stored as a column too)."""
    rest = [a for a in s.resource if a.key != "service.name"]
    return [tq.Attribute("service.name", tq.ATTR_STRING, s.service), *rest]


def resource_spans(traces: list[tq.Trace]) -> list[dict[str, Any]]:
    """``ResourceSpans`` for the spans of ``traces``, grouped by resource then scope."""
    groups: dict[tuple, dict[tuple, list[tq.Span]]] = {}
    resources: dict[tuple, list[tq.Attribute]] = {}
    for trace in traces:
        for s in trace.spans:
            attrs = _resource(s)
            key = tuple((a.key, a.type, a.value) for a in attrs)
            resources.setdefault(key, attrs)
            groups.setdefault(key, {}).setdefault((s.scope_name, s.scope_version), []).append(s)
    return [
        {
            "resource": {"attributes": key_values(resources[key])},
            "scopeSpans": [
                {
                    "scope": _drop_defaults({"name": name, "version": version}),
                    "spans": [span_json(s) for s in spans],
                }
                for (name, version), spans in scopes.items()
            ],
        }
        for key, scopes in groups.items()
    ]
