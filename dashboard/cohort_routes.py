""" "Why is it slow?": the ``/cohort`` page and ``/api/v1/cohort`` (slow-cohort analysis).

Parameters are parsed into numbers and bounded names before any query runs; a
bad one is a 400 with a message (``dashboard.params`` parses times and durations).
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
from dashboard.openapi import ERROR_RESPONSES, json_response, query_param
from tracestore import cohort_queries as cq
from tracestore.trace_queries import BadQuery

DEFAULT_LOOKBACK = "1h"
_NAME = re.compile(r"^[^\x00-\x1f]{1,256}$")


def parse_name(text: str | None, what: str) -> str:
    if not text:
        raise BadQuery(f"{what} is required")
    if not _NAME.match(text):
        raise BadQuery(f"bad {what} {text[:40]!r}")
    return text


def parse_percentile(text: str | None) -> float:
    """``p90``, ``90`` with the p, or ``0.9``: strictly between 0 and 1 (as a fraction)."""
    if not text:
        return cq.DEFAULT_PERCENTILE
    t = text.strip().lower()
    try:
        value = float(t[1:]) / 100 if t.startswith("p") else float(t)
    except ValueError:
        raise BadQuery(f"bad percentile {text[:20]!r}: use e.g. p90 or 0.9") from None
    if not 0 < value < 1:
        raise BadQuery(f"percentile {text[:20]!r} must be between p0 and p100 (exclusive)")
    return value


def cohort_query(qp: QueryParams) -> cq.CohortQuery:
    lookback = qp.get("lookback")
    if not lookback or lookback == "custom":
        lookback = DEFAULT_LOOKBACK
    start_ns, end_ns = params.time_range(qp.get("start"), qp.get("end"), lookback)
    threshold = qp.get("threshold")
    threshold_ns = params.parse_duration(threshold) if threshold else None
    if threshold_ns is not None and threshold_ns <= 0:
        raise BadQuery("threshold must be above zero")
    return cq.CohortQuery(
        service=parse_name(qp.get("service"), "service"),
        operation=parse_name(qp.get("operation"), "operation"),
        from_s=start_ns // 10**9,
        to_s=-(-end_ns // 10**9),
        percentile=parse_percentile(qp.get("percentile")),
        threshold_ns=threshold_ns,
        per_cohort=params.parse_int(
            qp.get("sample") or str(cq.DEFAULT_PER_COHORT), "sample", 10, cq.MAX_PER_COHORT
        ),
    )


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    async def cohort_api(request: Request) -> Response:
        try:
            q = cohort_query(request.query_params)
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await run_in_threadpool(cq.analyze_cohorts, store, q))

    async def cohort_page(request: Request) -> Response:
        qp = request.query_params
        form = {
            "service": qp.get("service", ""),
            "operation": qp.get("operation", ""),
            "percentile": qp.get("percentile", ""),
            "threshold": qp.get("threshold", ""),
            "lookback": qp.get("lookback") or ("custom" if qp.get("start") else DEFAULT_LOOKBACK),
            "start": qp.get("start", ""),
            "end": qp.get("end", ""),
        }
        context: dict[str, Any] = {"form": form, "lookbacks": params.LOOKBACKS, "result": None}
        if not (form["service"] or form["operation"]):
            return ctx.templates.TemplateResponse(request, "cohort.html", context)
        try:
            q = cohort_query(qp)
        except BadQuery as exc:
            context["error"] = str(exc)
            return ctx.templates.TemplateResponse(request, "cohort.html", context, status_code=400)
        context["result"] = await run_in_threadpool(cq.analyze_cohorts, store, q)
        context["range_text"] = params.describe_range(q.from_s * 10**9, q.to_s * 10**9)
        return ctx.templates.TemplateResponse(request, "cohort.html", context)

    return [Route("/cohort", cohort_page), Route("/api/v1/cohort", cohort_api)]


_STR = {"type": "string"}
_COHORT = {
    "type": "object",
    "properties": {
        "traces": {"type": "integer"},
        "mean_ms": {"type": "number", "nullable": True},
        "median_ms": {"type": "number", "nullable": True},
        "errors": {"type": "integer"},
        "error_share": {"type": "number", "nullable": True},
    },
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/cohort": {
        "get": {
            "summary": "Slow-cohort analysis of one operation: the downstream operations whose "
            "self time accounts for the slow traces' extra time, attribute values "
            "over-represented among slow traces (lift), and each cohort's error share",
            "description": "Computed in ClickHouse. Slow means the operation's span (the "
            "longest per trace) at or above `threshold`, else at or above `percentile` of "
            "the operation's traces in the range. Attribution and attributes read a "
            "deterministic sample of at most `sample` traces per cohort.",
            "parameters": [
                query_param("service", _STR, "service name", required=True),
                query_param("operation", _STR, "span name", required=True),
                query_param("percentile", {"type": "string", "example": "p90"}, "or 0.9"),
                query_param("threshold", {"type": "string", "example": "250ms"}, "overrides"),
                query_param(
                    "sample",
                    {"type": "integer", "minimum": 10, "maximum": cq.MAX_PER_COHORT},
                    "traces per cohort read for attribution and attributes (default 500)",
                ),
                query_param("start", _STR, "ISO-8601 or Unix milliseconds"),
                query_param("end", _STR, "ISO-8601 or Unix milliseconds (default now)"),
                query_param("lookback", {"type": "string", "example": "1h"}),
            ],
            "responses": {
                "200": json_response(
                    "the cohorts, attribution (best first) and attributes (by lift)",
                    {
                        "type": "object",
                        "properties": {
                            "threshold_ms": {"type": "number"},
                            "slow": _COHORT,
                            "rest": _COHORT,
                            "attribution": {"type": "array", "items": {"type": "object"}},
                            "attributes": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                ),
                **ERROR_RESPONSES,
            },
        }
    }
}
