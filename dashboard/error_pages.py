"""Errors the routes did not render themselves: a styled page for people, JSON for the APIs.

An unknown URL, a wrong method or a bad parameter on a page gets the site's own page
(navigation, the trace-id box) with the reason, instead of Starlette's bare "Not Found";
``/api/`` paths and clients that ask for JSON get ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dashboard.context import DashboardContext

Handler = Callable[[Request, Exception], Awaitable[Response]]
TITLES = {404: "Page not found", 405: "Method not allowed"}


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.url.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept
    )


def error_response(
    ctx: DashboardContext, request: Request, status: int, title: str, message: str
) -> Response:
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return ctx.templates.TemplateResponse(
        request, "error.html", {"status": status, "title": title, "message": message},
        status_code=status,
    )  # fmt: skip


def http_error_handler(ctx: DashboardContext) -> Handler:
    """Starlette's HTTPException (unknown path, wrong method) as a page or JSON."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"There is no page at {request.url.path[:200]}."
        else:
            message = str(exc.detail)
        response = error_response(
            ctx, request, exc.status_code, TITLES.get(exc.status_code, "Error"), message
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    return handle
