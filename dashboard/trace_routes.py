"""Trace pages (``/trace/{id}``, ``/search``) and sidetrace's trace API (``/api/v1/...``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import params
from dashboard.context import DashboardContext
from dashboard.openapi import ERROR_RESPONSES, json_response, path_param, query_param
from dashboard.search_plot import scatter
from dashboard.trace_json import span_record_json, summary_json, trace_json
from dashboard.trace_view_json import trace_view_json
from tracestore import tier_queries
from tracestore import trace_queries as tq
from tracestore import trace_view_queries as tv
from tracestore.store_summary import oldest_trace_ns

DEFAULT_LIMIT = 20
IN_FLIGHT_NS = 5 * 60 * 10**9  # a trace without its root this recent is still arriving
MAX_FIND_TEXT = 256  # characters of text one find within a trace looks for
_HEX_PREFIX = re.compile(r"^[0-9a-f]{8,31}$")
SORTS: dict[str, tuple[str, Callable[[tq.TraceSummary], Any]]] = {
    "newest": ("Newest first", lambda t: 0),  # the search's own order: latest activity
    "longest": ("Longest first", lambda t: -t.duration_ns),
    "spans": ("Most spans", lambda t: -t.span_count),
    "errors": ("Errors first", lambda t: (-t.error_count, -t.start_ns)),
}


def displayed_id(text: str) -> str:
    """An id as pasted from a page: without spaces, "0x", a trailing ellipsis; lowercase."""
    text = (text or "").strip().rstrip("….").strip().lower()
    return text[2:] if text.startswith("0x") else text


def sorted_results(found: list[tq.TraceSummary], sort: str) -> list[tq.TraceSummary]:
    if sort not in SORTS:
        raise tq.BadQuery(f"sort must be one of {', '.join(SORTS)}")
    return sorted(found, key=SORTS[sort][1])


def search_query(request: Request) -> tq.SearchQuery:
    """A SearchQuery from GET parameters (the shareable form of every search)."""
    qp = request.query_params
    lookback = qp.get("lookback") or "1h"
    if lookback == "custom":
        lookback = "1h"
    start_ns, end_ns = params.time_range(qp.get("start"), qp.get("end"), lookback)
    filters = [*qp.getlist("attr"), *(qp.get("attrs") or "").splitlines()]
    q = tq.SearchQuery(
        start_ns=start_ns,
        end_ns=end_ns,
        service=qp.get("service") or None,
        operation=qp.get("operation") or None,
        attributes=[tq.AttributeFilter.parse(f) for f in filters if f.strip()],
        min_duration_ns=params.parse_duration(qp["minDuration"]) if qp.get("minDuration") else None,
        max_duration_ns=params.parse_duration(qp["maxDuration"]) if qp.get("maxDuration") else None,
        errors_only=qp.get("errors", "") in ("1", "on", "true"),
        limit=params.parse_int(
            qp.get("limit") or str(DEFAULT_LIMIT), "limit", 1, tq.MAX_SEARCH_LIMIT
        ),
    )
    q.validate()
    return q


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    def error_page(request: Request, status: int, title: str, message: str) -> Response:
        return ctx.templates.TemplateResponse(
            request,
            "message.html",
            {"title": title, "message": message, "status": status},
            status_code=status,
        )

    def retention_range() -> str:
        start_ns = oldest_trace_ns(store)
        if start_ns is None:
            return "all stored traces (the store holds none yet)"
        return "all stored traces, " + params.describe_range(start_ns, time.time_ns())

    async def trace_lookup(request: Request) -> Response:
        """Any id form the pages show: 32 hex, a 64-bit id, or a prefix (with or without "…")."""
        text = displayed_id(request.query_params.get("id", ""))
        if len(text) == 32 or not _HEX_PREFIX.match(text):
            try:
                trace_id = tq.normalize_trace_id(text)
            except tq.BadQuery as exc:
                return error_page(request, 400, "Not a trace id", str(exc))
            return RedirectResponse(f"/trace/{trace_id}", status_code=302)
        padded = text.rjust(32, "0")
        if len(text) == 16 and await run_in_threadpool(tq.trace_bounds, store, padded):
            return RedirectResponse(f"/trace/{padded}", status_code=302)
        found = await run_in_threadpool(tq.trace_ids_with_prefix, store, text)
        if len(found) == 1:
            return RedirectResponse(f"/trace/{found[0]}", status_code=302)
        if found:
            return ctx.templates.TemplateResponse(
                request, "trace_choices.html", {"prefix": text, "trace_ids": found}
            )
        if len(text) == 16:
            return RedirectResponse(f"/trace/{padded}", status_code=302)
        return error_page(request, 404, "Trace not found", f"no stored trace id starts with {text}")

    async def trace_page(request: Request) -> Response:
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
            span = request.query_params.get("span")
            if span:
                span = tq.normalize_span_id(span)
        except tq.BadQuery as exc:
            return error_page(request, 400, "Not a trace id", str(exc))
        if trace_id != request.path_params["trace_id"]:
            suffix = f"?span={span}" if span else ""
            return RedirectResponse(f"/trace/{trace_id}{suffix}", status_code=302)
        bounds = await run_in_threadpool(tq.trace_bounds, store, trace_id)
        if bounds is None:
            gone = await run_in_threadpool(tier_queries.missing_trace_message, store, trace_id)
            if gone:
                return error_page(request, 410, "Trace not kept", f"Trace {trace_id}: {gone}.")
            searched = await run_in_threadpool(retention_range)
            return ctx.templates.TemplateResponse(
                request,
                "trace_not_found.html",
                {"trace_id": trace_id, "searched": searched},
                status_code=404,
            )
        return ctx.templates.TemplateResponse(
            request,
            "trace.html",
            {"trace_id": trace_id, "span": span or "", "start_ns": bounds[0], "end_ns": bounds[1]},
        )

    async def trace_api(request: Request) -> Response:
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        trace = await run_in_threadpool(tq.load_trace, store, trace_id, ctx.max_trace_spans)
        if trace is None:
            return await missing_trace(trace_id)
        body = await run_in_threadpool(trace_json, trace, ctx.max_trace_spans)
        headers = {}
        if request.query_params.get("download") in ("1", "true"):
            headers["Content-Disposition"] = f'attachment; filename="trace-{trace_id}.json"'
        return JSONResponse(body, headers=headers)

    async def missing_trace(trace_id: str) -> JSONResponse:
        """404 with the range searched, or 410 when retention tiering let the trace go."""
        gone = await run_in_threadpool(tier_queries.missing_trace_message, store, trace_id)
        if gone:
            return JSONResponse({"error": f"trace {trace_id} {gone}"}, status_code=410)
        searched = await run_in_threadpool(retention_range)
        return JSONResponse(
            {"error": f"trace {trace_id} not found", "searched": searched}, status_code=404
        )

    async def trace_view_api(request: Request) -> Response:
        """The trace view's columns, in start order: no analysis, attributes, events, links."""
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        outline = await run_in_threadpool(tv.load_outline, store, trace_id, ctx.max_trace_spans)
        if outline is None:
            return await missing_trace(trace_id)
        body = await run_in_threadpool(trace_view_json, outline, ctx.max_trace_spans)
        return JSONResponse(body)

    async def span_api(request: Request) -> Response:
        """One span as stored (attributes, resource, events, links): the view's detail pane."""
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
            span_id = tq.normalize_span_id(request.path_params["span_id"])
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        bounds = await run_in_threadpool(tq.trace_bounds, store, trace_id)
        if bounds is None:
            return await missing_trace(trace_id)
        span = await run_in_threadpool(tv.load_span, store, trace_id, span_id, bounds)
        if span is None:
            return JSONResponse(
                {"error": f"span {span_id} is not in trace {trace_id}"}, status_code=404
            )
        return JSONResponse(span_record_json(span, bounds[0]))

    async def find_api(request: Request) -> Response:
        """Ids of the trace's spans with an attribute key or value containing ``q``."""
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        text = (request.query_params.get("q") or "").strip()
        if not text or len(text) > MAX_FIND_TEXT:
            return JSONResponse(
                {"error": f"q must be 1 to {MAX_FIND_TEXT} characters of text to find"},
                status_code=400,
            )
        bounds = await run_in_threadpool(tq.trace_bounds, store, trace_id)
        if bounds is None:
            return await missing_trace(trace_id)
        found = await run_in_threadpool(tv.find_spans, store, trace_id, text, bounds)
        return JSONResponse({"spanIds": found, "truncated": len(found) >= tv.MAX_FOUND})

    async def search_api(request: Request) -> Response:
        try:
            q = search_query(request)
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        found = await run_in_threadpool(tq.search, store, q)
        return JSONResponse(
            {
                "startTimeUnixNano": str(q.start_ns),
                "endTimeUnixNano": str(q.end_ns),
                "traces": [summary_json(s) for s in found],
            }
        )

    async def operations_api(request: Request) -> Response:
        try:
            start_ns, end_ns = params.time_range(
                None, None, request.query_params.get("lookback") or "7d"
            )
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        service = request.path_params["service"]
        pairs = await run_in_threadpool(tq.operations, store, service, start_ns, end_ns)
        return JSONResponse(
            {"operations": [{"name": n, "kind": tq.SPAN_KINDS.get(k, str(k))} for n, k in pairs]}
        )

    async def search_page(request: Request) -> Response:
        qp = request.query_params
        form = {
            "service": qp.get("service", ""),
            "operation": qp.get("operation", ""),
            "attrs": "\n".join([*qp.getlist("attr"), *(qp.get("attrs") or "").splitlines()]),
            "minDuration": qp.get("minDuration", ""),
            "maxDuration": qp.get("maxDuration", ""),
            "errors": qp.get("errors", "") in ("1", "on", "true"),
            "lookback": qp.get("lookback") or ("custom" if qp.get("start") else "1h"),
            "start": qp.get("start", ""),
            "end": qp.get("end", ""),
            "limit": qp.get("limit") or str(DEFAULT_LIMIT),
            "sort": qp.get("sort") or "newest",
        }
        context: dict[str, Any] = {
            "form": form,
            "lookbacks": params.LOOKBACKS,
            "sorts": {k: label for k, (label, _) in SORTS.items()},
            "error": "",
            "attribute_keys": [],
        }
        try:
            q = search_query(request)
            sorted_results([], form["sort"])
        except tq.BadQuery as exc:
            context.update(error=str(exc), results=[], services=[], operations=[], plot=None)
            return ctx.templates.TemplateResponse(request, "search.html", context, status_code=400)
        found = sorted_results(await run_in_threadpool(tq.search, store, q), form["sort"])
        names = await run_in_threadpool(tq.services, store, q.start_ns, q.end_ns)
        keys = await run_in_threadpool(tq.attribute_keys, store, q.start_ns, q.end_ns)
        ops = []
        if q.service:
            ops = await run_in_threadpool(tq.operations, store, q.service, q.start_ns, q.end_ns)
        context.update(
            results=found,
            services=names,
            operations=sorted({n for n, _ in ops}),
            plot=scatter(found),
            range_ns=(q.start_ns, q.end_ns),
            attribute_keys=keys,
            in_flight_after_ns=time.time_ns() - IN_FLIGHT_NS,
        )
        return ctx.templates.TemplateResponse(request, "search.html", context)

    return [
        Route("/trace", trace_lookup),
        Route("/trace/{trace_id}", trace_page),
        Route("/search", search_page),
        Route("/api/v1/traces/{trace_id}", trace_api),
        Route("/api/v1/traces/{trace_id}/view", trace_view_api),
        Route("/api/v1/traces/{trace_id}/spans/{span_id}", span_api),
        Route("/api/v1/traces/{trace_id}/find", find_api),
        Route("/api/v1/search", search_api),
        Route("/api/v1/services/{service}/operations", operations_api),
    ]


_STR = {"type": "string"}
_TRACE_ID = path_param("trace_id", {"type": "string", "pattern": "^[0-9a-fA-F]{16,32}$"})
_LOOKBACK = query_param("lookback", {"type": "string", "example": "1h"}, "e.g. 15m, 1h, 2d")
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/traces/{trace_id}": {
        "get": {
            "summary": "One trace in tree order with analysis (self time, critical path, skew)",
            "parameters": [
                path_param("trace_id", {"type": "string", "pattern": "^[0-9a-fA-F]{16,32}$"}),
                query_param("download", {"type": "string", "enum": ["1", "0"]}),
            ],
            "responses": {"200": json_response("the trace"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/traces/{trace_id}/view": {
        "get": {
            "summary": "One trace's spans as columns in start order (the trace view's outline)",
            "parameters": [_TRACE_ID],
            "responses": {"200": json_response("the trace's columns"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/traces/{trace_id}/spans/{span_id}": {
        "get": {
            "summary": "One span as stored: attributes, resource, events, links",
            "parameters": [
                _TRACE_ID,
                path_param("span_id", {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}),
            ],
            "responses": {"200": json_response("the span"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/traces/{trace_id}/find": {
        "get": {
            "summary": "Ids of a trace's spans with an attribute key or value containing q",
            "parameters": [
                _TRACE_ID,
                query_param("q", {"type": "string", "minLength": 1, "maxLength": MAX_FIND_TEXT}),
            ],
            "responses": {"200": json_response("matching span ids"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/search": {
        "get": {
            "summary": "Traces with a span matching every filter, latest first",
            "parameters": [
                query_param("service", _STR),
                query_param("operation", _STR),
                query_param("attr", _STR, "key=value, key!=value or key (exists); repeatable"),
                query_param("minDuration", _STR, "e.g. 100ms"),
                query_param("maxDuration", _STR, "e.g. 2s"),
                query_param("errors", {"type": "string", "enum": ["1", "0"]}),
                _LOOKBACK,
                query_param("start", _STR, "ISO-8601 or Unix milliseconds"),
                query_param("end", _STR, "ISO-8601 or Unix milliseconds"),
                query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1500}),
            ],
            "responses": {"200": json_response("matching traces"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/services/{service}/operations": {
        "get": {
            "summary": "Operations and span kinds of one service",
            "parameters": [path_param("service", _STR), _LOOKBACK],
            "responses": {"200": json_response("operations"), **ERROR_RESPONSES},
        }
    },
}
