"""The collector's admin port: ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from collector.stats import Stats


def create_app(stats: Stats, ready: Callable[[], tuple[bool, str]]) -> Starlette:
    """``ready()`` says whether to take traffic, and why not."""

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> PlainTextResponse:
        ok, reason = ready()
        return PlainTextResponse(f"{reason}\n", status_code=200 if ok else 503)

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(stats.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )
