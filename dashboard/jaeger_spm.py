"""Jaeger's Service Performance Monitoring API (``/api/metrics/...``) from the latency rollups.

Jaeger UI's Monitor tab asks for call rates, error rates and latency quantiles per
service (and per operation) as ``MetricFamily`` JSON (Jaeger's metrics.proto /
openmetrics.proto): ``{name, type: "GAUGE", help, metrics: [{labels, metricPoints:
[{gaugeValue: {doubleValue}, timestamp}]}]}``. Jaeger computes each point from a
Prometheus window of ``ratePer`` ending at the point; here each point sums the
per-minute rollup rows (counts and latency buckets) of the same window, so a
quantile is the rollup buckets' quantile (within 0.55%). Points come every
``step``, no finer than a minute (``/api/metrics/minstep``). Points of a window
without calls are left out, as Prometheus leaves them out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import params
from dashboard.context import DashboardContext
from dashboard.jaeger_api import JAEGER_KINDS, envelope, error
from dashboard.openapi import json_response, query_param
from tracestore import trace_queries as tq
from tracestore.latency_buckets import quantiles
from tracestore.spm_queries import Minute, minute_rows
from tracestore.store import Store

MIN_STEP_MS = 60_000  # the rollups hold whole minutes
# Jaeger's defaults (docs: SPM HTTP API)
DEFAULT_LOOKBACK_MS = 3_600_000
DEFAULT_STEP_MS = 5_000
DEFAULT_RATE_PER_MS = 600_000
DEFAULT_SPAN_KINDS = ("server",)
MAX_POINTS = 10_000
_KINDS = {**JAEGER_KINDS, "unspecified": 0}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True)
class MetricsQuery:
    services: tuple[str, ...]
    kinds: tuple[int, ...]
    by_operation: bool
    end_ms: int
    lookback_ms: int
    step_ms: int
    rate_per_ms: int
    quantile: float | None = None

    def points(self) -> list[int]:
        """Point times (Unix seconds, whole minutes): every step back from the end."""
        step_s = self.step_ms // 1000
        end_s = self.end_ms // 1000 // 60 * 60
        count = min(self.lookback_ms // self.step_ms, MAX_POINTS)
        return [end_s - i * step_s for i in range(count, -1, -1)]


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    return default if not text else params.parse_int(text, name, 1, 10**13)


def metrics_query(request: Request, latencies: bool) -> MetricsQuery:
    """The query's parameters as Jaeger names and bounds them; ``BadQuery`` says which is wrong."""
    qp = request.query_params
    services = tuple(dict.fromkeys(s for s in qp.getlist("service") if s))
    if not services:
        raise tq.BadQuery("please provide at least one service name")
    kinds_text = qp.getlist("spanKind") or list(DEFAULT_SPAN_KINDS)
    for kind in kinds_text:
        if kind not in _KINDS:
            raise tq.BadQuery(f"unsupported spanKind {kind[:40]!r}")
    group = qp.get("groupByOperation") or "false"
    if group not in _TRUE | _FALSE:
        raise tq.BadQuery(f"unable to parse param 'groupByOperation': {group[:40]!r}")
    quantile = None
    if latencies:
        text = qp.get("quantile")
        if not text:
            raise tq.BadQuery("please provide a quantile between (0, 1]")
        try:
            quantile = float(text)
        except ValueError:
            raise tq.BadQuery(f"unable to parse param 'quantile': {text[:40]!r}") from None
        if not 0 < quantile <= 1:
            raise tq.BadQuery("quantile must be between (0, 1]")
    step_ms = max(_int(request, "step", DEFAULT_STEP_MS), MIN_STEP_MS) // MIN_STEP_MS * MIN_STEP_MS
    return MetricsQuery(
        services=services,
        kinds=tuple(sorted({_KINDS[k] for k in kinds_text})),
        by_operation=group in _TRUE,
        end_ms=_int(request, "endTs", time.time_ns() // 1_000_000),
        lookback_ms=min(
            _int(request, "lookback", DEFAULT_LOOKBACK_MS), params.MAX_LOOKBACK_NS // 10**6
        ),
        step_ms=step_ms,
        rate_per_ms=max(_int(request, "ratePer", DEFAULT_RATE_PER_MS), MIN_STEP_MS),
        quantile=quantile,
    )


def group_minutes(store: Store, q: MetricsQuery) -> dict[tuple[str, ...], dict[int, Minute]]:
    """Per group (service, or service and operation): the rollup's rows by minute, from
    the start of the first point's window to the last point."""
    points = q.points()
    first = points[0] - q.rate_per_ms // 1000
    return minute_rows(store, q.services, q.kinds, q.by_operation, first, points[-1])


def _timestamp(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(metric: str, q: MetricsQuery, window: list[Minute]) -> float | None:
    calls = sum(m.calls for m in window)
    if not calls:
        return None
    if metric == "calls":
        return calls / (q.rate_per_ms / 1000)
    if metric == "errors":
        return sum(m.errors for m in window) / calls
    merged: dict[int, int] = defaultdict(int)
    for m in window:
        for k, c in m.buckets.items():
            merged[k] += c
    (value,) = quantiles(merged, [q.quantile or 0.0])
    return None if value is None else value / 1e6  # milliseconds, as Jaeger's


def metric_family(metric: str, q: MetricsQuery, rows: dict) -> dict[str, Any]:
    """One ``MetricFamily``: a gauge series per group, a point per step."""
    grouping = "service & operation" if q.by_operation else "service"
    prefix = "service_operation" if q.by_operation else "service"
    if metric == "latencies":
        name = f"{prefix}_latencies"
        help_text = f"{q.quantile or 0:.2f}th quantile latency, grouped by {grouping}"
    elif metric == "calls":
        name, help_text = f"{prefix}_call_rate", f"calls/sec, grouped by {grouping}"
    else:
        name = f"{prefix}_error_rate"
        help_text = (
            "error rate, computed as a fraction of errors/sec over calls/sec, "
            f"grouped by {grouping}"
        )
    window_minutes = q.rate_per_ms // MIN_STEP_MS
    metrics = []
    for key in sorted(rows):
        by_minute = rows[key]
        points = []
        for t in q.points():
            window = [by_minute[m] for m in range(t - window_minutes * 60, t, 60) if m in by_minute]
            value = _value(metric, q, window)
            if value is not None:
                points.append({"gaugeValue": {"doubleValue": value}, "timestamp": _timestamp(t)})
        labels = [{"name": "service_name", "value": key[0]}]
        if q.by_operation:
            labels.insert(0, {"name": "operation", "value": key[1]})
        metrics.append({"labels": labels, "metricPoints": points})
    return {"name": name, "type": "GAUGE", "help": help_text, "metrics": metrics}


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    store = ctx.store

    def handler(metric: str):
        async def answer(request: Request) -> Response:
            try:
                q = metrics_query(request, latencies=metric == "latencies")
            except tq.BadQuery as exc:
                return error(400, str(exc))
            rows = await run_in_threadpool(group_minutes, store, q)
            # Jaeger answers with the bare MetricFamily, no envelope
            return JSONResponse(metric_family(metric, q, rows))

        return answer

    async def minstep(request: Request) -> Response:
        return envelope(MIN_STEP_MS)

    return [
        Route("/api/metrics/latencies", handler("latencies")),
        Route("/api/metrics/calls", handler("calls")),
        Route("/api/metrics/errors", handler("errors")),
        Route("/api/metrics/minstep", minstep),
    ]


_MS = {"type": "integer", "minimum": 1}
_METRIC_PARAMS = [
    query_param("service", {"type": "string"}, "repeatable", required=True),
    query_param("groupByOperation", {"type": "boolean"}),
    query_param("endTs", _MS, "Unix milliseconds"),
    query_param("lookback", _MS, "milliseconds"),
    query_param("step", _MS, "milliseconds, at least 60000"),
    query_param("ratePer", _MS, "milliseconds"),
    query_param("spanKind", {"type": "string", "enum": list(_KINDS)}, "repeatable"),
]
_FAMILY = "Jaeger MetricFamily JSON"
OPENAPI_PATHS: dict[str, Any] = {
    f"/api/metrics/{metric}": {
        "get": {
            "summary": f"Jaeger SPM: {summary}",
            "parameters": _METRIC_PARAMS
            + (
                [query_param("quantile", {"type": "number"}, "(0, 1]", required=True)]
                if metric == "latencies"
                else []
            ),
            "responses": {"200": json_response(_FAMILY), "400": json_response(_FAMILY)},
        }
    }
    for metric, summary in (
        ("latencies", "latency quantile per step (ms)"),
        ("calls", "call rate per step (calls/s)"),
        ("errors", "error ratio per step"),
    )
}
OPENAPI_PATHS["/api/metrics/minstep"] = {
    "get": {
        "summary": "Jaeger SPM: the finest step, in milliseconds",
        "responses": {"200": json_response("Jaeger envelope with data = milliseconds")},
    }
}
