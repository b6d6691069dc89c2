"""SLO and alert pages and JSON API; runs the SLO evaluator inside the dashboard.

``startup(ctx)`` loads ``ctx.slo_files`` (refusing invalid ones with
``FILE:LINE: FIELD: message``) and evaluates every ``ctx.slo_interval``
seconds (``--slo-interval``, default 30). Without SLO files no evaluator runs here (a separate
``sidetrace alerter`` may), and the alert pages still show the history and
silences stored in ClickHouse.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard import openapi
from dashboard.alert_silences import (
    MAX_AUTHOR_CHARS,
    MAX_COMMENT_CHARS,
    MAX_MATCHERS,
    SilenceError,
    SilenceStore,
    matcher_from_json,
    new_silence,
    parse_matchers,
)
from dashboard.context import DashboardContext
from dashboard.error_pages import error_response
from dashboard.json_input import parse_json_object
from dashboard.slo_evaluator import AlertView, CutPlan, SloEvaluator, SloStatus, Snapshot
from slospec.slo_config import (
    SloConfigError,
    SloConfigSet,
    format_duration,
    parse_duration,
)
from tracestore.alert_queries import event_history, recent_attempts
from tracestore.slo_math import burndown
from tracestore.slo_queries import step_counts

log = logging.getLogger(__name__)

STATE_KEY = "slo_evaluator"
CHART_STEPS = 60
HISTORY_LIMIT = 200
MAX_DURATION_CHARS = 64
MAX_TIME_CHARS = 64
SILENCE_FIELDS = ("matchers", "duration", "created_by", "comment")


def load_evaluator(ctx: DashboardContext) -> SloEvaluator:
    """Load the SLO files against the services seen in spans; raises SloConfigError."""
    config = SloConfigSet(list(ctx.slo_files), ctx.slo_time_scale)
    evaluator = SloEvaluator(ctx.store, config, ctx.external_url)
    try:
        config.load(evaluator.known_services)
    except SloConfigError:
        evaluator.close()
        raise
    return evaluator


async def startup(ctx: DashboardContext) -> None:
    """Start the evaluator; a command may have loaded it already (``load_evaluator``) to
    refuse invalid files with a clean exit before serving."""
    evaluator: SloEvaluator | None = ctx.state.get(STATE_KEY)
    if evaluator is None:
        if not ctx.slo_files:
            return
        try:
            evaluator = await run_in_threadpool(load_evaluator, ctx)
        except SloConfigError as exc:
            for line in exc.errors:
                log.error("invalid SLO file: %s", line)
            raise
        ctx.state[STATE_KEY] = evaluator
    evaluator.start(ctx.slo_interval)


async def shutdown(ctx: DashboardContext) -> None:
    evaluator = ctx.state.pop(STATE_KEY, None)
    if evaluator is not None:
        await run_in_threadpool(evaluator.close)


def _snapshot(ctx: DashboardContext) -> tuple[Snapshot, bool]:
    evaluator: SloEvaluator | None = ctx.state.get(STATE_KEY)
    return (evaluator.snapshot, True) if evaluator else (Snapshot(), False)


# ---- JSON shapes --------------------------------------------------------------------


def _alert_json(view: AlertView) -> dict[str, Any]:
    return {
        "fingerprint": view.alert.fingerprint,
        "labels": view.alert.labels,
        "annotations": view.alert.annotations,
        "state": view.state.state,
        "activeAt": view.state.active_at,
        "resolvedAt": view.state.resolved_at,
        "value": view.value,
        "silenced": view.silenced,
        "receivers": list(view.alert.receivers),
    }


def _slo_json(status: SloStatus) -> dict[str, Any]:
    slo = status.slo
    return {
        "name": slo.name,
        "description": slo.description,
        "service": slo.filters.service,
        "operation": slo.filters.operation,
        "route": slo.filters.route,
        "spanKind": slo.filters.span_kind,
        "thresholdMs": slo.threshold_ns / 1e6,
        "effectiveThresholdMs": status.effective_threshold_ns / 1e6,
        "target": slo.target,
        "windowSeconds": slo.window_s,
        "errorsCountAsBad": slo.errors_count_as_bad,
        "good": status.good,
        "total": status.total,
        "sli": status.sli,
        "budgetRemaining": status.budget_remaining,
        "burnRates": {format_duration(w): r for w, r in status.burn_rates},
        "timeToExhaustionSeconds": status.time_to_exhaustion_s,
        "alerts": [_alert_json(v) for v in status.alerts],
        "source": slo.source,
    }


# ---- burn-down chart ----------------------------------------------------------------

CHART_W, CHART_H = 560, 120


def _charts(ctx: DashboardContext, snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """SVG geometry of each SLO's budget burn-down over its window (one query per window)."""
    by_window: dict[float, list[SloStatus]] = {}
    for status in snapshot.slos:
        by_window.setdefault(status.slo.window_s, []).append(status)
    charts = {}
    now = snapshot.at or time.time()
    for window, statuses in by_window.items():
        plan = CutPlan()
        for s in statuses:
            plan.cut(s.slo.filters.service, s.slo.threshold_ns)
        step_s, series = step_counts(ctx.store, plan.cuts, window, CHART_STEPS, now)
        for s in statuses:
            f = s.slo.filters
            index = plan.cut(f.service, s.slo.threshold_ns)
            steps: list[list[int]] = []
            for (service, name, kind), counts in series.items():
                if service != f.service or not f.matches(name, kind):
                    continue
                for i, c in enumerate(counts):
                    good = (c.ok_good if s.slo.errors_count_as_bad else c.good)[index]
                    if i >= len(steps):
                        steps.append([0, 0])
                    steps[i][0] += good
                    steps[i][1] += c.calls
            start = now - window
            points = burndown(
                ((start + (i + 1) * step_s, g, t) for i, (g, t) in enumerate(steps)), s.slo.target
            )
            charts[s.slo.name] = _geometry(points, start, window)
    return charts


def _geometry(points: list[tuple[float, float]], start: float, window: float) -> dict[str, Any]:
    """Polyline points; an overspent budget is drawn down to -100% at most."""
    points = [(t, max(v, -1.0)) for t, v in points]
    low = min([0.0, *(v for _, v in points)])
    span = 1.0 - low or 1.0

    def y(value: float) -> float:
        return round((1.0 - value) / span * CHART_H, 1)

    coords = [(0.0, y(1.0))] + [
        (round(min(1.0, (t - start) / window) * CHART_W, 1), y(v)) for t, v in points
    ]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "points": " ".join(f"{x},{yy}" for x, yy in coords),
        "zero_y": y(0.0),
        "low": low,
        "end": points[-1][1] if points else 1.0,
        "start_ms": int(start * 1000),
        "end_ms": int((start + window) * 1000),
    }


# ---- pages --------------------------------------------------------------------------


def routes(ctx: DashboardContext) -> list[BaseRoute]:
    silences = SilenceStore(ctx.store)

    async def slos_page(request: Request) -> Response:
        snapshot, running = _snapshot(ctx)
        charts = await run_in_threadpool(_charts, ctx, snapshot) if snapshot.slos else {}
        return ctx.templates.TemplateResponse(
            request,
            "slos.html",
            {
                "snapshot": snapshot,
                "running": running,
                "charts": charts,
                "format_duration": format_duration,
            },
        )

    async def slo_page(request: Request) -> Response:
        """One SLO: the list's section, links to its service and bad events, its alert history."""
        snapshot, running = _snapshot(ctx)
        name = request.path_params["name"]
        status = next((s for s in snapshot.slos if s.slo.name == name), None)
        if status is None:
            why = "" if running else " (no SLO files are loaded in this dashboard)"
            return error_response(
                ctx, request, 404, "No such SLO", f"no SLO named {name[:100]!r} is loaded{why}"
            )
        charts = await run_in_threadpool(_charts, ctx, snapshot)
        history: list[dict[str, Any]] = []
        for view in status.alerts:
            history += await run_in_threadpool(_history, ctx, view.alert.fingerprint, 50)
        history.sort(key=lambda e: e["atMs"], reverse=True)
        return ctx.templates.TemplateResponse(
            request,
            "slo.html",
            {
                "snapshot": snapshot,
                "status": status,
                "chart": charts.get(name),
                "history": history,
                "format_duration": format_duration,
            },
        )

    async def alerts_page(request: Request) -> Response:
        snapshot, running = _snapshot(ctx)
        fingerprint = request.query_params.get("fingerprint") or None
        history = await run_in_threadpool(_history, ctx, fingerprint, HISTORY_LIMIT)
        notifications = await run_in_threadpool(_notifications, ctx, 50)
        all_silences = await run_in_threadpool(silences.all)
        return ctx.templates.TemplateResponse(
            request,
            "alerts.html",
            {
                "snapshot": snapshot,
                "running": running,
                "history": history,
                "notifications": notifications,
                "silences": all_silences,
                "now": time.time(),
                "fingerprint": fingerprint,
                "error": request.query_params.get("error", ""),
                "form": {k: request.query_params.get(k, "")[:500] for k in SILENCE_FIELDS},
            },
        )

    async def create_silence_form(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=16)

        def field(name: str) -> str:
            value = form.get(name, "")
            if not isinstance(value, str):
                raise SilenceError(f"{name} must be a text field, not a file")
            return value

        try:
            now = time.time()
            silence = new_silence(
                parse_matchers(field("matchers")),
                now,
                now + _duration(field("duration")),
                field("created_by"),
                field("comment"),
                now,
            )
        except (SilenceError, ValueError) as exc:
            kept = urlencode(  # the form comes back with what was typed
                {k: v[:500] for k in SILENCE_FIELDS if isinstance(v := form.get(k, ""), str)}
            )
            return RedirectResponse(
                f"/alerts?error={quote(str(exc)[:300])}&{kept}#new-silence", status_code=303
            )
        await run_in_threadpool(silences.save, silence)
        return RedirectResponse("/alerts", status_code=303)

    async def expire_silence_form(request: Request) -> Response:
        await run_in_threadpool(silences.expire, request.path_params["id"])
        return RedirectResponse("/alerts", status_code=303)

    # ---- JSON API -----------------------------------------------------------------------

    async def api_slos(request: Request) -> Response:
        snapshot, running = _snapshot(ctx)
        return JSONResponse(
            {
                "evaluatedAt": snapshot.at or None,
                "evaluationMs": snapshot.duration_ms,
                "running": running,
                "error": snapshot.error or None,
                "configErrors": list(snapshot.config_errors),
                "slos": [_slo_json(s) for s in snapshot.slos],
            }
        )

    async def api_alerts(request: Request) -> Response:
        snapshot, _ = _snapshot(ctx)
        return JSONResponse({"alerts": [_alert_json(v) for v in snapshot.alerts]})

    async def api_history(request: Request) -> Response:
        try:
            limit = min(int(request.query_params.get("limit", HISTORY_LIMIT)), 10_000)
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, status_code=400)
        fingerprint = request.query_params.get("fingerprint") or None
        rows = await run_in_threadpool(_history, ctx, fingerprint, max(1, limit))
        return JSONResponse({"events": rows})

    async def api_silences(request: Request) -> Response:
        now = time.time()
        found = await run_in_threadpool(silences.all)
        return JSONResponse({"silences": [s.as_json(now) for s in found]})

    async def api_create_silence(request: Request) -> Response:
        try:
            body = parse_json_object(await request.body())
            silence = _silence_from_json(body)
        except (SilenceError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        await run_in_threadpool(silences.save, silence)
        return JSONResponse({"silenceID": silence.id}, status_code=201)

    async def api_expire_silence(request: Request) -> Response:
        found = await run_in_threadpool(silences.expire, request.path_params["id"])
        if found is None:
            return JSONResponse({"error": "no such silence"}, status_code=404)
        return JSONResponse(found.as_json(time.time()))

    return [
        Route("/slos", slos_page),
        Route("/slos/{name}", slo_page),
        Route("/alerts", alerts_page),
        Route("/alerts/silences", create_silence_form, methods=["POST"]),
        Route("/alerts/silences/{id}/expire", expire_silence_form, methods=["POST"]),
        Route("/api/v1/slos", api_slos),
        Route("/api/v1/alerts", api_alerts),
        Route("/api/v1/alerts/history", api_history),
        Route("/api/v1/silences", api_silences, methods=["GET"]),
        Route("/api/v1/silences", api_create_silence, methods=["POST"]),
        Route("/api/v1/silences/{id}", api_expire_silence, methods=["DELETE"]),
    ]


def _when(value: Any, default: float) -> float:
    """Epoch seconds or an RFC 3339 time."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        raise SilenceError("times are RFC 3339 text or epoch seconds")
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError):
        raise SilenceError(f"cannot read time {value!r}: use RFC 3339 or epoch seconds") from None


def _duration(text: Any) -> float:
    """Seconds from a silence's duration (``2h``, ``1h30m``)."""
    if not isinstance(text, str) or not text.strip():
        raise SilenceError('give a duration such as "2h"')
    if len(text) > MAX_DURATION_CHARS:
        raise SilenceError(f"duration {text[:40]!r}… is too long")
    return parse_duration(text.strip())


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise SilenceError(f'"{name}" must be a string')
    return value


def _silence_from_json(body: dict[str, Any]) -> Any:
    raw = body.get("matchers")
    if isinstance(raw, str):
        matchers = parse_matchers(raw)
    elif isinstance(raw, list):
        if len(raw) > MAX_MATCHERS:
            raise SilenceError(f"a silence has at most {MAX_MATCHERS} matchers")
        matchers = [matcher_from_json(m) if isinstance(m, dict) else _bad_matcher() for m in raw]
    else:
        raise SilenceError('"matchers" must be a list or a string like alertname="x"')
    now = time.time()
    starts = _when(body.get("startsAt"), now)
    if "endsAt" in body:
        ends = _when(body["endsAt"], 0.0)
    elif "duration" in body:
        ends = starts + _duration(body["duration"])
    else:
        raise SilenceError('give "endsAt" or "duration"')
    return new_silence(
        matchers, starts, ends, _text_field(body, "createdBy"), _text_field(body, "comment"), now
    )


def _bad_matcher() -> Any:
    raise SilenceError('each matcher is an object with "name" and "value"')


def _history(ctx: DashboardContext, fingerprint: str | None, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "atMs": e.at_ms,
            "alertname": e.alertname,
            "severity": e.severity,
            "kind": e.kind,
            "from": e.from_state,
            "to": e.to_state,
            "value": e.value,
            "silenced": e.silenced,
            "fingerprint": e.fingerprint,
            "startsAtMs": e.starts_at_ms,
            "endsAtMs": e.ends_at_ms,
            "labels": dict(e.labels),
        }
        for e in event_history(ctx.store, limit, fingerprint)
    ]


def _notifications(ctx: DashboardContext, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "atMs": a.at_ms,
            "receiver": a.receiver,
            "groupKey": a.group_key,
            "status": a.status,
            "attempt": a.attempt,
            "outcome": a.outcome,
            "httpStatus": a.http_status,
            "error": a.error,
        }
        for a in recent_attempts(ctx.store, limit)
    ]


_ALERT_SCHEMA = {"type": "object"}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/slos": {
        "get": {
            "summary": "SLOs with SLI, budget remaining, burn rates and their alerts",
            "responses": {"200": openapi.json_response("SLO status")},
        }
    },
    "/api/v1/alerts": {
        "get": {
            "summary": "Current alerts (pending, firing, resolved) with silenced flag",
            "responses": {"200": openapi.json_response("alerts", _ALERT_SCHEMA)},
        }
    },
    "/api/v1/alerts/history": {
        "get": {
            "summary": "Alert state changes, newest first",
            "parameters": [
                openapi.query_param("limit", {"type": "integer", "minimum": 1}, "rows"),
                openapi.query_param("fingerprint", {"type": "string"}, "one alert only"),
            ],
            "responses": {"200": openapi.json_response("events"), **openapi.ERROR_RESPONSES},
        }
    },
    "/api/v1/silences": {
        "get": {
            "summary": "All silences with their state",
            "responses": {"200": openapi.json_response("silences")},
        },
        "post": {
            "summary": "Create a silence",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["matchers", "createdBy", "comment"],
                            "properties": {
                                "matchers": {
                                    "description": "list of {name, value, isRegex, isEqual} "
                                    'or a string like alertname="x"; regular expressions are '
                                    "RE2 (Go syntax), matched against the whole label value",
                                },
                                "startsAt": {"type": "string", "format": "date-time"},
                                "endsAt": {"type": "string", "format": "date-time"},
                                "duration": {"type": "string", "example": "2h"},
                                "createdBy": {"type": "string", "maxLength": MAX_AUTHOR_CHARS},
                                "comment": {"type": "string", "maxLength": MAX_COMMENT_CHARS},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": openapi.json_response("created: {silenceID}"),
                **openapi.ERROR_RESPONSES,
                **openapi.WRITE_ERROR_RESPONSES,
            },
        },
    },
    "/api/v1/silences/{id}": {
        "delete": {
            "summary": "Expire a silence now",
            "parameters": [openapi.path_param("id", {"type": "string"}, "silence id")],
            "responses": {
                "200": openapi.json_response("the expired silence"),
                **openapi.ERROR_RESPONSES,
                **openapi.WRITE_ERROR_RESPONSES,
            },
        }
    },
}
