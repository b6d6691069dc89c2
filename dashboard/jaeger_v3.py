"""Jaeger's query API v3 over HTTP (``/api/v3/...``), as Jaeger 2.x's HTTP gateway serves it.

Current Jaeger UI (2.16+) and Grafana's Jaeger data source (behind a flag) read
services, operations and trace search from here. Traces are OTLP JSON wrapped in
``{"result": {"resourceSpans": [...]}}``; search results for the UI come from
``/api/v3/trace-summaries``; errors are ``{"error": {"httpCode": N, "message": ...}}``.
Query parameters use the camelCase names Jaeger documents and accept the
snake_case names it still takes as deprecated aliases.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import params
from dashboard.context import DashboardContext
from dashboard.jaeger_api import DEFAULT_LIMIT, JAEGER_KINDS, parse_trace_id
from dashboard.openapi import json_response, path_param, query_param
from dashboard.otlp_trace_json import resource_spans
from tracestore import tier_queries
from tracestore import trace_queries as tq

# canonical name -> deprecated aliases Jaeger still accepts
ALIASES = {
    "query.serviceName": ("query.service_name",),
    "query.operationName": ("query.operation_name",),
    "query.startTimeMin": ("query.start_time_min",),
    "query.startTimeMax": ("query.start_time_max",),
    "query.searchDepth": ("query.num_traces", "query.search_depth"),
    "query.durationMin": ("query.duration_min",),
    "query.durationMax": ("query.duration_max",),
    "query.rawTraces": ("query.raw_traces",),
    "startTime": ("start_time",),
    "endTime": ("end_time",),
    "rawTraces": ("raw_traces",),
    "spanKind": ("span_kind",),
}
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
NOT_FOUND = "No traces found"
SUNSET = "Mon, 01 Nov 2026 00:00:00 GMT"  # Jaeger's announced removal of the aliases
DEPRECATION_DOC = "https://github.com/jaegertracing/jaeger/blob/main/docs/apis/api_v3_http.md"


class ParamError(ValueError):
    """A malformed or missing parameter; the message names it, as Jaeger's does."""


def error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"httpCode": status, "message": message}}, status_code=status)


def resolve(request: Request, name: str) -> tuple[str, str] | None:
    """(value, the name it came under): the canonical name first, then its aliases.

    A deprecated alias used is remembered for the response's deprecation headers.
    """
    for candidate in (name, *ALIASES.get(name, ())):
        value = request.query_params.get(candidate)
        if value:
            if candidate != name:
                request.state.deprecated = [*getattr(request.state, "deprecated", []), candidate]
            return value, candidate
    return None


def with_deprecation(request: Request, response: Response) -> Response:
    """Jaeger's signals (RFC 8594) when a deprecated snake_case parameter was used."""
    used = getattr(request.state, "deprecated", [])
    if used:
        response.headers["Deprecation"] = "true"
        response.headers["Sunset"] = SUNSET
        response.headers["Link"] = f'<{DEPRECATION_DOC}>; rel="deprecation"'
        response.headers["Deprecated-Params"] = ",".join(dict.fromkeys(used))
    return response


def parse_rfc3339(text: str, name: str) -> int:
    """Unix nanoseconds from RFC 3339 with up to nanosecond precision (Go's RFC3339Nano)."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise ParamError(f"malformed parameter {name}: {text[:40]!r} is not RFC 3339")
    day, clock, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone in 'Zz' else zone}")
    except ValueError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    if seconds < 0:
        raise ParamError(f"malformed parameter {name}: before 1970")
    return seconds * 10**9 + int((fraction or "0").ljust(9, "0"))


def _bool(request: Request, name: str) -> bool:
    found = resolve(request, name)
    if found is None:
        return False
    value, used = found
    if value.lower() not in _BOOLS:
        raise ParamError(f"malformed parameter {used}: {value[:40]!r} is not a boolean")
    return _BOOLS[value.lower()]


def _duration(request: Request, name: str) -> int | None:
    found = resolve(request, name)
    if found is None:
        return None
    value, used = found
    try:
        return params.parse_duration(value, bare_unit=None)
    except tq.BadQuery as exc:
        raise ParamError(f"malformed parameter {used}: {exc}") from None


def _attributes(request: Request) -> list[tq.AttributeFilter]:
    """``query.attributes``: a JSON object, or logfmt (``a=b c="d e"``) as Jaeger UI's tags.

    Each pair must match a span or resource attribute.
    """
    raw = request.query_params.get("query.attributes")
    if not raw:
        return []
    bad = "malformed parameter query.attributes: expected a JSON object or key=value pairs"
    if raw.lstrip().startswith(("{", "[")):
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise ParamError(bad)
        pairs = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in obj.items()]
    else:
        try:
            words = shlex.split(raw)
        except ValueError:
            raise ParamError(bad) from None
        if not all("=" in w for w in words):
            raise ParamError(bad)
        pairs = [tuple(w.split("=", 1)) for w in words]
    return [tq.AttributeFilter(tq.AttributeFilter.parse(k).key, "=", v) for k, v in pairs]


def search_query(request: Request) -> tq.SearchQuery:
    """FindTraces' parameters (shared by trace-summaries) as a search."""
    low, high = resolve(request, "query.startTimeMin"), resolve(request, "query.startTimeMax")
    if low is None or high is None:
        raise ParamError("query.startTimeMin and query.startTimeMax are required")
    start_ns, end_ns = parse_rfc3339(*low), parse_rfc3339(*high)
    if end_ns < start_ns:
        raise ParamError("query.startTimeMax is before query.startTimeMin")
    start_ns = max(start_ns, end_ns - params.MAX_LOOKBACK_NS)  # searches read 31 days at most
    limit = DEFAULT_LIMIT
    depth = resolve(request, "query.searchDepth")
    if depth is not None:
        try:
            limit = params.parse_int(depth[0], depth[1], 1, tq.MAX_SEARCH_LIMIT)
        except tq.BadQuery as exc:
            raise ParamError(f"malformed parameter {depth[1]}: {exc}") from None
    service = resolve(request, "query.serviceName")
    operation = resolve(request, "query.operationName")
    q = tq.SearchQuery(
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns + 1),
        service=service[0] if service else None,
        operation=operation[0] if operation else None,
        attributes=_attributes(request),
        min_duration_ns=_duration(request, "query.durationMin"),
        max_duration_ns=_duration(request, "query.durationMax"),
        limit=limit,
    )
    _bool(request, "query.rawTraces")  # validated; stored spans are always returned raw
    q.validate()
    return q


def trace_summary(trace: tq.Trace) -> dict[str, Any]:
    """One trace as Jaeger's ``TraceSummary`` JSON (times as decimal strings of ns)."""
    spans = trace.spans
    known = {s.span_id for s in spans}
    counts = Counter(s.service for s in spans)
    errors = Counter(s.service for s in spans if s.status_code == 2)
    first = min(spans, key=lambda s: s.start_ns) if spans else None
    return {
        "traceId": trace.summary.trace_id,
        "rootServiceName": trace.summary.root_service,
        "rootOperationName": trace.summary.root_name,
        "minStartTimeUnixNano": str(first.start_ns if first else trace.summary.start_ns),
        "maxEndTimeUnixNano": str(max((s.end_ns for s in spans), default=trace.summary.end_ns)),
        "spanCount": len(spans),
        "errorSpanCount": sum(errors.values()),
        "orphanSpanCount": sum(
            1 for s in spans if s.parent_span_id and s.parent_span_id not in known
        ),
        "services": [
            {"name": name, "spanCount": counts[name], "errorSpanCount": errors[name]}
            for name in sorted(counts)
        ],
    }


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    def traces_result(found: list[tq.Trace]) -> Response:
        if not found:
            return error(404, NOT_FOUND)
        return JSONResponse({"result": {"resourceSpans": resource_spans(found)}})

    async def services(request: Request) -> Response:
        start_ns, end_ns = params.time_range(None, None, "7d")
        names = await run_in_threadpool(tq.services, store, start_ns, end_ns)
        return JSONResponse({"services": names})

    async def operations(request: Request) -> Response:
        service = request.query_params.get("service")
        if not service:
            return error(400, "malformed parameter service: a service name is required")
        kind_param = resolve(request, "spanKind")
        kind = None
        if kind_param is not None:
            if kind_param[0] not in JAEGER_KINDS:
                message = f"malformed parameter {kind_param[1]}: unknown span kind"
                return with_deprecation(request, error(400, message))
            kind = JAEGER_KINDS[kind_param[0]]
        start_ns, end_ns = params.time_range(None, None, "7d")
        pairs = await run_in_threadpool(tq.operations, store, service, start_ns, end_ns, kind)
        found = [
            {"name": name, "spanKind": tq.SPAN_KINDS.get(k, "") if k else "internal"}
            for name, k in pairs
        ]
        return with_deprecation(request, JSONResponse({"operations": found}))

    async def trace(request: Request) -> Response:
        try:
            trace_id = parse_trace_id(request.path_params["trace_id"])
        except tq.BadQuery as exc:
            return error(400, f"malformed parameter trace_id: {exc}")
        try:
            for name in ("startTime", "endTime"):
                found = resolve(request, name)
                if found is not None:
                    parse_rfc3339(*found)  # the trace index already bounds the read
            _bool(request, "rawTraces")
        except ParamError as exc:
            return with_deprecation(request, error(400, str(exc)))
        loaded = await run_in_threadpool(tq.load_trace, store, trace_id, ctx.max_trace_spans)
        if loaded is None:
            gone = await run_in_threadpool(tier_queries.missing_trace_message, store, trace_id)
            if gone:
                return with_deprecation(request, error(404, f"{NOT_FOUND}: trace {gone}"))
        return with_deprecation(request, traces_result([loaded] if loaded is not None else []))

    async def find_traces(request: Request) -> Response:
        try:
            q = search_query(request)
        except (ParamError, tq.BadQuery) as exc:
            return with_deprecation(request, error(400, str(exc)))
        ids = await run_in_threadpool(tq.search_trace_ids, store, q)
        found = await run_in_threadpool(tq.load_traces, store, ids, ctx.max_trace_spans)
        return with_deprecation(request, traces_result(found))

    async def trace_summaries(request: Request) -> Response:
        try:
            q = search_query(request)
        except (ParamError, tq.BadQuery) as exc:
            return with_deprecation(request, error(400, str(exc)))
        ids = await run_in_threadpool(tq.search_trace_ids, store, q)
        found = await run_in_threadpool(tq.load_traces, store, ids, ctx.max_trace_spans)
        body = {"summaries": [trace_summary(t) for t in found]}
        return with_deprecation(request, JSONResponse(body))

    return [
        Route("/api/v3/services", services),
        Route("/api/v3/operations", operations),
        Route("/api/v3/traces", find_traces),
        Route("/api/v3/traces/{trace_id}", trace),
        Route("/api/v3/trace-summaries", trace_summaries),
    ]


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_V3 = "Jaeger API v3 JSON"
_ERRORS = {"400": json_response(_V3), "404": json_response(_V3)}
_SEARCH_PARAMS = [
    query_param("query.serviceName", _STR),
    query_param("query.operationName", _STR),
    query_param("query.startTimeMin", _TIME, "RFC 3339", required=True),
    query_param("query.startTimeMax", _TIME, "RFC 3339", required=True),
    query_param("query.durationMin", _STR, "Go duration, e.g. 10ms"),
    query_param("query.durationMax", _STR, "Go duration, e.g. 2s"),
    query_param("query.searchDepth", {"type": "integer", "minimum": 1, "maximum": 1500}),
    query_param("query.attributes", _STR, "JSON object or logfmt, e.g. http.method=GET"),
]
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v3/services": {
        "get": {"summary": "Service names (Jaeger v3)", "responses": {"200": json_response(_V3)}}
    },
    "/api/v3/operations": {
        "get": {
            "summary": "Operations with span kinds (Jaeger v3)",
            "parameters": [
                query_param("service", _STR, required=True),
                query_param("spanKind", {"type": "string", "enum": list(JAEGER_KINDS)}),
            ],
            "responses": {"200": json_response(_V3), "400": json_response(_V3)},
        }
    },
    "/api/v3/traces/{trace_id}": {
        "get": {
            "summary": "One trace as OTLP JSON (Jaeger v3)",
            "parameters": [path_param("trace_id", _STR)],
            "responses": {"200": json_response(_V3), **_ERRORS},
        }
    },
    "/api/v3/traces": {
        "get": {
            "summary": "Trace search, OTLP JSON (Jaeger v3 FindTraces)",
            "parameters": _SEARCH_PARAMS,
            "responses": {"200": json_response(_V3), **_ERRORS},
        }
    },
    "/api/v3/trace-summaries": {
        "get": {
            "summary": "Trace search, one summary per trace (Jaeger v3)",
            "parameters": _SEARCH_PARAMS,
            "responses": {"200": json_response(_V3), "400": json_response(_V3)},
        }
    },
}
