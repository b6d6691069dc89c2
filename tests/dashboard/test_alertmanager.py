"""Alertmanager as a receiver: a real ``prometheus-alertmanager`` (Debian) behind TLS with a
private CA and basic auth gets an SLO incident through ``/api/v2/alerts``, sees it resolve,
and never gets an alert that a silence created through sidetrace's API covers."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dashboard.alert_delivery import Attempt, Dispatcher, Notifier
from dashboard.alert_rules import FIRING, RESOLVED, Alert, AlertState, step
from dashboard.alert_silences import SilenceStore
from runtime.loopback_ports import free_port
from sidecar.webhook_certs import make_certs
from slospec.slo_config import Receiver
from tests.support import ROOT
from tests.support import trace_generator as gen
from tests.support.dashboard_client import dashboard_client
from tests.support.polling import eventually
from tests.support.promtool import promtool_check
from tracestore.migrate import migrate
from tracestore.store import open_store

ALERTMANAGER = shutil.which("prometheus-alertmanager")
pytestmark = pytest.mark.skipif(not ALERTMANAGER, reason="Debian's prometheus-alertmanager")
EXTERNAL = "http://dashboard.test:16686"
USER, PASSWORD = "sidetrace", "correct horse"
# bcrypt of PASSWORD (Alertmanager's web config takes bcrypt hashes only)
PASSWORD_HASH = "$2b$10$4a1gWkJJCjuwK7784cOtVOOENaJn5lchi5SffCfBMsSw5xwFO7BRe"
AM_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: blackhole
"""


class RunningAlertmanager:
    def __init__(self, folder: Path) -> None:
        certs = make_certs(["localhost"], ("127.0.0.1",))
        self.ca = folder / "ca.pem"
        self.ca.write_bytes(certs.ca_pem)
        (folder / "cert.pem").write_bytes(certs.cert_pem)
        (folder / "key.pem").write_bytes(certs.key_pem)
        self.password_file = folder / "password"
        self.password_file.write_text(PASSWORD + "\n")
        web = folder / "web.yml"
        web.write_text(
            f"tls_server_config:\n  cert_file: {folder / 'cert.pem'}\n"
            f"  key_file: {folder / 'key.pem'}\n"
            f"basic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n"
        )
        (folder / "alertmanager.yml").write_text(AM_CONFIG)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = (folder / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(ALERTMANAGER),
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.config.file={web}",
                "--cluster.listen-address=",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        eventually(lambda: self._ready(), timeout=60)

    def _ready(self) -> bool:
        try:
            return self.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        trust = ssl.create_default_context(cafile=str(self.ca))
        return httpx.get(self.url + path, auth=(USER, PASSWORD), verify=trust, timeout=10)

    def alerts(self) -> list[dict]:
        return self.get("/api/v2/alerts").json()

    def receiver(self) -> Receiver:
        return Receiver(
            "am",
            f"{self.url}/api/v2/alerts",
            format="alertmanager_api",
            repeat_interval_s=60,
            basic_auth_username=USER,
            basic_auth_password_file=str(self.password_file),
            ca_file=str(self.ca),
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RunningAlertmanager]:
    am = RunningAlertmanager(tmp_path)
    yield am
    am.stop()


def slo_alert(severity: str) -> Alert:
    """An alert as the SLO evaluator makes one for the demo's payments SLO."""
    return Alert(
        {
            "alertname": "payments-latency",
            "service": "payments",
            "severity": severity,
            "slo": "payments-latency",
        },
        {
            "summary": f"payments-latency: latency error budget burning too fast ({severity})",
            "description": "99% of payments requests should take at most 200ms over 30d.",
        },
        3.0,
        0.0,
        ("am",),
        "slo",
    )


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def delivery(receiver: Receiver) -> tuple[Notifier, Dispatcher, list[Attempt]]:
    attempts: list[Attempt] = []
    dispatcher = Dispatcher(attempts.append, backoff_s=0.2)
    return Notifier(dispatcher.submit, EXTERNAL), dispatcher, attempts


def test_incident_reaches_alertmanager_and_resolves(alertmanager: RunningAlertmanager) -> None:
    receivers = {"am": alertmanager.receiver()}
    notifier, dispatcher, attempts = delivery(receivers["am"])
    alert = slo_alert("page")
    t0 = time.time() - 30
    try:
        pending = step(AlertState(), True, t0, alert.for_s, alert.keep_firing_for_s)
        assert notifier.notify([(alert, pending)], set(), receivers, t0) == []
        firing = step(pending, True, t0 + 4, alert.for_s, alert.keep_firing_for_s)
        assert firing.state == FIRING and firing.fired_at == t0 + 4
        assert len(notifier.notify([(alert, firing)], set(), receivers, t0 + 4)) == 1
        (shown,) = eventually(lambda: alertmanager.alerts(), timeout=30)
        assert shown["labels"] == alert.labels
        assert shown["annotations"] == alert.annotations
        assert abs(epoch(shown["startsAt"]) - (t0 + 4)) < 0.002  # the firing time, not pending
        assert shown["generatorURL"] == f"{EXTERNAL}/alerts?fingerprint={alert.fingerprint}"
        assert shown["status"]["state"] == "active"
        assert shown["fingerprint"] == alert.fingerprint  # the same label-set fingerprint

        resolved = step(firing, False, t0 + 10, alert.for_s, alert.keep_firing_for_s)
        assert resolved.state == RESOLVED
        assert len(notifier.notify([(alert, resolved)], set(), receivers, t0 + 10)) == 1

        def gone_or_ended() -> bool:
            found = [a for a in alertmanager.alerts() if a["fingerprint"] == alert.fingerprint]
            return not found or abs(epoch(found[0]["endsAt"]) - (t0 + 10)) < 0.002

        eventually(gone_or_ended, timeout=30)
        active = alertmanager.get("/api/v2/alerts?active=true&silenced=false&inhibited=false")
        assert active.json() == []
        assert [a.outcome for a in attempts] == ["sent", "sent"]
        assert [a.http_status for a in attempts] == [200, 200]
    finally:
        dispatcher.stop()


def test_sidetrace_silence_suppresses_delivery(alertmanager: RunningAlertmanager, store) -> None:
    with dashboard_client(store) as client:
        created = client.post(
            "/api/v1/silences",
            json={
                "matchers": [
                    {"name": "severity", "value": "ticket", "isRegex": False, "isEqual": True}
                ],
                "duration": "1h",
                "createdBy": "e2e",
                "comment": "tickets are noise here",
            },
        )
        assert created.status_code == 201, created.text
    receivers = {"am": alertmanager.receiver()}
    notifier, dispatcher, attempts = delivery(receivers["am"])
    page, ticket = slo_alert("page"), slo_alert("ticket")
    now = time.time()
    state = AlertState(FIRING, now - 60, now, None, now - 50)
    silences = SilenceStore(store).all()  # what the alerter reads each evaluation
    silenced = {
        a.fingerprint for a in (page, ticket) if any(s.silences(a.labels, now) for s in silences)
    }
    assert silenced == {ticket.fingerprint}
    try:
        notifier.notify([(page, state), (ticket, state)], silenced, receivers, now)
        eventually(lambda: alertmanager.alerts(), timeout=30)
        time.sleep(2)  # anything else sent would have arrived by now
        assert [a["labels"]["severity"] for a in alertmanager.alerts()] == ["page"]
        assert len(attempts) == 1
    finally:
        dispatcher.stop()


class _HeaderRecorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, list]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_bearer_token_is_read_at_each_send(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _HeaderRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = Receiver(
        "am",
        f"http://127.0.0.1:{server.server_port}/api/v2/alerts",
        format="alertmanager_api",
        repeat_interval_s=0,
        bearer_token_file=str(token),
    )
    notifier, dispatcher, attempts = delivery(receiver)
    alert = slo_alert("page")
    state = AlertState(FIRING, 100.0, 200.0, None, 150.0)
    try:
        notifier.notify([(alert, state)], set(), {"am": receiver}, 200.0)
        eventually(lambda: len(_HeaderRecorder.seen) == 1, timeout=30)
        token.write_text("second\n")  # rotated: the next send uses it
        notifier.notify([(alert, state)], set(), {"am": receiver}, 300.0)
        eventually(lambda: len(_HeaderRecorder.seen) == 2, timeout=30)
        token.unlink()  # unreadable: a failed attempt with the reason, the thread lives on
        notifier.notify([(alert, state)], set(), {"am": receiver}, 400.0)
        eventually(lambda: any("cannot read" in a.error for a in attempts), timeout=30)
    finally:
        dispatcher.stop()
        server.shutdown()
    assert [auth for auth, _ in _HeaderRecorder.seen] == ["Bearer first", "Bearer second"]
    body = _HeaderRecorder.seen[0][1]
    assert body == [
        {
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": "1970-01-01T00:02:30.000Z",
            "generatorURL": f"{EXTERNAL}/alerts?fingerprint={alert.fingerprint}",
        }
    ]


def test_silences_have_alertmanagers_shape(alertmanager: RunningAlertmanager, store) -> None:
    """The same silence created in sidetrace and in Alertmanager reads back alike."""
    body = {
        "matchers": [
            {"name": "severity", "value": "ticket", "isRegex": False, "isEqual": True},
            {"name": "service", "value": "pay.*", "isRegex": True, "isEqual": False},
        ],
        "startsAt": "2030-01-02T03:04:05.000Z",
        "endsAt": "2030-01-02T05:04:05.000Z",
        "createdBy": "e2e",
        "comment": "maintenance",
    }
    posted = httpx.post(
        f"{alertmanager.url}/api/v2/silences",
        json=body,
        auth=(USER, PASSWORD),
        verify=ssl.create_default_context(cafile=str(alertmanager.ca)),
        timeout=10,
    )
    assert posted.status_code == 200, posted.text
    (theirs,) = alertmanager.get("/api/v2/silences").json()
    with dashboard_client(store) as client:
        created = client.post("/api/v1/silences", json=body)
        assert created.status_code == 201, created.text
        # unquoted matcher values, as Alertmanager's matcher parser takes them
        text = {**body, "matchers": "{severity=ticket, service!~pay.*}"}
        assert client.post("/api/v1/silences", json=text).status_code == 201
        ours = client.get("/api/v1/silences").json()["silences"]
    assert len(ours) == 2
    for silence in ours:
        assert set(silence) == set(theirs)
        assert silence["matchers"] == theirs["matchers"]
        for key in ("startsAt", "endsAt"):
            assert epoch(silence[key]) == epoch(theirs[key])
        assert silence["status"] == theirs["status"] == {"state": "pending"}
        epoch(silence["updatedAt"])  # RFC 3339


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
        receivers: [am]
      - severity: ticket
        receivers: [am]
receivers:
  - name: am
    url: {url}/api/v2/alerts
    format: alertmanager_api
    basic_auth: {{username: {user}, password_file: {password_file}}}
    ca_file: {ca}
"""


class Traffic:
    """Server spans of ``payments`` written as the collector writes them, ``delay_ns`` long."""

    def __init__(self, store) -> None:  # noqa: ANN001 - the store fixture's Store
        self.store, self.delay_ns = store, 10_000_000
        self.stop_event = threading.Event()
        self.ids = gen.Ids(42)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.wait(0.25):
            now = time.time_ns()
            spans = [
                gen.GenSpan(
                    self.ids.trace(),
                    self.ids.span(),
                    "",
                    "payments",
                    "POST /pay",
                    now - self.delay_ns - i * 1_000_000,
                    self.delay_ns,
                )  # fmt: skip
                for i in range(5)
            ]
            gen.insert(self.store, spans)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(15)


@pytest.mark.slow
def test_alerter_pages_a_real_alertmanager(
    alertmanager: RunningAlertmanager, clickhouse_server, tmp_path: Path
) -> None:
    """``sidetrace alerter`` (time scale 60) over the demo's payments SLO: the page reaches
    Alertmanager, shows in ``/api/v2/alerts`` and resolves; the silenced ticket never arrives."""
    url = clickhouse_server.url(database=f"am_e2e_{os.getpid()}")
    store = open_store(url)
    migrate(store)
    with dashboard_client(store) as client:
        created = client.post(
            "/api/v1/silences",
            json={"matchers": "alertname=payments-latency, severity=ticket", "duration": "1h",
                  "createdBy": "e2e", "comment": "tickets are noise here"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(
        SLO_FILE.format(
            url=alertmanager.url,
            user=USER,
            password_file=alertmanager.password_file,
            ca=alertmanager.ca,
        )  # fmt: skip
    )
    traffic = Traffic(store)
    admin_port = free_port()
    log = (tmp_path / "alerter.log").open("wb")
    alerter = subprocess.Popen(
        [sys.executable, "-m", "sidetrace", "alerter", "--clickhouse", url, "--slo", str(slo_file),
         "--interval", "1", "--time-scale", "60", "--external-url", EXTERNAL,
         "--admin-port", str(admin_port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    seen: list[str] = []

    def page_alerts() -> list[dict]:
        found = alertmanager.alerts()
        seen.extend(a["labels"]["severity"] for a in found)
        return [a for a in found if a["labels"]["severity"] == "page"]

    try:
        time.sleep(5)  # fast traffic: nothing fires
        assert page_alerts() == []
        traffic.delay_ns = 300_000_000  # slower than the 200 ms objective
        (page,) = eventually(lambda: page_alerts(), timeout=120)
        assert page["status"]["state"] == "active"
        assert page["labels"] == {
            "alertname": "payments-latency",
            "service": "payments",
            "severity": "page",
            "slo": "payments-latency",
        }
        assert page["annotations"]["summary"].startswith("payments-latency")
        assert page["generatorURL"].startswith(f"{EXTERNAL}/alerts?fingerprint=")
        fired = store.query(
            "SELECT at_ms FROM alert_events WHERE severity = 'page' AND to_state = 'firing'"
        )
        assert abs(epoch(page["startsAt"]) - int(fired[0][0]) / 1000) < 1.0  # the firing time
        traffic.delay_ns = 10_000_000  # recovered
        active = "/api/v2/alerts?active=true&silenced=false&inhibited=false"
        eventually(lambda: not alertmanager.get(active).json(), timeout=180)
        resolved = store.query(
            "SELECT at_ms FROM alert_events WHERE severity = 'page' AND to_state = 'resolved'"
        )
        assert resolved, "sidetrace resolved the page"
        ticket = store.query(
            "SELECT silenced FROM alert_events WHERE severity = 'ticket' AND to_state = 'firing'"
        )
        assert ticket and int(ticket[0][0]) == 1  # it fired, silenced
        assert "ticket" not in seen + [a["labels"]["severity"] for a in alertmanager.alerts()]
        metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10)
        promtool_check(metrics.text)  # the alerter's admin port, like every other
    finally:
        traffic.stop()
        alerter.terminate()
        alerter.wait(30)
        log.close()
