"""schemathesis against /api/v1/openapi.json on a live server: no request gets a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from dashboard.app import create_app
from dashboard.context import DashboardContext
from sidetrace.local_server import free_port
from tests import trace_generator as gen

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def live_dashboard(store) -> Iterator[str]:
    """The dashboard served by uvicorn in a thread of this process (chDB stays in-process)."""
    ids = gen.Ids(31)
    gen.insert(store, gen.clock_skew(ids) + gen.missing_parent(ids) + gen.wide(ids, 5))
    port = free_port()
    config = uvicorn.Config(
        create_app(DashboardContext(store=store)), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=15)


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(live_dashboard, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    run = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{live_dashboard}/api/v1/openapi.json",
            "--checks", "not_a_server_error", "--max-examples", "40", "--seed", "1",
            "--no-color", "--suppress-health-check", "all",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "not_a_server_error" in output
