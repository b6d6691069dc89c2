"""A dashboard app on a given store, driven in-process through Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from dashboard.app import create_app
from dashboard.context import DashboardContext
from sidetrace.store import Store


@contextmanager
def dashboard_client(store: Store, **settings: Any) -> Iterator[TestClient]:
    """The full app (lifespan included) with ``settings`` passed to DashboardContext."""
    ctx = DashboardContext(store=store, **settings)
    with TestClient(create_app(ctx), follow_redirects=False) as client:
        yield client
