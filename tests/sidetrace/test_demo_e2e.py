"""End to end: ``sidetrace demo --duration 90`` as a user runs it, checked through the JSON API.

The demo owns its chDB folder for as long as it runs, so every check queries the
dashboard while the demo is running; the last test waits for it to stop by itself
and checks that every process it started is gone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.loopback_ports import free_port
from tests.support.demo_processes import all_in_one
from tests.support.polling import Gone, NotYet, eventually

pytestmark = pytest.mark.slow

DURATION_S = 90
EXPECTED_HOPS = {
    ("frontend", "catalog"),
    ("frontend", "orders"),
    ("orders", "payments"),
    ("orders", "inventory"),
}
DATABASE_NODE = "postgresql/inventory"
PAGE_ALERT = ("payments-latency", "page")
SERVER, CLIENT = "server", "client"


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    dashboard: str
    data: Path
    lines: list[str] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        def matched() -> re.Match[str] | None:
            ended = self.finished.is_set()  # before reading: the last lines are in by then
            found = (re.search(pattern, line) for line in list(self.lines))
            match = next(filter(None, found), None)
            if match is None and ended:
                raise Gone("the demo ended")
            return match

        try:
            return eventually(matched, timeout, 0.5, what=f"a line matching {pattern!r}")
        except (AssertionError, Gone) as error:
            raise AssertionError(f"{error}; demo output:\n{self.output()}") from None

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.dashboard + path, params=params, timeout=30.0)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def poll(self, check: Callable[[], str | None], what: str, within: float = 1e9) -> None:
        """Call ``check`` until it returns None (success), ``within`` s pass or the demo ends;
        what it returns otherwise says what is missing."""

        def done() -> bool:
            if self.finished.is_set():
                raise Gone("the demo ended")
            missing = check()  # an HTTP error counts as not yet: the demo may be stopping
            if missing:
                raise NotYet(missing)
            return True

        try:
            eventually(done, within, 3.0, what=what, ignoring=(httpx.HTTPError, NotYet))
        except (AssertionError, Gone) as error:
            pytest.fail(f"{error}\n{self.output()[-3000:]}")


def start_demo(data: Path, *flags: str, sigint_ignored: bool = False) -> RunningDemo:
    """``sidetrace demo`` on free ports, its output collected line by line; with
    ``sigint_ignored``, started as a shell without job control starts background jobs."""
    port = free_port()
    command = [
        sys.executable, "-m", "sidetrace", "demo", "--reset", "--data", str(data),
        "--port", str(port), "--grpc-port", str(free_port()),
        "--http-port", str(free_port()), "--admin-port", str(free_port()), *flags,
    ]  # fmt: skip
    if sigint_ignored:  # an ignored signal stays ignored across exec
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = RunningDemo(process, f"http://127.0.0.1:{port}", data)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line.rstrip("\n"))
        process.wait()
        running.finished.set()

    threading.Thread(target=read, daemon=True).start()
    return running


def stop_demo(running: RunningDemo) -> None:
    """Teardown only: whatever is still running goes, group and all."""
    process = running.process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ports_in_output(text: str) -> list[int]:
    """The 20 ports of the sample system's apps and sidecars, as the demo printed them."""
    return [int(p) for p in re.findall(r"(?:app|in|out|admin) :(\d+)", text)]


def assert_ports_free(ports: list[int]) -> None:
    """Nothing listens on them any more: every app and sidecar is gone."""
    assert len(ports) == 20
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    running = start_demo(
        tmp_path_factory.mktemp("demo") / "data",
        "--duration", str(DURATION_S),
        # One payments incident, early; SLO time compressed 60x (1 h -> 1 min, 30 min -> 30 s)
        # so the page alert both fires and resolves within the run.
        "--incident-start", "12", "--incident-every", "600", "--incident-length", "20",
        "--slo-time-scale", "60",
    )  # fmt: skip
    try:
        yield running
    finally:
        stop_demo(running)


def jaeger_spans(trace: dict) -> dict[str, dict]:
    """spanID -> span, each with its service name and kind resolved."""
    spans = {}
    for span in trace["spans"]:
        tags = {t["key"]: t["value"] for t in span.get("tags", [])}
        span = {**span, "service": trace["processes"][span["processID"]]["serviceName"]}
        span["kind"] = tags.get("span.kind", "")
        span["tag"] = tags
        spans[span["spanID"]] = span
    return spans


def parent_of(span: dict) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def chain_problems(trace: dict) -> str | None:
    """Why this trace is not a correctly linked checkout across every service (None if it is)."""
    spans = jaeger_spans(trace)
    roots = [s for s in spans.values() if parent_of(s) is None]
    if len(roots) != 1 or roots[0]["service"] != "frontend" or roots[0]["kind"] != SERVER:
        got = [(r["service"], r["kind"]) for r in roots]
        return f"want one root, frontend's server span; got {got}"
    hops = set()
    for span in spans.values():
        parent_id = parent_of(span)
        if parent_id is None:
            continue
        if parent_id not in spans:
            return f"span {span['spanID']} ({span['service']}) has a parent not in the trace"
        parent = spans[parent_id]
        if parent["service"] != span["service"]:
            hops.add((parent["service"], span["service"]))
            if (parent["kind"], span["kind"]) != (CLIENT, SERVER):
                kinds = f"{parent['kind']}->{span['kind']}"
                return f"hop {parent['service']}->{span['service']} is {kinds}"
    if hops != EXPECTED_HOPS:
        return f"service hops {sorted(hops)} != {sorted(EXPECTED_HOPS)}"
    database = [s for s in spans.values() if s["tag"].get("db.system") == "postgresql"]
    if not database:
        return "no database client span"
    for span in database:
        parent = spans.get(parent_of(span) or "")
        if span["kind"] != CLIENT or span["service"] != "inventory" or parent is None:
            return f"database span is {span['kind']} in {span['service']} under {parent}"
        if parent["service"] != "inventory":
            return f"database span's parent is in {parent['service']}"
    return None


def test_demo_prints_what_it_started(demo: RunningDemo) -> None:
    demo.wait_for_line(r"dashboard\s+http://127\.0\.0\.1:\d+", timeout=180)
    demo.wait_for_line(r"load: .* requests/s", timeout=180)
    text = demo.output()
    for name in ("frontend", "catalog", "orders", "payments", "inventory"):
        assert re.search(rf"^\s+{name}\s+(http|grpc)\s+app :\d+\s+sidecar in :\d+", text, re.M)


def test_traces_cross_all_five_services_with_correct_links(demo: RunningDemo) -> None:
    match = demo.wait_for_line(r"example trace: (http://\S+/trace/([0-9a-f]{32}))", timeout=120)
    assert match.group(1).startswith(demo.dashboard)

    def example_is_complete() -> str | None:
        traces = demo.get(f"/api/traces/{match.group(2)}")["data"]
        return chain_problems(traces[0]) if traces else "example trace not found"

    # Spans of one trace arrive from six exporters; give the slowest a moment.
    demo.poll(example_is_complete, "the example trace to be complete", within=30)

    def several_complete() -> str | None:
        found = demo.get(
            "/api/traces", service="frontend", operation="POST /checkout", lookback="1h", limit=50
        )["data"]
        good = [t for t in found if chain_problems(t) is None]
        return None if len(good) >= 3 else f"{len(good)} of {len(found)} checkouts complete"

    demo.poll(several_complete, "three complete checkout traces", within=30)


def test_payments_incident_fires_and_resolves_the_slo_page_alert(demo: RunningDemo) -> None:
    pytest.importorskip("dashboard.slo_routes", reason="alerting has not landed")

    def page_went(state: str) -> Callable[[], str | None]:
        def check() -> str | None:
            events = demo.get("/api/v1/alerts/history", limit=500)["events"]
            page = [e for e in events if (e["alertname"], e["severity"]) == PAGE_ALERT]
            if any(e["to"] == state for e in page):
                return None
            return f"page alert transitions so far: {[(e['from'], e['to']) for e in page]}"

        return check

    demo.poll(page_went("firing"), "the payments-latency page alert firing")
    demo.wait_for_line(r"ALERT payments-latency \(page\): \w+ -> firing", timeout=30)
    demo.poll(page_went("resolved"), "the payments-latency page alert resolving")


def test_demo_stops_cleanly_and_says_where_the_data_is(demo: RunningDemo) -> None:
    assert demo.finished.wait(timeout=DURATION_S + 180), "demo did not stop after --duration"
    assert demo.process.returncode == 0, demo.output()[-3000:]
    text = demo.output()
    assert f"--duration {DURATION_S}s is over" in text
    assert "The data lives in" in text and str(demo.data.resolve()) in text
    assert_ports_free(ports_in_output(text))


def test_dependency_graph_has_the_expected_edges(demo: RunningDemo) -> None:
    """Edges are rolled up per closed minute (plus a grace period), which a 90 s run may not
    see close: read them from an all-in-one on the demo's data once the demo has stopped."""
    pytest.importorskip("dashboard.analytics_routes", reason="analytics has not landed")
    assert demo.finished.wait(timeout=DURATION_S + 180), "demo did not stop after --duration"
    expected = EXPECTED_HOPS | {("inventory", DATABASE_NODE)}
    with all_in_one(demo.data) as (_, ports):

        def complete() -> bool:
            response = httpx.get(
                f"http://127.0.0.1:{ports['--port']}/api/dependencies",
                params={"endTs": int(time.time() * 1000), "lookback": 3_600_000},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            edges = {(d["parent"], d["child"]) for d in data if d.get("callCount", 0) > 0}
            if not expected <= edges:
                raise NotYet(f"missing {sorted(expected - edges)}; have {sorted(edges)}")
            return True

        eventually(complete, 90, 3, what="the dependency graph", ignoring=(NotYet,))


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    running = start_demo(tmp_path / "data", "--rate", "5", sigint_ignored=True)
    try:
        running.wait_for_line(r"example trace: ", timeout=180)
        os.kill(running.process.pid, signal.SIGINT)  # what Ctrl-C sends the demo
        if not running.finished.wait(timeout=90):
            os.kill(running.process.pid, signal.SIGUSR1)  # every thread's stack, to its output
            time.sleep(2)
            pytest.fail(f"demo did not stop on SIGINT; its output:\n{running.output()[-6000:]}")
    finally:
        stop_demo(running)
    text = running.output()
    assert running.process.returncode == 0, text[-3000:]
    assert "stopping" in text and "The data lives in" in text
    assert "Traceback" not in text
    assert_ports_free(ports_in_output(text))
