"""The service graph before and after: ``/graph-diff``, ``/api/v1/graph/diff``, ``/api/v1/deploys``.

Range B ("after") is ``b_start``/``b_end`` or the ``lookback`` ending now; range A
("before") is ``a_start``/``a_end`` or, when absent, as long as B and right before it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import params
from dashboard.context import DashboardContext
from dashboard.graph_diff import diff
from dashboard.openapi import ERROR_RESPONSES, json_response, query_param
from tracestore import analytics_queries as aq
from tracestore.deploy_queries import deploys
from tracestore.trace_queries import BadQuery

DEFAULT_LOOKBACK = "1h"
_NAME = re.compile(r"^[^\x00-\x1f]{1,256}$")


def ranges(qp: QueryParams) -> tuple[tuple[int, int], tuple[int, int]]:
    """((A start, A end), (B start, B end)) in unix seconds."""
    lookback = qp.get("lookback") or DEFAULT_LOOKBACK
    b0, b1 = params.time_range(qp.get("b_start"), qp.get("b_end"), lookback)
    if qp.get("a_start") or qp.get("a_end"):
        if not (qp.get("a_start") and qp.get("a_end")):
            raise BadQuery("give both a_start and a_end, or neither")
        a0, a1 = params.time_range(qp.get("a_start"), qp.get("a_end"), None)
    else:
        a0, a1 = 2 * b0 - b1, b0
    return (a0 // 10**9, -(-a1 // 10**9)), (b0 // 10**9, -(-b1 // 10**9))


def graph_diff(store: Any, qp: QueryParams) -> dict[str, Any]:
    (a0, a1), (b0, b1) = ranges(qp)
    out = diff(aq.graph(store, a0, a1), aq.graph(store, b0, b1))
    out["deploys"] = deploys(store, min(a0, b0), max(a1, b1))
    return out


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    async def diff_api(request: Request) -> Response:
        try:
            ranges(request.query_params)
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await run_in_threadpool(graph_diff, store, request.query_params))

    async def deploys_api(request: Request) -> Response:
        qp = request.query_params
        service = qp.get("service") or None
        try:
            if service is not None and not _NAME.match(service):
                raise BadQuery(f"bad service {service[:40]!r}")
            start_ns, end_ns = params.time_range(
                qp.get("start"), qp.get("end"), qp.get("lookback") or "24h"
            )
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        start_s, end_s = start_ns // 10**9, -(-end_ns // 10**9)
        found = await run_in_threadpool(deploys, store, start_s, end_s, service)
        return JSONResponse({"start": start_s, "end": end_s, "deploys": found})

    async def diff_page(request: Request) -> Response:
        qp = request.query_params
        form = {k: qp.get(k, "") for k in ("a_start", "a_end", "b_start", "b_end")}
        form["lookback"] = qp.get("lookback") or DEFAULT_LOOKBACK
        context: dict[str, Any] = {"form": form, "lookbacks": params.LOOKBACKS}
        try:
            ranges(qp)
        except BadQuery as exc:
            context.update(error=str(exc), d=None)
            return ctx.templates.TemplateResponse(request, "graph_diff.html", context, 400)
        d = await run_in_threadpool(graph_diff, store, qp)
        context.update(
            d=d,
            before_text=params.describe_range(
                d["before"]["start"] * 10**9, d["before"]["end"] * 10**9
            ),
            after_text=params.describe_range(
                d["after"]["start"] * 10**9, d["after"]["end"] * 10**9
            ),
        )
        return ctx.templates.TemplateResponse(request, "graph_diff.html", context)

    return [
        Route("/graph-diff", diff_page),
        Route("/api/v1/graph/diff", diff_api),
        Route("/api/v1/deploys", deploys_api),
    ]


_STR = {"type": "string"}
_TIME = "ISO-8601 or Unix milliseconds"
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/graph/diff": {
        "get": {
            "summary": "The service graph in two time ranges: nodes and edges that appeared or "
            "vanished, RED figures of each range and their deltas per node and edge, and "
            "the deploys (service.version changes) within",
            "parameters": [
                query_param("a_start", _STR, f"range A (before): {_TIME}"),
                query_param("a_end", _STR, _TIME),
                query_param("b_start", _STR, f"range B (after): {_TIME}"),
                query_param("b_end", _STR, f"{_TIME} (default now)"),
                query_param(
                    "lookback",
                    {"type": "string", "example": "1h"},
                    "B when no b_start; A defaults to as long, right before B",
                ),  # fmt: skip
            ],
            "responses": {"200": json_response("the diff"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/deploys": {
        "get": {
            "summary": "Deploy markers: when each service first reported a new service.version",
            "parameters": [
                query_param("service", _STR, "only this service"),
                query_param("start", _STR, _TIME),
                query_param("end", _STR, f"{_TIME} (default now)"),
                query_param("lookback", {"type": "string", "example": "24h"}),
            ],
            "responses": {
                "200": json_response(
                    "markers in time order",
                    {
                        "type": "object",
                        "properties": {
                            "deploys": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "service": _STR,
                                        "version": _STR,
                                        "previous": _STR,
                                        "at": {"type": "integer", "description": "unix seconds"},
                                    },
                                },
                            }
                        },
                    },
                ),
                **ERROR_RESPONSES,
            },
        }
    },
}
