"""The dashboard app on a given store: in-process (TestClient) or served live by uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from starlette.testclient import TestClient

from dashboard.app import create_app
from dashboard.context import DashboardContext
from runtime.loopback_ports import free_port
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
    port = free_port()
    app = create_app(DashboardContext(store=store, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("dashboard did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
