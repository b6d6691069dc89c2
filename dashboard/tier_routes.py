"""Retention tiers over HTTP: "keep this trace" (pin) and its state, and example traces.

``POST /api/v1/traces/{id}/pin`` takes an optional JSON body ``{"note": "…"}``; the
cross-site guard already holds state-changing ``/api/`` requests to JSON bodies
from the dashboard's own origin. A trace can be pinned while any tier holds it; a
trace that already left the hot window unkept cannot come back, and says why.

``GET /api/v1/examples`` gives the example traces of a latency chart (``service``,
optionally ``operation``) or of a service map edge (``parent``, ``child``, ``kind``)
over a range, as the pages show them; examples handed out are recorded, so they
are kept past the hot window.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import example_links
from dashboard.analytics_routes import PEER_KINDS, parse_name, time_range_s
from dashboard.context import DashboardContext
from dashboard.json_input import BadJson, parse_json_object
from dashboard.openapi import ERROR_RESPONSES, json_response, path_param, query_param
from tracestore import tier_queries
from tracestore import trace_queries as tq
from tracestore.example_queries import Example, Examples


def _note(body: bytes) -> str:
    if not body.strip():
        return ""
    note = parse_json_object(body).get("note", "")
    if not isinstance(note, str):
        raise BadJson("note must be a string")
    if len(note) > tier_queries.MAX_NOTE:
        raise BadJson(f"note is longer than {tier_queries.MAX_NOTE} characters")
    return note


def _example_json(example: Example | None) -> dict[str, Any] | None:
    if example is None:
        return None
    return {
        "traceID": example.trace_id,
        "durationMs": example.duration_ms,
        "startTimeUnixNano": example.start_ns,
        "url": f"/trace/{example.trace_id}",
    }


def _examples_json(found: Examples) -> dict[str, Any]:
    return {
        "scope": found.scope,
        "operation": found.operation,
        "slowest": _example_json(found.slowest),
        "error": _example_json(found.error),
    }


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    async def examples(request: Request) -> Response:
        qp = request.query_params
        try:
            start_s, end_s = time_range_s(qp)
            parent = parse_name(qp.get("parent"), "parent")
            if parent is not None:
                child = parse_name(qp.get("child"), "child", required=True)
                kind = qp.get("kind") or "service"
                if kind not in PEER_KINDS:
                    raise tq.BadQuery(f"kind must be one of {', '.join(PEER_KINDS)}")
            else:
                service = parse_name(qp.get("service"), "service (or parent and child)", True)
                operation = parse_name(qp.get("operation"), "operation")
        except tq.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if parent is not None:
            found = [
                await run_in_threadpool(
                    example_links.edge_examples, store, parent, child, kind, start_s, end_s
                )
            ]
        else:
            chart = await run_in_threadpool(
                example_links.chart_examples, store, service, start_s, end_s
            )
            found = [e for e in chart if e.operation == operation]
        return JSONResponse(
            {"start": start_s, "end": end_s, "examples": [_examples_json(e) for e in found]}
        )

    async def pin(request: Request) -> Response:
        try:
            trace_id = tq.normalize_trace_id(request.path_params["trace_id"])
            note = _note(await request.body())
        except (tq.BadQuery, BadJson) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if request.method == "GET":
            pinned = await run_in_threadpool(tier_queries.is_pinned, store, trace_id)
            decision = await run_in_threadpool(tier_queries.trace_decision, store, trace_id)
            decided = None
            if decision is not None:
                decided = {"kept": decision.kept, "reasons": list(decision.reasons)}
            return JSONResponse({"traceID": trace_id, "pinned": pinned, "decision": decided})
        if await run_in_threadpool(tq.trace_bounds, store, trace_id) is None:
            gone = await run_in_threadpool(tier_queries.missing_trace_message, store, trace_id)
            message = f"trace {trace_id} {gone}" if gone else f"trace {trace_id} not found"
            return JSONResponse({"error": message}, status_code=404)
        await run_in_threadpool(tier_queries.pin_trace, store, trace_id, note)
        return JSONResponse({"traceID": trace_id, "pinned": True})

    return [
        Route("/api/v1/traces/{trace_id}/pin", pin, methods=["GET", "POST"]),
        Route("/api/v1/examples", examples),
    ]


_ID = path_param("trace_id", {"type": "string", "pattern": "^[0-9a-fA-F]{16,32}$"})
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/examples": {
        "get": {
            "summary": "Example traces (slowest, erroneous) of a latency chart or an edge; "
            "examples handed out are kept past the hot window",
            "parameters": [
                query_param("service", {"type": "string"}, "a chart's service"),
                query_param("operation", {"type": "string"}, "a chart's operation (default all)"),
                query_param("parent", {"type": "string"}, "an edge's calling service"),
                query_param("child", {"type": "string"}, "an edge's called service or peer"),
                query_param("kind", {"type": "string", "enum": list(PEER_KINDS)}),
                query_param("start", {"type": "string"}, "ISO-8601 or Unix milliseconds"),
                query_param("end", {"type": "string"}, "ISO-8601 or Unix milliseconds"),
                query_param("lookback", {"type": "string", "example": "1h"}),
            ],
            "responses": {"200": json_response("the examples"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/traces/{trace_id}/pin": {
        "get": {
            "summary": "Whether a trace is pinned, and the tiering decision (kept, reasons)",
            "parameters": [_ID],
            "responses": {"200": json_response("pin state"), **ERROR_RESPONSES},
        },
        "post": {
            "summary": "Keep this trace: retention tiering keeps a pinned trace",
            "parameters": [_ID],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"note": {"type": "string", "maxLength": 500}},
                        }
                    }
                },
            },
            "responses": {"200": json_response("pinned"), **ERROR_RESPONSES},
        },
    },
}
