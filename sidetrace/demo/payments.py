"""The gRPC service of the sample system, ``payments``, and the client ``orders`` uses.

Messages are ``google.protobuf.Struct`` so no generated code is needed; the
calls are ordinary unary gRPC over HTTP/2, through the sidecars like any other.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc
from google.protobuf import json_format, struct_pb2
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.requests import Request

from sidetrace.demo.app_tracing import inbound_context, outbound_headers
from sidetrace.demo.http_apps import CONTEXT_HEADERS, UpstreamError
from sidetrace.demo.topology import AppConfig

SERVICE = "demo.payments.v1.Payments"
CHARGE = f"/{SERVICE}/Charge"


def _struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


class PaymentsServicer:
    """Charges a card after a lognormal delay, slower during the scheduled incident."""

    def __init__(self, config: AppConfig) -> None:
        self.behaviour = config.behaviour()
        self.rng = random.Random()

    async def charge(
        self, request: struct_pb2.Struct, context: grpc.aio.ServicerContext
    ) -> struct_pb2.Struct:
        await asyncio.sleep(self.behaviour.delay_s(self.rng, time.time()))
        if self.behaviour.fails(self.rng):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "payment processor unavailable")
        amount = json_format.MessageToDict(request).get("amount", 0)
        return _struct({"status": "captured", "amount": amount, "id": self.rng.randrange(10**9)})


async def serve(config: AppConfig) -> None:
    """Run the payments gRPC server on 127.0.0.1 until cancelled."""
    servicer = PaymentsServicer(config)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Charge": grpc.unary_unary_rpc_method_handler(
                servicer.charge,
                request_deserializer=struct_pb2.Struct.FromString,
                response_serializer=struct_pb2.Struct.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{config.port}")
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(grace=2)


class PaymentsClient:
    """``orders``' side: unary Charge calls through its own sidecar.

    grpcio reaches a proxy only by HTTP ``CONNECT`` (the ``grpc.http_proxy``
    channel option), so the call goes to the orders sidecar's outbound port, which
    opens the tunnel to the payments sidecar. Each call records its own client
    span (see ``sidetrace.demo.app_tracing`` for why).
    """

    def __init__(self, proxy_port: int, payments_port: int, tracer: Tracer) -> None:
        self.proxy_port = proxy_port
        self.payments_port = payments_port
        self.tracer = tracer
        self.channel: grpc.aio.Channel | None = None

    def _charge_call(self) -> grpc.aio.UnaryUnaryMultiCallable:
        """The channel binds to the running event loop, so it is made on first use."""
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(
                f"127.0.0.1:{self.payments_port}",
                options=[("grpc.http_proxy", f"http://127.0.0.1:{self.proxy_port}")],
            )
        return self.channel.unary_unary(
            CHARGE,
            request_serializer=struct_pb2.Struct.SerializeToString,
            response_deserializer=struct_pb2.Struct.FromString,
        )

    async def charge(self, request: Request, amount: int) -> dict:
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": SERVICE,
            "rpc.method": "Charge",
            "server.address": "127.0.0.1",
            "server.port": self.payments_port,
        }
        with self.tracer.start_as_current_span(
            f"{SERVICE}/Charge",
            context=inbound_context(request.headers),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            metadata = {h: request.headers[h] for h in CONTEXT_HEADERS if h in request.headers}
            metadata.update(outbound_headers())
            try:
                reply = await self._charge_call()(
                    _struct({"amount": amount, "currency": "EUR"}),
                    metadata=tuple(metadata.items()),
                    timeout=5.0,
                )
            except grpc.aio.AioRpcError as exc:
                span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
                span.set_status(Status(StatusCode.ERROR, exc.code().name))
                raise UpstreamError(f"payments: {exc.code().name}") from exc
            span.set_attribute("rpc.grpc.status_code", 0)
        return {"payment": json_format.MessageToDict(reply)}

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
