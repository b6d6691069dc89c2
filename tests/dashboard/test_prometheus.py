"""Every admin ``/metrics`` passes Debian's ``promtool check metrics``, and a real Prometheus
server scrapes a collector and a sidecar and answers the request rate from its query API."""

from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.stats import Stats
from runtime.loopback_ports import free_port
from tests.support.collector_helpers import running_collector
from tests.support.polling import eventually
from tests.support.promtool import PROMTOOL, promtool_check
from tests.support.sidecar_harness import build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    not (PROMTOOL and PROMETHEUS), reason="Debian's prometheus package (scripts/test.sh)"
)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


@pytest.fixture(scope="module")
def native_store(clickhouse_server):
    from tests.support.collector_helpers import fresh_native_url
    from tracestore.migrate import migrate
    from tracestore.store import open_store

    store = open_store(fresh_native_url(clickhouse_server))
    migrate(store)
    return store


@pytest.fixture(scope="module")
def system(native_store, tmp_path_factory) -> Iterator[tuple[object, SidecarProcess]]:
    """A collector (its admin port) and a sidecar exporting to it, in front of an app."""
    spool = tmp_path_factory.mktemp("spool")
    with running_collector(native_store, spool) as collector:
        app_port = free_port()
        sidecar = SidecarProcess(
            app_port,
            "--collector", f"127.0.0.1:{collector.config.http_port}",
            "--service-name", "svc-prom",
            "--route", "/users/{uid}",
        )  # fmt: skip
        app = ThreadedUvicorn(build_app(f"http://127.0.0.1:{sidecar.outbound}"), port=app_port)
        app.start()
        sidecar.start()
        try:
            yield collector, sidecar
        finally:
            sidecar.stop()
            app.stop()


def test_collector_values_are_exact():
    stats = Stats()
    stats.add("received_spans_total", 1_234_567)
    stats.add("refused_requests_total", 3, "unauthenticated")
    stats.observe_insert(0.02)
    text = stats.render()
    promtool_check(text)
    values = samples(text)
    assert values[("sidetrace_collector_received_spans_total", frozenset())] == 1_234_567
    key = ("sidetrace_collector_refused_requests_total", frozenset({("reason", "unauthenticated")}))
    assert values[key] == 3
    assert "# HELP sidetrace_collector_received_spans_total " in text
    assert "# TYPE sidetrace_collector_insert_duration_seconds histogram" in text


def test_promtool_clean_on_every_admin_port(system):
    collector, sidecar = system
    for i in range(5):
        assert _get(sidecar.inbound, f"/users/{i}") == 200
    route = {"http_route": "/users/{uid}"}  # counted by the telemetry thread, soon after
    eventually(lambda: sidecar.metric("http_server_request_duration_seconds_count", **route) >= 5)
    status, text = sidecar.get("/metrics")
    assert status == 200
    promtool_check(text)
    assert "# HELP sidetrace_sidecar_connections_total " in text
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    response = httpx.get(f"http://127.0.0.1:{collector.config.admin_port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    promtool_check(response.text)


def _prometheus_config(path: Path, targets: list[str]) -> None:
    jobs = "\n".join(
        f"  - job_name: {name}\n    static_configs:\n      - targets: ['{target}']"
        for name, target in zip(("collector", "sidecar"), targets, strict=True)
    )
    path.write_text(
        f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}\n"
    )


def test_prometheus_scrapes_collector_and_sidecar(system, tmp_path):
    collector, sidecar = system
    config = tmp_path / "prometheus.yml"
    _prometheus_config(
        config, [f"127.0.0.1:{collector.config.admin_port}", f"127.0.0.1:{sidecar.admin}"]
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(expr: str) -> list[dict]:
        try:
            body = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return []
        return body.get("data", {}).get("result", []) if body.get("status") == "success" else []

    try:
        up = eventually(lambda: (r := query("up == 1")) and len(r) == 2 and r, timeout=120)
        assert {r["metric"]["job"] for r in up} == {"collector", "sidecar"}

        def rate() -> list[dict]:
            for i in range(10):
                _get(sidecar.inbound, f"/users/{i}")
            series = 'http_server_request_duration_seconds_count{http_route="/users/{uid}"}'
            return query(f"sum(rate({series}[15s])) > 0")

        scraped = eventually(rate, 120, 1, what="a request rate in Prometheus")
        assert float(scraped[0]["value"][1]) > 0
        received = eventually(
            lambda: (r := query("sidetrace_collector_received_spans_total > 0")) and r, timeout=120
        )
        assert float(received[0]["value"][1]) > 0
    finally:
        server.terminate()
        server.wait(30)
        log.close()
