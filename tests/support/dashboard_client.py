"""The dashboard on a given store: in-process (TestClient), served live by uvicorn on a thread,
or as its own ``sidetrace dashboard`` process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from dashboard.app import create_app
from dashboard.context import DashboardContext
from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.polling import alive, eventually, http_ok
from tests.support.threaded_server import ThreadedUvicorn
from tracestore.store import Store


@contextmanager
def dashboard_client(store: Store, **settings: Any) -> Iterator[TestClient]:
    """The full app (lifespan included) with ``settings`` passed to DashboardContext."""
    ctx = DashboardContext(store=store, **settings)
    with TestClient(create_app(ctx), follow_redirects=False) as client:
        yield client


@contextmanager
def live_dashboard(store: Store, **settings: Any) -> Iterator[str]:
    """The app served by uvicorn in a thread of this process (so chDB stays in-process)."""
    app = create_app(DashboardContext(store=store, **settings))
    with ThreadedUvicorn(app, log_level="error", lifespan="auto") as server:
        yield server.url


@contextmanager
def dashboard_process(store_url: str, *flags: str) -> Iterator[str]:
    """``sidetrace dashboard --clickhouse store_url FLAGS`` on a free port; yields its base URL
    once ``/healthz`` answers, and stops the process on the way out."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sidetrace", "dashboard", "--clickhouse", store_url,
               "--port", str(port), "--host", "127.0.0.1", *flags]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        eventually(
            lambda: alive(process, "sidetrace dashboard") or http_ok(base + "/healthz"),
            120,
            what="the dashboard process answers",
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
