"""gRPC through the sidecar: all four call types, metadata, trailers, deadlines and spans."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.support.sidecar_harness import OtlpSink, attributes
from tests.support.sidecar_process import SidecarProcess

TID = "7" * 32
SID = "8" * 16


class EchoService(grpc.GenericRpcHandler):
    """A raw-bytes gRPC app: every call type, plus failures and a slow method."""

    def service(self, details):
        method = details.method.rsplit("/", 1)[1]
        if method == "Unary":
            return grpc.unary_unary_rpc_method_handler(self.unary)
        if method == "ServerStream":
            return grpc.unary_stream_rpc_method_handler(self.server_stream)
        if method == "ClientStream":
            return grpc.stream_unary_rpc_method_handler(self.client_stream)
        if method == "Bidi":
            return grpc.stream_stream_rpc_method_handler(self.bidi)
        if method == "Fail":
            return grpc.unary_unary_rpc_method_handler(self.fail)
        if method == "Slow":
            return grpc.unary_unary_rpc_method_handler(self.slow)
        return None

    def unary(self, request: bytes, context) -> bytes:
        seen = dict(context.invocation_metadata())
        context.send_initial_metadata([("x-initial", "i1")])
        context.set_trailing_metadata(
            [
                ("x-trailer", "t1"),
                ("seen-custom", seen.get("x-custom", "")),
                ("seen-traceparent", seen.get("traceparent", "")),
                ("deadline-left", f"{context.time_remaining():.1f}"),
            ]
        )
        return request[::-1]

    def server_stream(self, request: bytes, context) -> Iterator[bytes]:
        for i in range(5):
            yield request + bytes([48 + i])

    def client_stream(self, requests: Iterator[bytes], context) -> bytes:
        return b"|".join(requests)

    def bidi(self, requests: Iterator[bytes], context) -> Iterator[bytes]:
        for request in requests:
            yield request.upper()

    def fail(self, request: bytes, context) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def slow(self, request: bytes, context) -> bytes:
        time.sleep(2)
        return request


@pytest.fixture(scope="module")
def grpc_stack() -> Iterator[tuple[grpc.Channel, OtlpSink]]:
    server = grpc.server(ThreadPoolExecutor(8), handlers=[EchoService()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sink = OtlpSink().start()
    sidecar = SidecarProcess(
        port, "--grpc-ports", str(port), "--collector", f"127.0.0.1:{sink.port}",
        "--service-name", "grpc-svc",
    ).start()  # fmt: skip
    channel = grpc.insecure_channel(f"127.0.0.1:{sidecar.inbound}")
    yield channel, sink
    channel.close()
    sidecar.stop()
    sink.stop()
    server.stop(0)


def _rpc_span(sink: OtlpSink, method: str):
    spans = sink.wait_for(lambda s: any(attributes(sp).get("rpc.method") == method for _, sp in s))
    return next(sp for _, sp in spans if attributes(sp).get("rpc.method") == method)


def test_unary_metadata_trailers_deadline_and_context(grpc_stack) -> None:
    channel, sink = grpc_stack
    call = channel.unary_unary("/test.Echo/Unary")
    reply, info = call.with_call(
        b"abc",
        timeout=30,
        metadata=[("x-custom", "v1"), ("traceparent", f"00-{TID}-{SID}-01")],
    )
    assert reply == b"cba"
    assert ("x-initial", "i1") in info.initial_metadata()
    trailers = dict(info.trailing_metadata())
    assert trailers["x-trailer"] == "t1"
    assert trailers["seen-custom"] == "v1"
    assert 0 < float(trailers["deadline-left"]) <= 30  # the caller's deadline went through
    app_parent = trailers["seen-traceparent"].split("-")[2]
    span = _rpc_span(sink, "Unary")
    assert span.trace_id.hex() == TID and span.parent_span_id.hex() == SID
    assert span.span_id.hex() == app_parent
    assert span.kind == 2
    attrs = attributes(span)
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == "test.Echo"
    assert attrs["rpc.grpc.status_code"] == 0


def test_streaming_calls_pass_through(grpc_stack) -> None:
    channel, _ = grpc_stack
    assert list(channel.unary_stream("/test.Echo/ServerStream")(b"m", timeout=10)) == [
        b"m0", b"m1", b"m2", b"m3", b"m4",
    ]  # fmt: skip
    joined = channel.stream_unary("/test.Echo/ClientStream")(iter([b"a", b"b", b"c"]), timeout=10)
    assert joined == b"a|b|c"
    replies = channel.stream_stream("/test.Echo/Bidi")(iter([b"x", b"y"]), timeout=10)
    assert list(replies) == [b"X", b"Y"]


def test_error_status_and_deadline_map_to_span_status(grpc_stack) -> None:
    channel, sink = grpc_stack
    with pytest.raises(grpc.RpcError) as failed:
        channel.unary_unary("/test.Echo/Fail")(b"", timeout=10)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no such thing"
    with pytest.raises(grpc.RpcError) as late:
        channel.unary_unary("/test.Echo/Slow")(b"", timeout=0.5)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    span = _rpc_span(sink, "Fail")
    assert attributes(span)["rpc.grpc.status_code"] == 5
    # RPC conventions: NOT_FOUND is no server error
    assert span.status.code == 0 and "error.type" not in attributes(span)
    late = _rpc_span(sink, "Slow")  # whatever status the sidecar saw, by the same rule
    server_error = attributes(late)["rpc.grpc.status_code"] in (2, 4, 12, 13, 14, 15)
    assert late.status.code == (2 if server_error else 0)
    with pytest.raises(grpc.RpcError) as missing:
        channel.unary_unary("/test.Echo/Missing")(b"", timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
