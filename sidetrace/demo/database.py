"""The database behind inventory, seen only through client spans inventory records.

There is no real PostgreSQL in the demo: inventory records the client span an
instrumented driver would (OpenTelemetry SDK, exported over OTLP/gRPC straight
to the collector), as a child of the context its sidecar handed it. Analytics
turns ``db.system`` into a virtual node of the service map.
"""

from __future__ import annotations

import asyncio
import random

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.requests import Request

from sidetrace.demo.app_tracing import inbound_context
from sidetrace.demo.behaviour import Behaviour, Latency
from sidetrace.demo.topology import DATABASE

QUERY_LATENCY = Latency(median_ms=2.0, sigma=0.9)


class DatabaseSpans:
    """Simulated queries, each recorded as an OpenTelemetry client span."""

    def __init__(self, tracer: Tracer, behaviour: Behaviour, rng: random.Random) -> None:
        self.tracer = tracer
        self.behaviour = behaviour
        self.rng = rng

    async def query(self, request: Request, statement: str) -> bool:
        """Run (pretend) one statement; False when the database failed it."""
        parent = inbound_context(request.headers)
        operation = statement.split()[0]
        attributes = {
            "db.system": DATABASE["db.system"],
            "db.name": DATABASE["db.name"],  # older semantic conventions, still the common one
            "db.namespace": DATABASE["db.name"],
            "db.operation.name": operation,
            "db.query.text": statement,
            "server.address": "127.0.0.1",
            "server.port": DATABASE["server.port"],
        }
        with self.tracer.start_as_current_span(
            f"{operation} stock", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            await asyncio.sleep(QUERY_LATENCY.sample_ms(self.rng) / 1000.0)
            if self.behaviour.fails(self.rng):
                span.set_status(Status(StatusCode.ERROR, "deadlock detected"))
                span.set_attribute("error.type", "40P01")
                return False
        return True
