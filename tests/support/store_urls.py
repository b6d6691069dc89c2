"""Fresh databases for tests: one counter for the whole session, so a database name is never
handed out twice (the fixtures and the tests that start their own processes share it)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from tests.support.clickhouse_server import ClickHouseServer

_database_numbers = itertools.count()


def fresh_store_url(kind: str, server: ClickHouseServer, chdb_path: Path) -> str:
    """A store URL with nothing in it yet: a new database on the server or in chDB."""
    database = f"t{os.getpid()}_{next(_database_numbers)}"
    if kind == "native":
        return server.url(database=database)
    return f"chdb:{chdb_path}?database={database}"
