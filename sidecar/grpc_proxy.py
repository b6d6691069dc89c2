"""gRPC through the sidecar: a grpcio server with one generic handler that forwards raw bytes.

Connections the listener recognises as gRPC (declared port or HTTP/2 preface)
are piped to this bridge on a loopback port. The bridge finds the original
destination by the pipe's local port (``register``), then forwards each call
as a stream-stream call with identity (de)serialisers — the wire framing is the
same for all four call types, so unary and streaming calls pass unchanged and
messages are never re-serialised. Metadata, trailers, status and the remaining
deadline travel across; each call records one span.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from sidecar.propagation import TRACE_HEADERS, Propagator
from sidecar.red_metrics import ProxyCounters
from sidecar.telemetry import Telemetry
from sidecar.telemetry_record import GRPC, SERVER, Record

Address = tuple[str, int]
_RESERVED = ("grpc-", ":")
_DROP = frozenset(("content-type", "te", "user-agent", "host"))
_UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
_NO_DEADLINE = 1e8  # grpcio reports an enormous remaining time when there is no deadline


def _forwardable(metadata) -> list[tuple[str, str | bytes]]:
    return [(k, v) for k, v in (metadata or ()) if not k.startswith(_RESERVED) and k not in _DROP]


def _peer_port(peer: str) -> int:
    try:
        return int(peer.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return -1


class GrpcBridge(grpc.GenericRpcHandler):
    """The loopback gRPC server every intercepted gRPC connection is piped into."""

    def __init__(
        self,
        propagator: Propagator,
        telemetry: Telemetry,
        counters: ProxyCounters,
        max_workers: int = 64,
    ):
        self._propagator = propagator
        self._telemetry = telemetry
        self._counters = counters
        self._routes: dict[int, tuple[int, Address | None, Address]] = {}
        self._channels: dict[Address, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sidecar-grpc"),
            handlers=[self],
            options=_UNLIMITED,
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float) -> None:
        self._server.stop(grace).wait(grace + 1)
        for channel in self._channels.values():
            channel.close()

    def register(self, local_port: int, kind: int, target: Address | None, client: Address) -> None:
        self._routes[local_port] = (kind, target, client)

    def unregister(self, local_port: int) -> None:
        self._routes.pop(local_port, None)

    def _channel(self, target: Address) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(target)
            if channel is None:
                channel = grpc.insecure_channel(f"{target[0]}:{target[1]}", options=_UNLIMITED)
                self._channels[target] = channel
            return channel

    def service(self, handler_call_details):  # grpc.GenericRpcHandler
        method = handler_call_details.method

        def forward(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            return self._forward(method, requests, context)

        return grpc.stream_stream_rpc_method_handler(forward)

    def _forward(
        self, method: str, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        route = self._routes.get(_peer_port(context.peer()))
        if route is None or route[1] is None:
            self._counters.upstream_errors_total += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "sidecar: no destination for this call")
        kind, target, client = route  # type: ignore[misc]
        incoming = context.invocation_metadata()
        trace_headers: dict[str, list[str]] = {}
        user_agent = ""
        for key, value in incoming:
            if key in TRACE_HEADERS:
                trace_headers.setdefault(key, []).append(str(value))
            elif key == "user-agent":
                user_agent = str(value)
        span = self._propagator.start(trace_headers)
        replaced = self._propagator.replaced()
        metadata = [(k, v) for k, v in _forwardable(incoming) if k not in replaced]
        metadata += self._propagator.header_pairs(span)
        remaining = context.time_remaining()
        timeout = remaining if remaining is not None and remaining < _NO_DEADLINE else None
        start_ns = time.time_ns()
        call = self._channel(target).stream_stream(method)(  # type: ignore[arg-type]
            requests, timeout=timeout, metadata=metadata
        )
        context.add_callback(call.cancel)
        code, details, trailing = grpc.StatusCode.OK, "", None
        try:
            context.send_initial_metadata(_forwardable(call.initial_metadata()))
            yield from call
            trailing = call.trailing_metadata()
        except grpc.RpcError as exc:
            code = exc.code()
            details = exc.details()
            trailing = exc.trailing_metadata()
        except GeneratorExit:  # the caller went away mid-stream
            code = grpc.StatusCode.CANCELLED
            call.cancel()
            raise
        finally:
            self._record(span, kind, method, code, target, client, user_agent, start_ns)
        context.set_trailing_metadata(_forwardable(trailing))
        if code != grpc.StatusCode.OK:
            context.set_code(code)
            context.set_details(details or "")

    def _record(self, span, kind, method, code, target, client, user_agent, start_ns) -> None:
        code = code or grpc.StatusCode.UNKNOWN
        self._telemetry.submit(
            Record(
                GRPC,
                kind,
                span.trace_id if span.sampled else "",
                span.span_id,
                span.parent_id,
                kind == SERVER,
                start_ns,
                time.time_ns(),
                method,
                "",
                code.value[0],
                target[0],
                target[1],
                (client if kind == SERVER else target)[0],
                (client if kind == SERVER else target)[1],
                "2",
                user_agent,
                "",  # the status code says whether it failed: span_fields, per span kind
                "" if kind == SERVER else f"{target[0]}:{target[1]}",
                0,
                0,
            )
        )
