"""schemathesis against /api/v1/openapi.json on a live server: no request gets a 5xx."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import trace_generator as gen
from tests.support.dashboard_client import live_dashboard
from tracestore.migrate import migrate
from tracestore.store import open_store

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def dashboard_url(clickhouse_server) -> Iterator[str]:
    """A live dashboard on the native server (the query paths run on chDB in the other tests)."""
    store = open_store(clickhouse_server.url(database=f"openapi_{uuid.uuid4().hex[:12]}"))
    migrate(store)
    ids = gen.Ids(31)
    gen.insert(store, gen.clock_skew(ids) + gen.missing_parent(ids) + gen.wide(ids, 5))
    with live_dashboard(store) as url:
        yield url


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(dashboard_url, tmp_path, artifacts):
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{dashboard_url}/api/v1/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--no-color",
            "--suppress-health-check",
            "all",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=420,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output = run.stdout + run.stderr
    (artifacts / "schemathesis.txt").write_text(output)
    assert run.returncode == 0, output[-6000:]
    passed = re.search(r"\d+ generated, (\d+) passed", output)
    assert passed and int(passed.group(1)) >= 50, output[-3000:]  # it really generated requests
