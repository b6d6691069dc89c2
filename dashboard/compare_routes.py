"""Trace comparison: the ``/compare`` page and ``/api/v1/compare`` (two traces aligned).

``/compare?a=ID&b=ID`` shows the aligned trees; with only ``a`` it offers traces of
the same root operation around A's time to pick from (the trace view's "compare
with…"); with neither, a form. The search page links here with two picked traces.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.context import DashboardContext
from dashboard.openapi import ERROR_RESPONSES, json_response, query_param
from dashboard.trace_compare import Comparison, Row, Side, compare
from tracestore import trace_queries as tq
from tracestore.compare_queries import load_skeletons

CANDIDATES = 20
CANDIDATE_WINDOW_NS = 3600 * 10**9  # traces of the same root operation within an hour of A


class NotFound(LookupError):
    """A trace id that is valid but not stored."""


def _ids(request: Request, required: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("a", "b"):
        text = request.query_params.get(name, "").strip()
        if not text:
            if name in required:
                raise tq.BadQuery(f"parameter {name!r} (a trace id) is required")
            out[name] = None
            continue
        try:
            out[name] = tq.normalize_trace_id(text)
        except tq.BadQuery as exc:
            raise tq.BadQuery(f"{name}: {exc}") from None
    return out


def load_pair(store: Any, a: str, b: str, max_spans: int) -> tuple[tq.Trace, tq.Trace]:
    """Both traces' trees in one read, or NotFound naming the one that is missing."""
    found = load_skeletons(store, [a, b], max_spans)
    for name, trace_id in (("a", a), ("b", b)):
        if trace_id not in found:
            raise NotFound(f"trace {name} ({trace_id}) not found")
    return found[a], found[b]


def compare_traces(store: Any, a: str, b: str, max_spans: int) -> dict[str, Any]:
    """What the API returns: both summaries and the aligned rows (the bench times this)."""
    trace_a, trace_b = load_pair(store, a, b, max_spans)
    result = compare(trace_a.spans, trace_b.spans)
    return comparison_json(trace_a, trace_b, result, max_spans)


def _side_json(side: Side | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "spanId": side.span_id,
        "durationNs": side.duration_ns,
        "selfNs": side.self_ns,
        "offsetNs": side.offset_ns,
        "critical": side.critical,
        "error": side.error,
    }


def _row_json(i: int, row: Row) -> dict[str, Any]:
    return {
        "index": i,
        "depth": row.depth,
        "service": row.service,
        "name": row.name,
        "position": row.position,
        "presence": row.presence,
        "a": _side_json(row.a),
        "b": _side_json(row.b),
        "deltaNs": row.delta_ns,
        "deltaSelfNs": row.delta_self_ns,
        "notable": row.notable(),
    }


def _summary_json(trace: tq.Trace, max_spans: int) -> dict[str, Any]:
    s = trace.summary
    return {
        "traceId": s.trace_id,
        "startTimeUnixNano": str(s.start_ns),
        "durationNs": s.duration_ns,
        "spanCount": s.span_count,
        "truncated": s.span_count >= max_spans,
        "errorCount": s.error_count,
        "rootService": s.root_service,
        "rootName": s.root_name,
    }


def comparison_json(a: tq.Trace, b: tq.Trace, result: Comparison, max_spans: int) -> dict[str, Any]:
    index = {id(r): i for i, r in enumerate(result.rows)}
    return {
        "a": _summary_json(a, max_spans),
        "b": _summary_json(b, max_spans),
        "durationDeltaNs": result.duration_b_ns - result.duration_a_ns,
        "onlyA": len(result.only_a),
        "onlyB": len(result.only_b),
        "slower": [index[id(r)] for r in result.slower()],
        "criticalPath": {
            "a": [index[id(r)] for r in result.critical_path("a")],
            "b": [index[id(r)] for r in result.critical_path("b")],
        },
        "rows": [_row_json(i, r) for i, r in enumerate(result.rows)],
    }


def candidates(store: Any, trace_id: str) -> list[tq.TraceSummary]:
    """Traces of A's root operation within an hour of A, to pick B from."""
    bounds = tq.trace_bounds(store, trace_id)
    if bounds is None:
        return []
    found = tq.trace_summaries(store, [trace_id], bounds[0], bounds[1])
    if not found or not found[0].root_service:
        return []
    a = found[0]
    q = tq.SearchQuery(
        start_ns=max(0, a.start_ns - CANDIDATE_WINDOW_NS),
        end_ns=a.start_ns + CANDIDATE_WINDOW_NS,
        service=a.root_service,
        operation=a.root_name or None,
        limit=CANDIDATES + 1,
    )
    return [t for t in tq.search(store, q) if t.trace_id != trace_id][:CANDIDATES]


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    def message(request: Request, status: int, title: str, text: str) -> Response:
        return ctx.templates.TemplateResponse(
            request, "message.html", {"title": title, "message": text}, status_code=status
        )

    async def compare_api(request: Request) -> Response:
        try:
            ids = _ids(request, required=("a", "b"))
            body = await run_in_threadpool(
                compare_traces, store, ids["a"], ids["b"], ctx.max_trace_spans
            )
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(body)

    async def compare_page(request: Request) -> Response:
        try:
            ids = _ids(request, required=())
        except tq.BadQuery as exc:
            return message(request, 400, "Not a trace id", str(exc))
        a, b = ids["a"], ids["b"]
        if a is None or b is None:
            picks = await run_in_threadpool(candidates, store, a) if a else []
            return ctx.templates.TemplateResponse(
                request, "compare_pick.html", {"a": a or "", "b": b or "", "candidates": picks}
            )
        try:
            body = await run_in_threadpool(compare_traces, store, a, b, ctx.max_trace_spans)
        except NotFound as exc:
            return message(request, 404, "Trace not found", str(exc))
        return ctx.templates.TemplateResponse(request, "compare.html", {"c": body})

    return [Route("/compare", compare_page), Route("/api/v1/compare", compare_api)]


_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{16,32}$"}
_SIDE = {
    "type": "object",
    "nullable": True,
    "properties": {
        "spanId": {"type": "string"},
        "durationNs": {"type": "integer"},
        "selfNs": {"type": "integer"},
        "offsetNs": {"type": "integer", "description": "from that trace's first start"},
        "critical": {"type": "boolean"},
        "error": {"type": "boolean"},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/compare": {
        "get": {
            "summary": "Two traces aligned by (service, operation, position among same-named "
            "siblings): durations and self time in A and B with deltas, spans only in A or "
            "only in B, and each trace's critical path",
            "parameters": [
                query_param("a", _ID, "trace A (the baseline)", required=True),
                query_param("b", _ID, "trace B (compared with A)", required=True),
            ],
            "responses": {
                "200": json_response(
                    "the aligned rows in tree order; ``slower`` and ``criticalPath`` hold "
                    "row indexes",
                    {
                        "type": "object",
                        "properties": {
                            "onlyA": {"type": "integer"},
                            "onlyB": {"type": "integer"},
                            "durationDeltaNs": {"type": "integer"},
                            "slower": {"type": "array", "items": {"type": "integer"}},
                            "rows": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "depth": {"type": "integer"},
                                        "service": {"type": "string"},
                                        "name": {"type": "string"},
                                        "position": {"type": "integer"},
                                        "presence": {
                                            "type": "string",
                                            "enum": ["both", "only_a", "only_b"],
                                        },
                                        "a": _SIDE,
                                        "b": _SIDE,
                                        "deltaNs": {"type": "integer", "nullable": True},
                                        "deltaSelfNs": {"type": "integer", "nullable": True},
                                        "notable": {
                                            "type": "boolean",
                                            "description": "in one trace only, or changed by "
                                            "at least 1 ms and 25%",
                                        },
                                    },
                                },
                            },
                        },
                    },
                ),
                **ERROR_RESPONSES,
            },
        }
    }
}
