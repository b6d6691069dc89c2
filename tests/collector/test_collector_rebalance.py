"""A connected OTLP client moves to a new collector replica after ``max_connection_age``.

Behind a Kubernetes Service each new connection may land on another pod, but a
gRPC client keeps its connection for ever unless the server ends it. A TCP
forwarder plays the Service here: it sends every new connection to the current
backend. The client is the OpenTelemetry SDK's OTLP/gRPC exporter.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from runtime.loopback_ports import free_port
from tests.support.collector_helpers import fresh_native_url, running_collector
from tests.support.polling import eventually
from tracestore.store import open_store


class Forwarder:
    """A TCP listener that pipes each new connection to ``self.backend`` (a port)."""

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self.connections: list[int] = []  # the backend of each accepted connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            backend = self.backend
            self.connections.append(backend)
            upstream = socket.create_connection(("127.0.0.1", backend))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    fwd = Forwarder(backend=free_port())
    yield fwd
    fwd.close()


def test_client_moves_to_a_new_replica_after_connection_age(
    clickhouse_server, tmp_path: Path, forwarder: Forwarder
) -> None:
    store = open_store(fresh_native_url(clickhouse_server))
    age = {"max_connection_age_s": 2.0, "max_connection_age_grace_s": 1.0}
    with (
        running_collector(store, tmp_path / "a", admin_port=None, http_port=None, **age) as a,
        running_collector(store, tmp_path / "b", admin_port=None, http_port=None, **age) as b,
    ):
        forwarder.backend = a.config.grpc_port
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{forwarder.port}", insecure=True)
        provider = TracerProvider(resource=Resource.create({"service.name": "rebalance"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        try:
            tracer.start_span("first").end()
            assert a.stats.get("received_spans_total") == 1
            forwarder.backend = b.config.grpc_port  # a new replica behind the Service

            def moved() -> bool:
                if b.stats.get("received_spans_total"):
                    return True
                tracer.start_span("more").end()
                return False

            eventually(moved, 60, what="the client leaving the first collector")
        finally:
            provider.shutdown()
    assert forwarder.connections[:1] == [a.config.grpc_port]
    assert b.config.grpc_port in forwarder.connections
