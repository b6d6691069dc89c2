"""The base install, as a new user gets it: no chDB, pyarrow or pandas, and it runs.

A fresh venv gets the sidetrace wheel of this checkout with its base
dependencies (versions from ``requirements.lock`` when present). From that venv
(never the checkout) a collector and a dashboard run against the test
ClickHouse server and a sidecar exports to the collector: one request's span is
stored and the dashboard serves it.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.footprint import EMBEDDED_ONLY, build_wheel, has_distribution, make_venv
from runtime.loopback_ports import free_port
from tests.support.collector_helpers import fresh_native_url
from tests.support.polling import eventually
from tests.support.sidecar_harness import build_app
from tests.support.threaded_server import ThreadedUvicorn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("base-install")
    wheel = build_wheel(work / "wheel")
    make_venv(work / "venv", "base", wheel)
    return work / "venv"


@pytest.fixture
def start(base_venv: Path, tmp_path: Path) -> Iterator:
    """Start ``sidetrace ARGS`` from the base venv, outside the checkout."""
    processes: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDETRACE_", "PYTHON"))}

    def run(*args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{args[0]}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [str(base_venv / "bin" / "sidetrace"), *args],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except OSError:
        return 0, b""


def test_slim_sidecar_install_runs_the_sidecar(tmp_path: Path) -> None:
    """The sidecar image's set (deploy/sidecar-requirements.in) is all the sidecar imports."""
    venv = tmp_path / "sidecar"
    make_venv(venv, "sidecar", build_wheel(tmp_path / "wheel"))
    assert not has_distribution(venv, "numpy") and not has_distribution(venv, "clickhouse_driver")
    for command in ("sidecar", "iptables-init"):  # what injected pods run from this image
        shown = subprocess.run(
            [str(venv / "bin" / "sidetrace"), command, "--help"], capture_output=True, cwd=tmp_path
        )
        assert shown.returncode == 0, shown.stderr
    admin = free_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "sidetrace"), "sidecar", "--bind", "127.0.0.1",
         "--app-port", str(free_port()), "--inbound-port", str(free_port()),
         "--outbound-port", str(free_port()), "--admin-port", str(admin)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        eventually(
            lambda: process.poll() is not None or _get(f"http://127.0.0.1:{admin}/healthz")[0]
        )
        assert process.poll() is None, "the sidecar exited: a library is missing from the set"
        assert b"sidetrace_sidecar_" in _get(f"http://127.0.0.1:{admin}/metrics")[1]
    finally:
        process.terminate()
        process.wait(30)


def test_base_install_has_no_embedded_engine(base_venv: Path) -> None:
    assert [n for n in EMBEDDED_ONLY if has_distribution(base_venv, n)] == []
    assert not has_distribution(base_venv, "cryptography")  # only the webhook extra has it
    python = str(base_venv / "bin" / "python")
    probe = "import importlib.util as u; print(u.find_spec('chdb'), u.find_spec('pyarrow'))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=base_venv)
    assert out.stdout.strip() == "None None"


def test_base_install_runs_sidecar_collector_and_dashboard(
    start, clickhouse_server, tmp_path: Path
) -> None:
    url = fresh_native_url(clickhouse_server)
    http_port, admin, dashboard = free_port(), free_port(), free_port()
    start(
        "collector", "--clickhouse", url, "--grpc-port", str(free_port()),
        "--http-port", str(http_port), "--admin-port", str(admin),
        "--spool-dir", str(tmp_path / "spool"), "--batch-seconds", "0.2",
    )  # fmt: skip
    eventually(lambda: _get(f"http://127.0.0.1:{admin}/readyz")[0] == 200, timeout=120)
    start("dashboard", "--clickhouse", url, "--host", "127.0.0.1", "--port", str(dashboard))
    app = ThreadedUvicorn(build_app()).start()
    try:
        inbound, sidecar_admin = free_port(), free_port()
        start(
            "sidecar", "--app-port", str(app.port), "--bind", "127.0.0.1",
            "--inbound-port", str(inbound), "--outbound-port", str(free_port()),
            "--admin-port", str(sidecar_admin), "--collector", f"127.0.0.1:{http_port}",
            "--service-name", "packaged",
        )  # fmt: skip
        eventually(lambda: _get(f"http://127.0.0.1:{sidecar_admin}/healthz")[0] == 200)
        trace_id = uuid.uuid4().hex
        conn = http.client.HTTPConnection("127.0.0.1", inbound, timeout=10)
        conn.request("GET", "/", headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"})
        assert conn.getresponse().status == 200
        conn.close()
        trace_url = f"http://127.0.0.1:{dashboard}/api/traces/{trace_id}"

        def served() -> bool:
            status, body = _get(trace_url)
            return status == 200 and b"packaged" in body

        eventually(served, timeout=90)
    finally:
        app.stop()
