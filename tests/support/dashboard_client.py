"""The dashboard app on a given store: in-process (TestClient) or served live by uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from dashboard.app import create_app
from dashboard.context import DashboardContext
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
