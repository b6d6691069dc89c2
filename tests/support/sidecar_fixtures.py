"""Fixtures the sidecar test modules share (registered in tests/conftest.py): an OTLP sink,
a sidecar in front of the harness app, and iptables REDIRECT of one client connection."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from runtime.loopback_ports import free_port
from tests.support.sidecar_harness import OtlpSink, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    sink = OtlpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def stack(sink: OtlpSink) -> Iterator[tuple[SidecarProcess, ThreadedUvicorn]]:
    app_port = free_port()
    sidecar = SidecarProcess(
        app_port,
        "--collector", f"127.0.0.1:{sink.port}",
        "--service-name", "svc-a",
        "--pod-name", "svc-a-pod-1",
        "--header-timeout", "1",
        "--connect-timeout", "1",
        "--max-header-bytes", "8192",
        "--route", "/users/{uid}",
    )  # fmt: skip
    app = ThreadedUvicorn(build_app(f"http://127.0.0.1:{sidecar.outbound}"), port=app_port)
    app.start()
    sidecar.start()
    yield sidecar, app
    sidecar.stop()
    app.stop()


@pytest.fixture
def redirect() -> Iterator:
    """Add nat OUTPUT REDIRECT rules matched on the client's source port; removed afterwards."""
    rules: list[list[str]] = []

    def add(client_port: int, dest_port: int, to_port: int) -> None:
        rule = ["-t", "nat", "-p", "tcp", "-d", "127.0.0.1", "--sport", str(client_port)]
        rule += ["--dport", str(dest_port), "-j", "REDIRECT", "--to-ports", str(to_port)]
        result = subprocess.run(["iptables", "-A", "OUTPUT", *rule], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"iptables unusable here: {result.stderr.decode().strip()}")
        rules.append(rule)

    yield add
    for rule in rules:
        subprocess.run(["iptables", "-D", "OUTPUT", *rule], check=False)
