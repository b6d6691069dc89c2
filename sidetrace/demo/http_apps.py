"""The Starlette services of the sample system: frontend, catalog, orders and inventory.

They do what real services do for tracing through a sidecar: read the
``traceparent`` (and ``tracestate``, ``baggage``) their sidecar handed them and
send it on with every outbound call, which goes through their own sidecar
used as an HTTP proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidetrace.demo.app_tracing import tracer_provider
from sidetrace.demo.topology import AppConfig

CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")
Handler = Callable[[Request], Awaitable[Response]]


class UpstreamError(Exception):
    """A call to another service failed; the caller answers 502."""


def context_headers(request: Request) -> dict[str, str]:
    """The trace context headers to forward, exactly as received."""
    return {h: request.headers[h] for h in CONTEXT_HEADERS if h in request.headers}


class Service:
    """Shared plumbing of one HTTP service: simulated work and calls to upstreams."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.behaviour = config.behaviour()
        self.rng = random.Random()
        self.client = httpx.AsyncClient(
            proxy=f"http://127.0.0.1:{config.proxy_port}", timeout=10.0, trust_env=False
        )

    async def work(self) -> None:
        """Spend this service's own (simulated) time on the request."""
        await asyncio.sleep(self.behaviour.delay_s(self.rng, time.time()))

    def failed(self) -> Response | None:
        if self.behaviour.fails(self.rng):
            return JSONResponse({"error": f"{self.config.service} failed"}, status_code=500)
        return None

    async def call(self, request: Request, upstream: str, method: str, path: str) -> dict:
        url = f"http://127.0.0.1:{self.config.upstreams[upstream]}{path}"
        try:
            response = await self.client.request(method, url, headers=context_headers(request))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{upstream}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"{upstream} answered {response.status_code}")
        return response.json()


def handled(service: Service, handler: Handler) -> Handler:
    """Wrap a route: own work first, an occasional failure, upstream errors as 502."""

    async def endpoint(request: Request) -> Response:
        await service.work()
        failure = service.failed()
        if failure is not None:
            return failure
        try:
            return await handler(request)
        except UpstreamError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)

    return endpoint


def frontend_routes(s: Service) -> list[Route]:
    async def home(request: Request) -> Response:
        return JSONResponse({"shop": "sidetrace demo"})

    async def products(request: Request) -> Response:
        return JSONResponse(await s.call(request, "catalog", "GET", "/items"))

    async def product(request: Request) -> Response:
        item = request.path_params["item"]
        return JSONResponse(await s.call(request, "catalog", "GET", f"/items/{item}"))

    async def checkout(request: Request) -> Response:
        item = request.query_params.get("item", "1")
        priced = await s.call(request, "catalog", "GET", f"/items/{item}")
        order = await s.call(request, "orders", "POST", f"/orders?item={item}")
        return JSONResponse({"order": order, "price": priced.get("price")})

    async def order(request: Request) -> Response:
        order_id = request.path_params["order"]
        return JSONResponse(await s.call(request, "orders", "GET", f"/orders/{order_id}"))

    return [
        Route("/", handled(s, home)),
        Route("/products", handled(s, products)),
        Route("/products/{item}", handled(s, product)),
        Route("/checkout", handled(s, checkout), methods=["POST"]),
        Route("/orders/{order}", handled(s, order)),
    ]


def catalog_routes(s: Service) -> list[Route]:
    async def items(request: Request) -> Response:
        return JSONResponse({"items": [{"id": i, "price": 10 + i} for i in range(1, 21)]})

    async def item(request: Request) -> Response:
        item_id = int(request.path_params["item"])
        return JSONResponse({"id": item_id, "price": 10 + item_id})

    return [
        Route("/items", handled(s, items)),
        Route("/items/{item:int}", handled(s, item)),
    ]


def orders_routes(s: Service, charge: Callable[[Request, int], Awaitable[dict]]) -> list[Route]:
    async def create(request: Request) -> Response:
        item = request.query_params.get("item", "1")
        reserved = await s.call(request, "inventory", "POST", f"/reservations?item={item}")
        payment = await charge(request, 10 + int(item))
        return JSONResponse({"id": s.rng.randrange(10**6), "reserved": reserved, **payment})

    async def show(request: Request) -> Response:
        stock = await s.call(request, "inventory", "GET", "/stock/1")
        return JSONResponse({"id": request.path_params["order"], "stock": stock})

    return [
        Route("/orders", handled(s, create), methods=["POST"]),
        Route("/orders/{order}", handled(s, show)),
    ]


def inventory_routes(s: Service, query: Callable[[Request, str], Awaitable[bool]]) -> list[Route]:
    def database_down() -> Response:
        return JSONResponse({"error": "database error"}, status_code=503)

    async def reserve(request: Request) -> Response:
        if not await query(request, "UPDATE stock SET reserved = reserved + 1 WHERE sku = $1"):
            return database_down()
        return JSONResponse({"sku": request.query_params.get("item", "1"), "reserved": True})

    async def stock(request: Request) -> Response:
        if not await query(request, "SELECT available FROM stock WHERE sku = $1"):
            return database_down()
        return JSONResponse({"sku": request.path_params["sku"], "available": 42})

    return [
        Route("/reservations", handled(s, reserve), methods=["POST"]),
        Route("/stock/{sku}", handled(s, stock)),
    ]


def build_app(config: AppConfig) -> Starlette:
    """The Starlette app of one HTTP service of the sample system."""
    service = Service(config)
    on_shutdown: list[Callable[[], Awaitable[None] | None]] = [service.client.aclose]
    if config.service == "frontend":
        routes = frontend_routes(service)
    elif config.service == "catalog":
        routes = catalog_routes(service)
    elif config.service == "orders":
        from sidetrace.demo.payments import PaymentsClient

        provider = tracer_provider(config.service, config.collector)
        tracer = provider.get_tracer("sidetrace.demo.payments_client")
        payments = PaymentsClient(config.proxy_port, config.upstreams["payments"], tracer)
        on_shutdown += [payments.close, provider.shutdown]
        routes = orders_routes(service, payments.charge)
    elif config.service == "inventory":
        from sidetrace.demo.database import DatabaseSpans

        provider = tracer_provider(config.service, config.collector)
        database = DatabaseSpans(
            provider.get_tracer("sidetrace.demo.database"), service.behaviour, service.rng
        )
        on_shutdown.append(provider.shutdown)
        routes = inventory_routes(service, database.query)
    else:
        raise ValueError(f"no HTTP app named {config.service!r}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for close in on_shutdown:
            result = close()
            if inspect.isawaitable(result):
                await result

    return Starlette(routes=routes, lifespan=lifespan)
