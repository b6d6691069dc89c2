"""Retention tiers over HTTP: "keep this trace" (pin) and its state.

``POST /api/v1/traces/{id}/pin`` takes an optional JSON body ``{"note": "…"}``; the
cross-site guard already holds state-changing ``/api/`` requests to JSON bodies
from the dashboard's own origin. A trace can be pinned while any tier holds it; a
trace that already left the hot window unkept cannot come back, and says why.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.context import DashboardContext
from dashboard.json_input import BadJson, parse_json_object
from dashboard.openapi import ERROR_RESPONSES, json_response, path_param
from tracestore import tier_queries
from tracestore import trace_queries as tq


def _note(body: bytes) -> str:
    if not body.strip():
        return ""
    note = parse_json_object(body).get("note", "")
    if not isinstance(note, str):
        raise BadJson("note must be a string")
    if len(note) > tier_queries.MAX_NOTE:
        raise BadJson(f"note is longer than {tier_queries.MAX_NOTE} characters")
    return note


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

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

    return [Route("/api/v1/traces/{trace_id}/pin", pin, methods=["GET", "POST"])]


_ID = path_param("trace_id", {"type": "string", "pattern": "^[0-9a-fA-F]{16,32}$"})
OPENAPI_PATHS: dict[str, Any] = {
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
    }
}
