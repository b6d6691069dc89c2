"""Analytics pages (services, one service, the service map) and their JSON API.

Every parameter is parsed here into numbers or allow-listed names before any
query runs; a bad one is a 400 with a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import example_links, params
from dashboard.analytics_layout import filter_graph, layout
from dashboard.context import DashboardContext
from dashboard.openapi import ERROR_RESPONSES, json_response, query_param
from tracestore import analytics_queries as aq
from tracestore.trace_queries import BadQuery

STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TARGET_POINTS = 240
MAX_POINTS = 2000
MAX_QUANTILES = 8
MAX_HOPS = 5
EDGE_TRACES_LIMIT = 50
EDGE_SORT_LABELS = {"latest": "Latest", "slowest": "Slowest", "errors": "Errors first"}
PEER_KINDS = ("service", "database", "messaging", "external")
_NAME = re.compile(r"^[^\x00-\x1f]{1,200}$")


def time_range_s(qp: QueryParams, default_lookback: str = "1h") -> tuple[int, int]:
    """(start, end) unix seconds from ``start``/``end`` (ISO-8601 or ms) or ``lookback``."""
    lookback = qp.get("lookback")
    if not lookback or lookback == "custom":  # "custom": the form's absolute start/end
        lookback = default_lookback
    start_ns, end_ns = params.time_range(qp.get("start"), qp.get("end"), lookback)
    return start_ns // 10**9, -(-end_ns // 10**9)


def parse_quantiles(text: str | None) -> tuple[float, ...]:
    """``0.5,0.99`` or ``p50,p99`` (up to eight, each strictly between 0 and 1)."""
    if not text:
        return aq.DEFAULT_QUANTILES
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        try:
            q = float(part[1:]) / 100 if part.startswith("p") else float(part)
        except ValueError:
            raise BadQuery(f"bad quantile {part[:20]!r}: use e.g. 0.99 or p99") from None
        if not 0 < q < 1:
            raise BadQuery(f"quantile {part[:20]!r} must be between 0 and 1 (exclusive)")
        out.append(q)
    if not 1 <= len(out) <= MAX_QUANTILES:
        raise BadQuery(f"give between 1 and {MAX_QUANTILES} quantiles")
    return tuple(out)


def parse_step(text: str | None, start_s: int, end_s: int) -> int:
    """Seconds per point: whole minutes, at most MAX_POINTS points; chosen when absent."""
    seconds = end_s - start_s
    if not text:
        return next((s for s in STEPS_S if seconds / s <= TARGET_POINTS), STEPS_S[-1])
    ns = params.parse_duration(text, bare_unit="s")
    if ns <= 0 or ns % (60 * 10**9):
        raise BadQuery(f"step {text[:20]!r} must be a whole number of minutes, e.g. 60, 5m, 1h")
    step = ns // 10**9
    if seconds / step > MAX_POINTS:
        raise BadQuery(f"step {text[:20]!r} gives more than {MAX_POINTS} points for this range")
    return step


def parse_name(text: str | None, what: str, required: bool = False) -> str | None:
    if not text:
        if required:
            raise BadQuery(f"{what} is required")
        return None
    if not _NAME.match(text):
        raise BadQuery(f"bad {what} {text[:40]!r}")
    return text


def filtered_graph(store, qp: QueryParams) -> dict[str, Any]:
    """The graph for the request's range, narrowed by ``namespace`` / ``focus`` + ``hops``."""
    start_s, end_s = time_range_s(qp)
    namespace = parse_name(qp.get("namespace"), "namespace")
    focus = parse_name(qp.get("focus"), "focus service")
    hops = params.parse_int(qp.get("hops") or "1", "hops", 1, MAX_HOPS)
    g = aq.graph(store, start_s, end_s)
    all_namespaces = sorted({n["namespace"] for n in g["nodes"] if n["namespace"]})
    g["nodes"], g["edges"] = filter_graph(g["nodes"], g["edges"], namespace, focus, hops)
    g.update(namespace=namespace, focus=focus, hops=hops, namespaces=all_namespaces)
    return g


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}ms" if value < 1000 else f"{value / 1000:.3g}s"


def node_label(node: dict[str, Any]) -> list[str]:
    return [node["id"], f"{node['rate']:.3g}/s · {node['error_rate']:.1%} · p99 {_ms(node['p99'])}"]


def edge_label(edge: dict[str, Any]) -> str:
    return f"{edge['rate']:.3g}/s · {edge['error_rate']:.1%} · {_ms(edge['p99'])}"


def _json_400(exc: BadQuery) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return ctx.templates.TemplateResponse(request, name, context, status_code=status)

    def bad_page(request: Request, exc: BadQuery) -> Response:
        return page(request, "message.html", {"title": "Bad request", "message": str(exc)}, 400)

    def range_form(qp: QueryParams) -> dict[str, str]:
        return {
            "lookback": qp.get("lookback") or ("custom" if qp.get("start") else "1h"),
            "start": qp.get("start", ""),
            "end": qp.get("end", ""),
        }

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, store, *args)

    async def services_page(request: Request) -> Response:
        qp = request.query_params
        try:
            start_s, end_s = time_range_s(qp)
        except BadQuery as exc:
            return bad_page(request, exc)
        rows = await run(aq.services, start_s, end_s)
        return page(
            request,
            "services.html",
            {
                "rows": rows,
                "form": range_form(qp),
                "lookbacks": params.LOOKBACKS,
                "range_ns": (start_s * 10**9, end_s * 10**9),
                "with_sidecar": any("sidecar" in r for r in rows),
            },
        )

    async def service_page(request: Request) -> Response:
        qp = request.query_params
        service = request.path_params["service"]
        try:
            parse_name(service, "service")
            start_s, end_s = time_range_s(qp)
        except BadQuery as exc:
            return bad_page(request, exc)
        ops = await run(aq.operations, service, start_s, end_s)
        examples = await run(example_links.chart_examples, service, start_s, end_s)
        summary = next(
            (r for r in await run(aq.services, start_s, end_s) if r["service"] == service), None
        )
        return page(
            request,
            "services_detail.html",
            {
                "service": service,
                "ops": ops,
                "examples": examples,
                "summary": summary,
                "start_s": start_s,
                "end_s": end_s,
                "form": range_form(qp),
                "lookbacks": params.LOOKBACKS,
                "range_ns": (start_s * 10**9, end_s * 10**9),
            },
        )

    async def map_page(request: Request) -> Response:
        qp = request.query_params
        try:
            g = await run_in_threadpool(filtered_graph, store, qp)
        except BadQuery as exc:
            return bad_page(request, exc)
        nodes = {n["id"]: n for n in g["nodes"]}
        labels = {n: node_label(node) for n, node in nodes.items()}
        placed = layout(labels, [(e["parent"], e["child"]) for e in g["edges"]])
        edges = [
            {
                **e,
                "label": edge_label(e),
                "points": placed.edges[(e["parent"], e["child"])],
                "label_at": placed.edge_labels[(e["parent"], e["child"])],
            }
            for e in g["edges"]
            if e["parent"] != e["child"]
        ]
        return page(
            request,
            "service_map.html",
            {
                "graph": g,
                "nodes": nodes,
                "labels": labels,
                "placed": placed,
                "edges": edges,
                "form": range_form(qp),
                "lookbacks": params.LOOKBACKS,
                "range_ns": (g["start"] * 10**9, g["end"] * 10**9),
            },
        )

    async def edge_page(request: Request) -> Response:
        qp = request.query_params
        try:
            parent = parse_name(qp.get("parent"), "parent", required=True)
            child = parse_name(qp.get("child"), "child", required=True)
            kind = qp.get("kind") or "service"
            if kind not in PEER_KINDS:
                raise BadQuery(f"kind must be one of {', '.join(PEER_KINDS)}")
            start_s, end_s = time_range_s(qp)
            order = qp.get("sort") or "latest"
            if order not in aq.EDGE_TRACE_ORDERS:
                raise BadQuery(f"sort must be one of {', '.join(aq.EDGE_TRACE_ORDERS)}")
        except BadQuery as exc:
            return bad_page(request, exc)
        found = await run(
            aq.edge_traces, parent, child, kind, start_s, end_s, EDGE_TRACES_LIMIT, order
        )
        examples = await run(example_links.edge_examples, parent, child, kind, start_s, end_s)
        return page(
            request,
            "services_edge.html",
            {
                "parent": parent,
                "child": child,
                "kind": kind,
                "traces": found,
                "examples": [examples],
                "limit": EDGE_TRACES_LIMIT,
                "sort": order,
                "sorts": EDGE_SORT_LABELS,
                "start_ms": start_s * 1000,
                "end_ms": end_s * 1000,
                "range_ns": (start_s * 10**9, end_s * 10**9),
            },
        )

    async def services_api(request: Request) -> Response:
        try:
            start_s, end_s = time_range_s(request.query_params)
        except BadQuery as exc:
            return _json_400(exc)
        rows = await run(aq.services, start_s, end_s)
        return JSONResponse(
            {
                "start": start_s,
                "end": end_s,
                "services": [r["service"] for r in rows],
                "stats": rows,
            }
        )

    async def latency_api(request: Request) -> Response:
        qp = request.query_params
        try:
            service = parse_name(qp.get("service"), "service", required=True)
            operation = parse_name(qp.get("operation"), "operation")
            qs = parse_quantiles(qp.get("quantiles"))
            start_s, end_s = time_range_s(qp)
            step = parse_step(qp.get("step"), start_s, end_s)
        except BadQuery as exc:
            return _json_400(exc)
        series = await run(aq.latency_series, service, start_s, end_s, step, qs, operation)
        return JSONResponse(series)

    async def graph_api(request: Request) -> Response:
        try:
            g = await run_in_threadpool(filtered_graph, store, request.query_params)
        except BadQuery as exc:
            return _json_400(exc)
        return JSONResponse(g)

    return [
        Route("/services", services_page),
        Route("/services/map", map_page),
        Route("/services/edge", edge_page),
        Route("/services/{service:path}", service_page),
        Route("/api/v1/services", services_api),
        Route("/api/v1/latency", latency_api),
        Route("/api/v1/graph", graph_api),
    ]


_RANGE = [
    query_param("start", {"type": "string"}, "ISO-8601 or Unix milliseconds"),
    query_param("end", {"type": "string"}, "ISO-8601 or Unix milliseconds (default now)"),
    query_param("lookback", {"type": "string", "example": "1h"}, "used when start is absent"),
]
_NUMBER_OR_NULL = {"type": "number", "nullable": True}
_FIGURES = {
    "calls": {"type": "integer"},
    "rate": {"type": "number", "description": "calls per second"},
    "errors": {"type": "integer"},
    "error_rate": {"type": "number"},
    "p50": _NUMBER_OR_NULL,
    "p95": _NUMBER_OR_NULL,
    "p99": _NUMBER_OR_NULL,
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/services": {
        "get": {
            "summary": "Every service with rate, error rate and p50/p95/p99 (ms) over a range",
            "parameters": _RANGE,
            "responses": {
                "200": json_response(
                    "service names and their figures (sidecar RED and sampling ratio when known)",
                    {
                        "type": "object",
                        "properties": {
                            "services": {"type": "array", "items": {"type": "string"}},
                            "stats": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"service": {"type": "string"}, **_FIGURES},
                                },
                            },
                        },
                    },
                ),
                **ERROR_RESPONSES,
            },
        }
    },
    "/api/v1/latency": {
        "get": {
            "summary": "Rate, errors and latency quantiles (ms) per step, by service or operation",
            "parameters": [
                query_param("service", {"type": "string"}, "service name", required=True),
                query_param("operation", {"type": "string"}, "span name (default: the service)"),
                query_param(
                    "quantiles", {"type": "string", "example": "0.5,0.9,0.95,0.99"}, "or p50,p99"
                ),
                *_RANGE,
                query_param("step", {"type": "string", "example": "1m"}, "whole minutes"),
            ],
            "responses": {"200": json_response("the series"), **ERROR_RESPONSES},
        }
    },
    "/api/v1/graph": {
        "get": {
            "summary": "Service dependency graph: nodes with RED figures, edges with calls/s, "
            "error rate and p99",
            "parameters": [
                *_RANGE,
                query_param("namespace", {"type": "string"}, "only this Kubernetes namespace"),
                query_param("focus", {"type": "string"}, "only this service's callers/callees"),
                query_param("hops", {"type": "integer", "minimum": 1, "maximum": MAX_HOPS}),
            ],
            "responses": {"200": json_response("nodes and edges"), **ERROR_RESPONSES},
        }
    },
}
