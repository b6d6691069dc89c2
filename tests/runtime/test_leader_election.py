"""Three ``sidetrace alerter`` replicas on a real ZooKeeper and clickhouse-server.

Each test runs an incident (payments turns slow, then fast again) against three
alerters with ``--coordinator`` (4 s sessions), evaluating every second with the
test-only time scale (60: the page windows become 60 s and 5 s, ``for`` and
``keep_firing_for`` 3 s). A real HTTP receiver records every request with its
``X-Sidetrace-Notification`` id. Then the leader is killed, the coordinator is
stopped for 20 s, or the leader is frozen past its session timeout: exactly one
process acts at a time, the firing and the resolved notification both arrive,
and any duplicate is counted (it can only come from a crash between a send and
its record).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.loopback_ports import free_port
from tests.support import ROOT
from tests.support.polling import eventually
from tests.support.slo_spans import insert_spans
from tests.support.webhook_receiver import RecordingReceiver
from tests.support.zookeeper import ZooKeeper
from tracestore.migrate import migrate
from tracestore.store import Store, open_store

SESSION_S = 4.0
SLO_FILE = """\
slos:
  - name: payments-latency
    service: payments
    threshold: 200ms
    target: 99
    alerts:
      - severity: page
        for: 3m
        keep_firing_for: 3m
        receivers: [hook]
receivers:
  - name: hook
    url: {url}
"""


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeper]:
    try:
        zk = ZooKeeper(tmp_path_factory.mktemp("zookeeper"))
    except RuntimeError as exc:
        pytest.skip(str(exc))
    zk.start()
    yield zk
    zk.stop()


class Traffic:
    """payments' server spans, ten a second, straight into ClickHouse; ``slow`` is the incident."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.slow = False
        self._stop = threading.Event()
        insert_spans(store, [(time.time() - 30 + i * 0.1, 20, 0, "GET /pay") for i in range(300)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now, duration = time.time(), 2000 if self.slow else 20
            insert_spans(self.store, [(now - i * 0.1, duration, 0, "GET /pay") for i in range(5)])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Alerters:
    """Three alerter processes, each logging to its own file."""

    def __init__(self, folder: Path, clickhouse: str, coordinator: str, slo: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.admin_ports: list[int] = []
        for number in range(3):
            self.admin_ports.append(free_port())
            log = open(folder / f"alerter{number}.log", "wb")  # noqa: SIM115 - the process's
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sidetrace", "alerter", "--clickhouse", clickhouse]
                    + ["--slo", str(slo), "--interval", "1", "--time-scale", "60"]
                    + ["--coordinator", coordinator, "--admin-port", str(self.admin_ports[-1])],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )
            log.close()

    def identity(self, proc: subprocess.Popen[bytes]) -> str:
        return f"{os.uname().nodename}:{proc.pid}"

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.folder / f"alerter{self.procs.index(proc)}.log").read_text(errors="replace")

    def leader(self, timeout: float = 60.0, besides: tuple[int, ...] = ()) -> subprocess.Popen:
        """The one process whose last election line says it leads (waits for one)."""

        def leading(proc: subprocess.Popen[bytes]) -> bool:
            lines = [ln for ln in self.log(proc).splitlines() if "slo-evaluator: " in ln]
            lines = [ln for ln in lines if " leads (term" in ln or "no longer leads" in ln]
            return bool(lines) and " leads (term" in lines[-1]

        def find() -> subprocess.Popen | None:
            found = [
                p for p in self.procs if p.poll() is None and p.pid not in besides and leading(p)
            ]
            return found[0] if len(found) == 1 else None

        return eventually(find, timeout, what="one leader")

    def leader_gauges(self) -> dict[int, int]:
        """Each live process's ``sidetrace_alerter_leader`` from its admin port."""
        out = {}
        for proc, port in zip(self.procs, self.admin_ports, strict=True):
            if proc.poll() is None:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                line = next(ln for ln in text.splitlines() if ln.startswith("sidetrace_alerter_l"))
                out[proc.pid] = int(line.split()[1])
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Incident:
    """One test's store, receiver, traffic and alerters."""

    def __init__(self, clickhouse_server, zookeeper: ZooKeeper, folder: Path, name: str) -> None:
        self.url = clickhouse_server.url(database=f"leader_{name}_{os.getpid()}")
        self.store = open_store(self.url)
        migrate(self.store)
        self.hook = RecordingReceiver()
        slo = folder / "slo.yaml"
        slo.write_text(SLO_FILE.format(url=self.hook.url()))
        self.traffic = Traffic(self.store)
        coordinator = zookeeper.url(f"/sidetrace/{name}", SESSION_S)
        self.alerters = Alerters(folder, self.url, coordinator, slo)

    def received(self, status: str) -> list[tuple[dict, float, str]]:
        with self.hook.lock:
            requests = list(zip(self.hook.requests, self.hook.ids, strict=True))
        return [(body, at, nid) for (_, body, at), nid in requests if body["status"] == status]

    def fire(self) -> float:
        """Start the incident; returns when the firing notification has arrived."""
        self.traffic.slow = True
        eventually(lambda: self.received("firing"), 90, what="the firing notification")
        return time.time()

    def resolve(self) -> None:
        self.traffic.slow = False

    def deliveries(self) -> list[tuple[str, str, str, int]]:
        """(id, state, leader, at_ms) of the delivery record, oldest first."""
        rows = self.store.query(
            "SELECT id, state, leader, at_ms FROM alert_deliveries WHERE id != '' ORDER BY at_ms"
        )
        return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def check_once(self) -> int:
        """Every request is a recorded decision; returns the duplicates, each explained.

        A duplicate is one decision (one id) received twice: the leader that decided it
        sent it and was killed or cut off before recording 'sent', so the next leader
        found it unsent and sent it again. So its first 'sent' row must come from
        another process than the one that decided it. Two ids for one (status,
        startsAt) would be a logic error, not a failover, and fail the test.
        """
        with self.hook.lock:
            ids = list(self.hook.ids)
        assert all(ids), "every request carries its notification id"
        rows = self.deliveries()
        assert set(ids) <= {nid for nid, state, _, _ in rows if state == "pending"}
        repeated = [nid for nid, n in Counter(ids).items() if n > 1]
        for nid in repeated:
            [decider] = {leader for i, state, leader, _ in rows if i == nid and state == "pending"}
            sent = [leader for i, state, leader, _ in rows if i == nid and state == "sent"]
            assert sent and sent[0] != decider, (nid, decider, sent)
        episodes = Counter(
            (body["status"], body["alerts"][0]["startsAt"], nid)
            for body, _, nid in self.received("firing") + self.received("resolved")
        )
        distinct = Counter((status, starts) for status, starts, _ in episodes)
        assert all(n == 1 for n in distinct.values()), distinct
        return sum(n - 1 for n in Counter(ids).values())

    def close(self) -> None:
        self.alerters.stop()
        self.traffic.stop()
        self.hook.close()


@pytest.fixture
def incident(
    request, clickhouse_server, zookeeper: ZooKeeper, tmp_path: Path
) -> Iterator[Incident]:
    case = Incident(clickhouse_server, zookeeper, tmp_path, request.node.name[5:20].strip("_"))
    yield case
    case.close()


@pytest.mark.slow
def test_killing_the_leader_hands_over_within_15s(incident: Incident) -> None:
    first = incident.alerters.leader()
    incident.fire()
    killed_at = time.time()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    second = incident.alerters.leader(timeout=30, besides=(first.pid,))
    # The new leader's first evaluation as leader has finished.
    eventually(
        lambda: "first evaluation as leader" in incident.alerters.log(second),
        30,
        what="an evaluation",
    )
    took = time.time() - killed_at
    print(f"failover_s={took:.1f}")
    assert took <= 15.0
    expected = {p.pid: int(p is second) for p in incident.alerters.procs if p is not first}
    eventually(lambda: incident.alerters.leader_gauges() == expected, 20, what="one leader gauge")
    incident.resolve()
    eventually(lambda: incident.received("resolved"), 60, what="the resolved notification")
    time.sleep(3)  # a few more evaluations: nothing else goes out
    leaders_after = {
        leader
        for _, state, leader, at_ms in incident.deliveries()
        if at_ms > killed_at * 1000 and state in ("pending", "sent")
    }
    assert leaders_after == {incident.alerters.identity(second)}
    duplicates = incident.check_once()  # explained, or it fails
    print(f"duplicates={duplicates}")
    assert duplicates <= 1  # only the firing can have been in flight at the kill
    assert len(set(incident.hook.ids)) == 2  # one firing and one resolved decision


@pytest.mark.slow
def test_coordinator_away_for_20s_nobody_acts_and_nothing_is_lost(
    incident: Incident, zookeeper: ZooKeeper
) -> None:
    incident.alerters.leader()
    incident.fire()
    zookeeper.stop()
    stopped_at = time.time()
    incident.resolve()  # the resolution falls due while the coordinator is away
    time.sleep(20)
    restarted_at = time.time()
    zookeeper.start()
    during = [at for body, at, _ in incident.received("resolved") if stopped_at < at < restarted_at]
    assert during == [], "a notification went out while the coordinator was away"
    decided_during = [
        row
        for row in incident.deliveries()
        if stopped_at * 1000 < row[3] < restarted_at * 1000 and row[1] == "pending"
    ]
    assert decided_during == []
    eventually(lambda: incident.received("resolved"), 60, what="the resolved notification")
    time.sleep(3)
    duplicates = incident.check_once()
    print(f"duplicates={duplicates}")
    assert duplicates <= 1  # only the firing can have been in flight when it went away
    assert len(set(incident.hook.ids)) == 2  # one firing and one resolved decision


@pytest.mark.slow
def test_a_frozen_leader_does_not_deliver_when_it_wakes(incident: Incident) -> None:
    frozen = incident.alerters.leader()
    incident.fire()
    os.kill(frozen.pid, signal.SIGSTOP)
    stopped_at = time.time()
    second = incident.alerters.leader(timeout=30, besides=(frozen.pid,))
    assert time.time() - stopped_at > SESSION_S * 0.5  # it won only after the session went
    incident.resolve()
    eventually(lambda: incident.received("resolved"), 60, what="the resolved notification")
    os.kill(frozen.pid, signal.SIGCONT)
    woke_at = time.time()
    # Its book still says firing, so left unfenced it would notify the resolution again.
    eventually(
        lambda: (
            "not leading" in incident.alerters.log(frozen)
            or "no longer leads" in incident.alerters.log(frozen)
        ),
        30,
        what="the frozen leader noticing",
    )
    time.sleep(5)
    late = [row for row in incident.deliveries() if row[3] > woke_at * 1000]
    frozen_id = incident.alerters.identity(frozen)
    # It decides nothing more; at most it records the outcome of the send it had made
    # before it froze (a fact, which only spares the next leader a resend).
    decided = [row for row in late if row[2] == frozen_id and row[1] != "sent"]
    assert decided == []
    before = {nid for _, at, nid in incident.received("firing") if at < woke_at}
    assert {row[0] for row in late if row[2] == frozen_id} <= before
    assert [at for _, at, _ in incident.received("resolved") if at > woke_at] == []
    assert incident.alerters.leader(besides=(frozen.pid,)) is second
    duplicates = incident.check_once()
    print(f"duplicates={duplicates}")
    assert duplicates <= 1  # only the firing can have been in flight when it froze


def test_only_the_elected_collector_writes_edges(zookeeper: ZooKeeper, store: Store) -> None:
    """The edge rollup's writes are fenced: a replica that does not lead writes nothing."""
    from collector.edge_rollup import JOB, compute_edges
    from runtime.coordination import Coordinator

    now = int(time.time()) - 120
    calls = 30  # client spans to an uninstrumented peer: virtual edges payments -> ledger
    store.insert(
        "spans",
        {
            "ts": [now + i for i in range(calls)],
            "start_ns": [(now + i) * 10**9 for i in range(calls)],
            "duration_ns": [20 * 10**6] * calls,
            "trace_id": [f"{i:032x}" for i in range(calls)],
            "span_id": [f"{i:016x}" for i in range(calls)],
            "service_name": ["payments"] * calls,
            "span_name": ["POST /ledger"] * calls,
            "span_kind": [3] * calls,
            "status_code": [0] * calls,
            "attr_keys": [["peer.service"]] * calls,
            "attr_values": [["ledger"]] * calls,
        },
    )
    coordinators = [Coordinator(zookeeper.url("/sidetrace/edges", SESSION_S)) for _ in range(2)]
    try:
        elections = [c.leadership(JOB) for c in coordinators]
        eventually(lambda: any(e.check() for e in elections), 30, what="a leader")
        leader, follower = sorted(elections, key=lambda e: not e.check())
        window = (now - 600, now + 120)
        assert compute_edges(store, *window, leadership=follower) is None
        assert store.query("SELECT count() FROM edges_minute")[0][0] == 0
        assert store.query("SELECT count() FROM edges_hour")[0][0] == 0
        assert compute_edges(store, *window, leadership=leader) is not None
        assert store.query("SELECT sum(calls) FROM edges_minute")[0][0] == calls
    finally:
        for coordinator in coordinators:
            coordinator.close()


def test_cluster_overlay_runs_two_elected_alerters() -> None:
    """Two alerters against the overlay's Keeper pods; collectors elect on it too."""
    from runtime.coordination import parse_coordinator_url
    from sidetrace.cli import build_parser
    from tests.support.kustomize_lite import DEPLOY, by_key, render

    objects = by_key(render(DEPLOY / "overlays" / "cluster"))
    keeper = objects[("StatefulSet", "clickhouse-keeper")]
    pods = {
        f"clickhouse-keeper-{i}.{keeper['spec']['serviceName']}.sidetrace.svc.cluster.local:9181"
        for i in range(keeper["spec"]["replicas"])
    }
    alerter = objects[("Deployment", "sidetrace-alerter")]
    assert alerter["spec"]["replicas"] == 2
    [container] = alerter["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert set(parse_coordinator_url(args.coordinator).hosts.split(",")) == pods
    [collector] = objects[("Deployment", "sidetrace-collector")]["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in collector["env"]}
    assert env["SIDETRACE_COORDINATOR"] == args.coordinator
