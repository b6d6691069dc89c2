"""Shared fixtures: a real clickhouse-server for the session, and stores on both backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.clickhouse_cluster import cluster  # noqa: F401 - shared fixture
from tests.support.clickhouse_server import ClickHouseServer
from tests.support.sidecar_fixtures import redirect, sink, stack  # noqa: F401 - shared fixtures
from tests.support.store_urls import fresh_store_url
from tracestore.migrate import migrate
from tracestore.store import Store, open_store

ARTIFACTS = Path(os.environ.get("SIDETRACE_ARTIFACTS", ROOT / "artifacts"))


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[ClickHouseServer]:
    """Debian's clickhouse-server, started once per test session on free ports."""
    server = ClickHouseServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB lets a process open one path only: tests share it, one database each."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(params=["native", "chdb"])
def store_url(request: pytest.FixtureRequest, clickhouse_server, chdb_path: Path) -> str:
    """A migrated, empty store on each backend: the real server and embedded chDB."""
    url = fresh_store_url(request.param, clickhouse_server, chdb_path)
    migrate(open_store(url))
    return url


@pytest.fixture
def store(store_url: str) -> Store:
    return open_store(store_url)


# Markers by what a test needs, so `scripts/test.sh -m unit` runs the fast ones alone.
STORE_FIXTURES = frozenset({"clickhouse_server", "chdb_path", "store_url", "store"})
PROCESS_WORDS = (
    "subprocess",
    "Popen",
    "sidecar_harness",
    "sidecar_process",
    "dashboard_process",
    "demo_processes",
    "zookeeper",
    "uvicorn",
    "threaded_server",
    "libfuzzer",
)
NEED_MARKERS = ("clickhouse", "processes", "browser", "slow")
_module_starts_processes: dict[str, bool] = {}


def starts_processes(item: pytest.Item) -> bool:
    """Whether the test's module starts servers or processes (read once per module)."""
    path = str(item.path)
    if path not in _module_starts_processes:
        source = item.path.read_text(encoding="utf-8")
        _module_starts_processes[path] = any(word in source for word in PROCESS_WORDS)
    return _module_starts_processes[path]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if STORE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.clickhouse)
        if starts_processes(item):
            item.add_marker(pytest.mark.processes)
        if not any(item.get_closest_marker(name) for name in NEED_MARKERS):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one module's browser tests."""
    from tests.support.browser_site import chromium

    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    """A page that fails the test on uncaught errors or CSP violations."""
    from tests.support.browser_site import strict_page

    with strict_page(browser) as pg:
        yield pg
