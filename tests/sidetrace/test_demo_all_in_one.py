"""``sidetrace all-in-one``: point an OTLP exporter at it, read the trace back, stop, reopen."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from runtime.loopback_ports import free_port
from tests.support.demo_processes import all_in_one
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


def trace_services(dashboard: int, trace_id: str) -> set[str]:
    response = httpx.get(f"http://127.0.0.1:{dashboard}/api/traces/{trace_id}", timeout=10)
    if response.status_code != 200 or not response.json()["data"]:
        return set()
    trace = response.json()["data"][0]
    return {p["serviceName"] for p in trace["processes"].values()}


def test_otlp_exporter_to_all_in_one_then_reopen_the_same_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with all_in_one(data) as (process, ports):
        provider = TracerProvider(resource=Resource.create({"service.name": "my-app"}))
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['--grpc-port']}", insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER) as root,
            tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT),
        ):
            pass
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")

        eventually(
            lambda: trace_services(ports["--port"], trace_id) == {"my-app"},
            60,
            0.5,
            what="the trace readable",
        )

        # chDB allows one process per folder: a second one is refused, by name.
        second = subprocess.run(
            [sys.executable, "-m", "sidetrace", "demo", "--reset", "--data", str(data),
             "--port", str(free_port()), "--grpc-port", str(free_port()),
             "--http-port", str(free_port()), "--admin-port", str(free_port())],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"{data} is in use by another sidetrace process" in second.stderr
        assert trace_services(ports["--port"], trace_id) == {"my-app"}, "--reset must not run"

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert f"dashboard  http://127.0.0.1:{ports['--port']}" in output
        assert "The data lives in" in output

    # The data survives: a new all-in-one on the same folder serves the same trace.
    with all_in_one(data) as (process, ports):
        assert trace_services(ports["--port"], trace_id) == {"my-app"}
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
        assert process.returncode == 0
