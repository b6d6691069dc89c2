"""The dashboard's Starlette application, assembled from feature route modules.

Each feature module exposes ``routes(ctx)`` and may expose ``startup(ctx)``,
``shutdown(ctx)`` and ``OPENAPI_PATHS``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard import (
    analytics_routes,
    cohort_routes,
    compare_routes,
    graph_diff_routes,
    jaeger_api,
    jaeger_spm,
    jaeger_v3,
    openapi,
    slo_routes,
    tier_routes,
    trace_routes,
)
from dashboard.auth import AuthMiddleware
from dashboard.body_limit import BodyLimit
from dashboard.context import STATIC_DIR, DashboardContext
from dashboard.cross_site import CrossSiteGuard
from dashboard.error_pages import http_error_handler
from dashboard.json_input import BadJson
from dashboard.page_headers import SecurityHeaders
from tracestore.store import StoreError
from tracestore.trace_queries import BadQuery

log = logging.getLogger(__name__)

FEATURE_MODULES: tuple[ModuleType, ...] = (
    trace_routes,
    tier_routes,
    jaeger_api,
    jaeger_v3,
    analytics_routes,
    jaeger_spm,
    slo_routes,
    compare_routes,
    cohort_routes,
    graph_diff_routes,
)


def create_app(ctx: DashboardContext) -> Starlette:
    modules = FEATURE_MODULES
    document = openapi.document(getattr(m, "OPENAPI_PATHS", {}) for m in modules)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[ModuleType] = []
        try:
            for module in modules:
                if hasattr(module, "startup"):
                    await module.startup(ctx)
                started.append(module)
            yield
        finally:
            for module in reversed(started):
                if hasattr(module, "shutdown"):
                    try:
                        await module.shutdown(ctx)
                    except Exception:
                        log.exception("shutdown of %s failed", module.__name__)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def home(request: Request) -> Response:
        return RedirectResponse("/search", status_code=302)

    async def store_error(request: Request, exc: Exception) -> Response:
        # The store's message names tables and servers: it goes to the log, not the client.
        log.warning("store error on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"error": "storage unavailable; the dashboard's log has the cause"}, status_code=503
        )

    async def bad_input(request: Request, exc: Exception) -> Response:
        """A parameter no route caught itself is still the client's error, not a 500."""
        return JSONResponse({"error": str(exc)}, status_code=400)

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/api/v1/openapi.json", openapi_json),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    for module in modules:
        routes.extend(module.routes(ctx))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit),
            Middleware(AuthMiddleware, settings=ctx.auth),
            Middleware(CrossSiteGuard, trusted_origins=frozenset({ctx.external_url})),
        ],
        exception_handlers={
            StoreError: store_error,
            BadQuery: bad_input,
            BadJson: bad_input,
            HTTPException: http_error_handler(ctx),
        },
    )
    app.state.ctx = ctx
    return app
