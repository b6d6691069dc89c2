"""Jaeger's query API (``/api/...``) over sidetrace's tables.

Grafana's Jaeger data source and Jaeger-UI tooling speak this shape: every
answer is the envelope ``{data, total, limit, offset, errors}``, times are Unix
microseconds, and a bad parameter is a 400 whose ``errors`` carries the message.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import params
from dashboard.context import DashboardContext
from dashboard.json_input import BadJson, parse_json_object
from dashboard.openapi import json_response, path_param, query_param
from dashboard.trace_json import json_double
from tracestore import analytics_queries, tier_queries
from tracestore import trace_queries as tq

# Jaeger's query service answers a search without ``limit`` with up to 100 traces.
DEFAULT_LIMIT = 100
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")
JAEGER_KINDS = {"server": 2, "client": 3, "producer": 4, "consumer": 5, "internal": 1}
_TAG_TYPES = {
    tq.ATTR_STRING: "string",
    tq.ATTR_BOOL: "bool",
    tq.ATTR_INT: "int64",
    tq.ATTR_DOUBLE: "float64",
    tq.ATTR_BYTES: "binary",
}


def envelope(
    data: Any, total: int | None = None, status: int = 200, errors: list | None = None
) -> Response:
    count = total if total is not None else (len(data) if isinstance(data, list) else 0)
    body = {"data": data, "total": count, "limit": 0, "offset": 0, "errors": errors}
    return JSONResponse(body, status_code=status)


def span_kind_name(kind: int) -> str:
    """Jaeger's name for an OTLP span kind; unspecified (or unknown) is empty."""
    name = tq.SPAN_KINDS.get(kind, "")
    return "" if name == "unspecified" else name


def parse_trace_id(text: str) -> str:
    """A 32-hex lowercase id from 1 to 32 hex digits, left-padded as Jaeger pads them."""
    text = (text or "").strip()
    if not _TRACE_ID.match(text):
        raise tq.BadQuery(f"trace id must be 1 to 32 hex digits, got {text[:40]!r}")
    return text.lower().rjust(32, "0")


def error(status: int, message: str) -> Response:
    body = {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": status, "msg": message}],
    }
    return JSONResponse(body, status_code=status)


def jaeger_trace_id(trace_id: str) -> str:
    """Jaeger prints 64-bit ids (high half zero) as 16 hex digits."""
    return trace_id[16:] if trace_id.startswith("0" * 16) else trace_id


def tag(a: tq.Attribute) -> dict[str, Any]:
    kind = _TAG_TYPES.get(a.type, "string")
    value = a.typed() if kind != "binary" else a.value
    if not isinstance(value, str | int | float | bool):
        value = json.dumps(value)
    return {"key": a.key, "type": kind, "value": json_double(value)}


def _extra_tags(span: tq.Span) -> list[dict[str, Any]]:
    """OTLP fields Jaeger keeps as tags: span kind, status, instrumentation scope."""
    tags: list[dict[str, Any]] = []
    kind = tq.SPAN_KINDS.get(span.kind)
    if kind not in (None, "unspecified"):
        tags.append({"key": "span.kind", "type": "string", "value": kind})
    if span.status_code == 2:
        tags.append({"key": "error", "type": "bool", "value": True})
    if span.status_code:
        code = tq.STATUS_CODES[span.status_code].upper() if span.status_code in (1, 2) else "UNSET"
        tags.append({"key": "otel.status_code", "type": "string", "value": code})
    if span.status_message:
        tags.append(
            {"key": "otel.status_description", "type": "string", "value": span.status_message}
        )
    if span.scope_name:
        tags.append({"key": "otel.scope.name", "type": "string", "value": span.scope_name})
    if span.scope_version:
        tags.append({"key": "otel.scope.version", "type": "string", "value": span.scope_version})
    return tags


def trace_to_jaeger(trace: tq.Trace) -> dict[str, Any]:
    """One trace in Jaeger's UI model: spans with references, processes by id."""
    processes: dict[str, dict[str, Any]] = {}
    process_ids: dict[tuple, str] = {}
    spans = []
    known = {s.span_id for s in trace.spans}
    trace_id = jaeger_trace_id(trace.summary.trace_id)
    for s in trace.spans:
        resource = tuple((a.key, a.type, a.value) for a in s.resource if a.key != "service.name")
        key = (s.service, resource)
        pid = process_ids.get(key)
        if pid is None:
            pid = f"p{len(process_ids) + 1}"
            process_ids[key] = pid
            processes[pid] = {
                "serviceName": s.service,
                "tags": [tag(tq.Attribute(*r)) for r in resource],
            }
        references = []
        if s.parent_span_id:
            references.append(
                {"refType": "CHILD_OF", "traceID": trace_id, "spanID": s.parent_span_id}
            )
        references.extend(
            {
                "refType": "FOLLOWS_FROM",
                "traceID": jaeger_trace_id(lk["trace_id"]),
                "spanID": lk["span_id"],
            }
            for lk in s.links
        )
        warnings = []
        if s.parent_span_id and s.parent_span_id not in known:
            warnings.append(
                f"invalid parent span IDs={s.parent_span_id}; skipping clock skew adjustment"
            )
        spans.append(
            {
                "traceID": trace_id,
                "spanID": s.span_id,
                "flags": s.flags,
                "operationName": s.name,
                "references": references,
                "startTime": s.start_ns // 1000,
                "duration": s.duration_ns // 1000,
                "tags": [tag(a) for a in s.attributes] + _extra_tags(s),
                "logs": [
                    {
                        "timestamp": e["time_ns"] // 1000,
                        "fields": [{"key": "event", "type": "string", "value": e["name"]}]
                        + [tag(a) for a in e["attributes"]],
                    }
                    for e in s.events
                ],
                "processID": pid,
                "warnings": warnings or None,
            }
        )
    warnings = None
    if trace.left_out:
        warnings = [f"{trace.left_out} spans left out: the trace exceeds the span cap"]
    return {"traceID": trace_id, "spans": spans, "processes": processes, "warnings": warnings}


def parse_tags(request: Request) -> tuple[list[tq.AttributeFilter], bool]:
    """``tags`` as a JSON object or repeated ``tag=key:value``; ``error=true``: status error."""
    pairs: list[tuple[str, str]] = []
    raw = request.query_params.get("tags")
    if raw:
        try:
            obj = parse_json_object(raw, "the 'tags' parameter")
        except BadJson as exc:
            raise tq.BadQuery(f"malformed 'tags': {exc}") from None
        pairs.extend((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in obj.items())
    for item in request.query_params.getlist("tag"):
        key, sep, value = item.partition(":")
        if not sep:
            raise tq.BadQuery(f"malformed 'tag' parameter {item[:80]!r}: expected key:value")
        pairs.append((key, value))
    errors_only = False
    filters = []
    for key, value in pairs:
        if key == "error" and value.lower() == "true":
            errors_only = True
            continue
        f = tq.AttributeFilter.parse(f"{key}={value}")
        filters.append(tq.AttributeFilter(f.key, "=", value))
    return filters, errors_only


def traces_query(request: Request) -> tq.SearchQuery:
    qp = request.query_params
    service = qp.get("service")
    if not service:
        raise tq.BadQuery("parameter 'service' is required")
    end_ns = params.parse_micros(qp["end"], "end") if qp.get("end") else time.time_ns()
    if qp.get("start"):
        start_ns = params.parse_micros(qp["start"], "start")
    else:
        start_ns = end_ns - params.parse_lookback(qp.get("lookback") or "1h")
    # Jaeger takes any range; Grafana sends its picker's range as it is. Searches
    # read at most the last 31 days of it (spans older than that are past retention).
    start_ns = max(start_ns, end_ns - params.MAX_LOOKBACK_NS)
    filters, errors_only = parse_tags(request)
    limit_text = qp.get("limit") or str(DEFAULT_LIMIT)
    q = tq.SearchQuery(
        start_ns=start_ns,
        end_ns=end_ns,
        service=service,
        operation=qp.get("operation") or None,
        attributes=filters,
        min_duration_ns=(
            params.parse_duration(qp["minDuration"], bare_unit=None)
            if qp.get("minDuration")
            else None
        ),
        max_duration_ns=(
            params.parse_duration(qp["maxDuration"], bare_unit=None)
            if qp.get("maxDuration")
            else None
        ),
        errors_only=errors_only,
        limit=params.parse_int(limit_text, "limit", 1, tq.MAX_SEARCH_LIMIT),
    )
    q.validate()
    return q


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store
    week = "7d"

    async def services(request: Request) -> Response:
        start_ns, end_ns = params.time_range(None, None, week)
        names = await run_in_threadpool(tq.services, store, start_ns, end_ns)
        return envelope(names)

    async def service_operations(request: Request) -> Response:
        start_ns, end_ns = params.time_range(None, None, week)
        pairs = await run_in_threadpool(
            tq.operations, store, request.path_params["service"], start_ns, end_ns
        )
        return envelope(sorted({name for name, _ in pairs}))

    async def operations(request: Request) -> Response:
        service = request.query_params.get("service")
        if not service:
            return error(400, "parameter 'service' is required")
        kind_text = request.query_params.get("spanKind") or ""
        if kind_text and kind_text not in JAEGER_KINDS:
            return error(400, f"unsupported spanKind {kind_text[:40]!r}")
        start_ns, end_ns = params.time_range(None, None, week)
        pairs = await run_in_threadpool(
            tq.operations, store, service, start_ns, end_ns, JAEGER_KINDS.get(kind_text)
        )
        data = [{"name": n, "spanKind": span_kind_name(k)} for n, k in pairs]
        return envelope(data)

    async def traces(request: Request) -> Response:
        ids = request.query_params.getlist("traceID")
        try:
            if ids:
                trace_ids = [parse_trace_id(t) for t in ids[: tq.MAX_SEARCH_LIMIT]]
            else:
                q = traces_query(request)
                trace_ids = await run_in_threadpool(tq.search_trace_ids, store, q)
        except tq.BadQuery as exc:
            return error(400, str(exc))
        found = await run_in_threadpool(tq.load_traces, store, trace_ids, ctx.max_trace_spans)
        if not ids:
            return envelope([trace_to_jaeger(t) for t in found])
        # Jaeger lists each id it could not find; its UI (compare) waits for that.
        loaded = {t.summary.trace_id for t in found}
        missing = [
            {"msg": "trace not found", "traceID": jaeger_trace_id(t)}
            for t in dict.fromkeys(trace_ids)
            if t not in loaded
        ]
        return envelope([trace_to_jaeger(t) for t in found], errors=missing or None)

    async def trace(request: Request) -> Response:
        try:
            trace_id = parse_trace_id(request.path_params["trace_id"])
        except tq.BadQuery as exc:
            return error(400, str(exc))
        found = await run_in_threadpool(tq.load_trace, store, trace_id, ctx.max_trace_spans)
        if found is None:
            gone = await run_in_threadpool(tier_queries.missing_trace_message, store, trace_id)
            return error(404, f"trace {gone}" if gone else "trace not found")
        return envelope([trace_to_jaeger(found)])

    async def dependencies(request: Request) -> Response:
        qp = request.query_params
        try:
            now_ms = time.time_ns() // 1_000_000
            end_ms = params.parse_int(qp.get("endTs") or str(now_ms), "endTs", 0, 10**13)
            day_ms = 86_400_000
            lookback_ms = params.parse_int(qp.get("lookback") or str(day_ms), "lookback", 1, 10**13)
            lookback_ms = min(lookback_ms, params.MAX_LOOKBACK_NS // 1_000_000)  # as searches
        except tq.BadQuery as exc:
            return error(400, str(exc))
        start_ns = max(0, end_ms - lookback_ms) * 1_000_000
        links = await run_in_threadpool(
            analytics_queries.dependencies, store, start_ns, end_ms * 1_000_000
        )
        service = qp.get("service")
        if service:
            links = [lk for lk in links if service in (lk["parent"], lk["child"])]
        return envelope(list(links))

    return [
        Route("/api/services", services),
        Route("/api/services/{service}/operations", service_operations),
        Route("/api/operations", operations),
        Route("/api/traces", traces),
        Route("/api/traces/{trace_id}", trace),
        Route("/api/dependencies", dependencies),
    ]


_STR = {"type": "string"}
_JAEGER = "Jaeger-compatible envelope {data, total, limit, offset, errors}"
OPENAPI_PATHS: dict[str, Any] = {
    "/api/services": {
        "get": {"summary": "Service names (Jaeger)", "responses": {"200": json_response(_JAEGER)}}
    },
    "/api/services/{service}/operations": {
        "get": {
            "summary": "Operation names of a service (Jaeger)",
            "parameters": [path_param("service", _STR)],
            "responses": {"200": json_response(_JAEGER)},
        }
    },
    "/api/operations": {
        "get": {
            "summary": "Operations with span kinds (Jaeger)",
            "parameters": [
                query_param("service", _STR, required=True),
                query_param("spanKind", {"type": "string", "enum": list(JAEGER_KINDS)}),
            ],
            "responses": {"200": json_response(_JAEGER), "400": json_response(_JAEGER)},
        }
    },
    "/api/traces": {
        "get": {
            "summary": "Trace search (Jaeger)",
            "parameters": [
                query_param("service", _STR, required=True),
                query_param("operation", _STR),
                query_param("tags", _STR, 'JSON object, e.g. {"http.status_code":"500"}'),
                query_param("minDuration", _STR, "Go duration, e.g. 100ms"),
                query_param("maxDuration", _STR, "Go duration, e.g. 2s"),
                query_param("start", {"type": "integer", "minimum": 0}, "Unix microseconds"),
                query_param("end", {"type": "integer", "minimum": 0}, "Unix microseconds"),
                query_param("lookback", _STR, "e.g. 1h"),
                query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1500}),
            ],
            "responses": {"200": json_response(_JAEGER), "400": json_response(_JAEGER)},
        }
    },
    "/api/traces/{trace_id}": {
        "get": {
            "summary": "One trace (Jaeger)",
            "parameters": [path_param("trace_id", _STR)],
            "responses": {
                "200": json_response(_JAEGER),
                "400": json_response(_JAEGER),
                "404": json_response(_JAEGER),
            },
        }
    },
    "/api/dependencies": {
        "get": {
            "summary": "Service dependency links (Jaeger)",
            "parameters": [
                query_param("endTs", {"type": "integer", "minimum": 0}, "Unix milliseconds"),
                query_param("lookback", {"type": "integer", "minimum": 1}, "milliseconds"),
                query_param("service", _STR, "only links from or to this service"),
            ],
            "responses": {"200": json_response(_JAEGER), "400": json_response(_JAEGER)},
        }
    },
}
