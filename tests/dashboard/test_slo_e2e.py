"""End to end: a real app behind the real sidecar and collector; the alerter pages.

The app's latency is switched fast -> slow -> fast. Spans flow app <- sidecar ->
collector -> ClickHouse; ``sidetrace alerter`` runs with the test-only time
scale (60: the 1 h / 5 min page windows become 60 s / 5 s). The page alert goes
pending, fires and resolves; a real HTTP receiver gets exactly the Alertmanager
payloads (the first answered with 500, so it is retried); the ticket alert,
silenced through the dashboard API, fires but is never delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dashboard.alert_payloads import rfc3339
from dashboard.alert_rules import fingerprint
from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.polling import eventually, http_ok
from tests.support.threaded_server import ThreadedUvicorn
from tests.support.webhook_receiver import RecordingReceiver
from tracestore.migrate import migrate
from tracestore.store import Store, open_store

SCALE = 60
EXTERNAL = "http://dashboard.test:16686"
EXAMPLE_LINK = re.compile(re.escape(EXTERNAL) + r"/trace/[0-9a-f]{32}$")

SLO_FILE = """\
slos:
  - name: payments-latency
    service: payments
    span_kind: server
    threshold: 200ms
    target: 99
    alerts:
      - severity: page
        for: 3m
        keep_firing_for: 3m
        receivers: [hook]
      - severity: ticket
        receivers: [hook]
receivers:
  - name: hook
    url: {url}
"""


class App:
    """The service under test: /pay answers after ``delay`` seconds, switched by the test."""

    def __init__(self) -> None:
        self.delay = 0.0

        async def pay(request: object) -> PlainTextResponse:
            await asyncio.sleep(self.delay)
            return PlainTextResponse("paid")

        self.server = ThreadedUvicorn(Starlette(routes=[Route("/pay", pay)])).start()
        self.port = self.server.port

    def stop(self) -> None:
        self.server.stop()


class Load:
    """Four clients calling through the sidecar, about 20 requests a second when fast."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop_event.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(self.url)
                self.stop_event.wait(0.2)

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(15)


class Processes:
    """Subprocesses of this test, stopped (by their own handles) at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        self.running.append(
            subprocess.Popen(
                [sys.executable, "-m", "sidetrace", *args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        )

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


def events(store: Store, severity: str) -> list[tuple]:
    return [
        tuple(row)
        for row in store.query(
            "SELECT from_state, to_state, silenced, starts_at_ms, ends_at_ms, at_ms "
            "FROM alert_events WHERE severity = %(s)s ORDER BY at_ms",
            {"s": severity},
        )
    ]


@pytest.mark.slow
def test_page_alert_fires_and_resolves_through_the_real_pipeline(
    clickhouse_server, processes: Processes, tmp_path: Path
) -> None:
    url = clickhouse_server.url(database=f"slo_e2e_{os.getpid()}")
    store = open_store(url)
    migrate(store)
    hook = RecordingReceiver(statuses=[500])  # the first delivery fails and must be retried
    app = App()
    load = None
    try:
        http_port, admin_port = free_port(), free_port()
        processes.start(
            "collector", "collector", "--clickhouse", url, "--grpc-port", str(free_port()),
            "--http-port", str(http_port), "--admin-port", str(admin_port),
            "--spool-dir", str(tmp_path / "spool"), "--batch-seconds", "0.2",
        )  # fmt: skip
        eventually(
            lambda: http_ok(f"http://127.0.0.1:{admin_port}/readyz"), what="the collector ready"
        )
        inbound, sidecar_admin = free_port(), free_port()
        processes.start(
            "sidecar", "sidecar", "--app-port", str(app.port), "--inbound-port", str(inbound),
            "--outbound-port", str(free_port()), "--admin-port", str(sidecar_admin),
            "--collector", f"127.0.0.1:{http_port}", "--service-name", "payments",
        )  # fmt: skip
        eventually(
            lambda: http_ok(f"http://127.0.0.1:{sidecar_admin}/readyz"), what="the sidecar ready"
        )
        load = Load(f"http://127.0.0.1:{inbound}/pay")
        eventually(
            lambda: store.query("SELECT count() FROM spans WHERE service_name = 'payments'")[0][0],
            60,
            0.5,
            what="the first spans from the sidecar",
        )

        slo_file = tmp_path / "slo.yaml"
        slo_file.write_text(SLO_FILE.format(url=hook.url()))
        processes.start(
            "alerter", "alerter", "--clickhouse", url, "--slo", str(slo_file),
            "--interval", "1", "--time-scale", str(SCALE), "--external-url", EXTERNAL,
        )  # fmt: skip

        # the ticket alert is silenced through the dashboard's API (another process)
        from dashboard.app import create_app
        from dashboard.context import DashboardContext

        with TestClient(create_app(DashboardContext(store=store))) as dashboard:
            created = dashboard.post(
                "/api/v1/silences",
                json={"matchers": 'alertname="payments-latency", severity="ticket"',
                      "duration": "1h", "createdBy": "e2e", "comment": "tickets are noise here"},
            )  # fmt: skip
            assert created.status_code == 201

        time.sleep(8)  # fast traffic: nothing happens
        assert events(store, "page") == []

        app.delay = 0.3  # slow: every request breaks the 200 ms objective
        eventually(lambda: ("pending", "firing", 0) in [e[:3] for e in events(store, "page")],
                   90, 0.5, what="the page alert to fire")  # fmt: skip
        assert [e[:2] for e in events(store, "page")] == [
            ("inactive", "pending"),
            ("pending", "firing"),
        ]

        app.delay = 0.0  # recovered
        eventually(lambda: any(e[1] == "resolved" for e in events(store, "page")),
                   150, 0.5, what="the page alert to resolve")  # fmt: skip
        page = events(store, "page")
        assert [e[:2] for e in page] == [
            ("inactive", "pending"),
            ("pending", "firing"),
            ("firing", "resolved"),
        ]
        ticket = events(store, "ticket")
        assert ("inactive", "firing", 1) in [e[:3] for e in ticket]  # fired, silenced

        bodies = hook.wait_for(3, timeout=30)
        time.sleep(3)  # nothing more may come
        bodies = hook.bodies()
    finally:
        if load is not None:
            load.stop()
        app.stop()
        hook.close()

    labels = {
        "alertname": "payments-latency",
        "service": "payments",
        "severity": "page",
        "slo": "payments-latency",
    }
    fp = fingerprint(labels)
    ends_at_ms = page[2][4]
    starts_at_ms = page[1][5]  # startsAt is when it went firing, as Prometheus sends it
    annotations = {
        "description": "99% of payments requests should take at most 200ms over 12h; the "
        "budget burns faster than 14.4x over 1m and 5s or 6x over 6m and 30s.",
        "summary": "payments-latency: latency error budget burning too fast (page)",
    }

    def expected(status: str) -> dict:
        return {
            "version": "4",
            "groupKey": '{}:{alertname="payments-latency", severity="page"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "hook",
            "groupLabels": {"alertname": "payments-latency", "severity": "page"},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": EXTERNAL,
            "alerts": [
                {
                    "status": status,
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": rfc3339(starts_at_ms / 1000),
                    "endsAt": rfc3339(ends_at_ms / 1000) if status == "resolved" else
                    "0001-01-01T00:00:00Z",
                    "generatorURL": f"{EXTERNAL}/alerts?fingerprint={fp}",
                    "fingerprint": fp,
                }
            ],
        }  # fmt: skip

    # Each firing notification links the slowest payments trace of the alert's window.
    slowest = [b["alerts"][0]["annotations"].get("example_slowest_trace") for b in bodies]
    assert slowest[0] and EXAMPLE_LINK.match(slowest[0]), bodies[0]
    trace_id = slowest[0].rsplit("/", 1)[1]
    services = store.query(
        "SELECT DISTINCT toString(service_name) FROM spans WHERE trace_id = %(t)s", {"t": trace_id}
    )
    assert ["payments"] in [list(r) for r in services]
    assert [normalise(b) for b in bodies] == [
        normalise(expected("firing")),  # answered 500
        normalise(expected("firing")),  # the retry
        normalise(expected("resolved")),
    ], json.dumps(bodies, indent=1)
    log = store.query(
        "SELECT status, attempt, outcome, http_status FROM alert_notifications ORDER BY at_ms"
    )
    assert [tuple(r) for r in log] == [
        ("firing", 1, "retry", 500),
        ("firing", 2, "sent", 200),
        ("resolved", 1, "sent", 200),
    ]


def normalise(body: dict) -> dict:
    """Times to whole milliseconds within 1 ms (history stores milliseconds); example trace
    links (checked apart: they name whatever trace was slowest) well formed, then set aside."""
    out = json.loads(json.dumps(body))
    for notes in [out["commonAnnotations"], *(a["annotations"] for a in out["alerts"])]:
        for key in ("example_slowest_trace", "example_error_trace"):
            link = notes.pop(key, None)
            assert link is None or EXAMPLE_LINK.match(link), link
    for alert in out["alerts"]:
        for key in ("startsAt", "endsAt"):
            value = alert[key]
            if value.startswith("0001"):
                continue
            alert[key] = value[:-5]  # drop the milliseconds: compared to the second
    return out
