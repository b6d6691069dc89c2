"""Leadership for singleton jobs: one replica acts, the others wait, through ZooKeeper.

SLO evaluation and delivery, the edge rollup and retention must each run in one
process at a time, or notifications go out twice. With ``--coordinator
zk://host:2181[,host:2181]/path`` every such job stands in a kazoo ``Election``
(``/path/elections/JOB``) and acts only while it leads. Anything that speaks the
ZooKeeper protocol will do: ZooKeeper itself or ClickHouse Keeper.

Fencing. A job asks ``check()`` right before each write and each delivery (the
one exception: the outcome of a notification already sent is recorded anyway, a
fact that only spares the next leader a resend). It holds only while all of
these hold:

- this process won the election and still holds its lock node;
- the connection is up (SUSPENDED or LOST stop it at once);
- a round trip to the coordinator succeeded less than half a session timeout
  ago, measured from when the request was sent. The coordinator expires a
  session one whole timeout after it last heard from it, so no other process
  can have won while this lease holds, even if this one was frozen (SIGSTOP,
  a long GC or VM pause) and has not yet noticed its session is gone.

``check(confirm=True)`` also makes a fresh round trip, which a job uses before an
act that cannot be taken back (sending a notification).

Without a coordinator, ``SoleLeader`` always leads: one process runs the jobs,
as it says when it starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_S = 10.0
ELECTIONS = "elections"


class CoordinatorError(ValueError):
    """A coordinator URL that cannot be used, explained in one line."""


class Leadership(Protocol):
    """What a singleton job asks before it acts."""

    job: str

    def check(self, confirm: bool = False) -> bool:
        """True while this process may act for the job; ``confirm`` asks the coordinator."""

    @property
    def term(self) -> int:
        """Counts this process's wins; changes each time it wins the job again."""


class SoleLeader:
    """No coordinator: this process is the only one running the job."""

    def __init__(self, job: str) -> None:
        self.job = job

    def check(self, confirm: bool = False) -> bool:
        return True

    @property
    def term(self) -> int:
        return 1


@dataclass(frozen=True)
class CoordinatorURL:
    hosts: str  # kazoo's form: host:port[,host:port]
    path: str
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S


def parse_coordinator_url(url: str) -> CoordinatorURL:
    """Parse ``zk://host:2181[,host:2181]/path[?session_timeout=SECONDS]``."""
    parts = urlsplit(url)
    if parts.scheme != "zk" or not parts.netloc:
        raise CoordinatorError(
            f"bad coordinator URL {url!r}: expected zk://host:2181[,host:2181]/path"
        )
    hosts = []
    for host in parts.netloc.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "2181")
        if not name or not port.isdigit():
            raise CoordinatorError(f"bad coordinator URL {url!r}: bad host {host!r}")
        hosts.append(f"{name}:{port}")
    path = parts.path.rstrip("/") or "/sidetrace"
    if any(not segment for segment in path.split("/")[1:]):
        raise CoordinatorError(f"bad coordinator URL {url!r}: bad path {parts.path!r}")
    timeout = DEFAULT_SESSION_TIMEOUT_S
    for value in parse_qs(parts.query).get("session_timeout", []):
        try:
            timeout = float(value)
        except ValueError:
            timeout = -1.0
        if not 1.0 <= timeout <= 600.0:
            raise CoordinatorError(
                f"bad coordinator URL {url!r}: session_timeout must be 1 to 600 seconds"
            )
    return CoordinatorURL(",".join(hosts), path, timeout)


class Coordinator:
    """One ZooKeeper session per process, shared by the elections of its jobs."""

    def __init__(self, url: str, identity: str | None = None) -> None:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self.url = parse_coordinator_url(url)
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        # Reconnect quickly and forever: a coordinator back after an outage should be
        # found well within a session timeout, so sessions (and leaders) survive it.
        self.client = KazooClient(
            hosts=self.url.hosts,
            timeout=self.url.session_timeout_s,
            connection_retry=KazooRetry(max_tries=-1, delay=0.2, backoff=1.5, max_delay=1.0),
            command_retry=KazooRetry(max_tries=-1, delay=0.2, backoff=1.5, max_delay=1.0),
        )
        self._elections: list[ZooKeeperLeadership] = []
        self.client.start_async()

    def leadership(self, job: str) -> ZooKeeperLeadership:
        """Stand for ``job``; returns at once, the election runs on its own thread."""
        election = ZooKeeperLeadership(self, job)
        self._elections.append(election)
        return election

    def close(self) -> None:
        for election in self._elections:
            election.stop()
        self.client.stop()
        self.client.close()


class ZooKeeperLeadership:
    """One job's election, and the fencing checks described in the module docstring."""

    def __init__(self, coordinator: Coordinator, job: str) -> None:
        from kazoo.protocol.states import KazooState

        self.job = job
        self._coordinator = coordinator
        self._client = coordinator.client
        self._timeout = coordinator.url.session_timeout_s
        self._path = f"{ELECTIONS}/{job}"
        self._lock = threading.Lock()
        self._term = 0
        self._node = ""  # our lock node while we lead
        self._lease_until = 0.0  # monotonic
        self._connected = self._client.state == KazooState.CONNECTED
        self._session_lost = threading.Event()
        self._stop = threading.Event()
        self._election = None
        self._client.add_listener(self._on_state)
        self._thread = threading.Thread(target=self._run, name=f"election-{job}", daemon=True)
        self._thread.start()

    # ---- the checks -------------------------------------------------------------------

    @property
    def term(self) -> int:
        return self._term

    def check(self, confirm: bool = False) -> bool:
        with self._lock:
            node = self._node
            ok = bool(node) and self._connected and time.monotonic() < self._lease_until
        if ok and confirm:
            ok = self._renew(node) is True
        return ok

    def _renew(self, node: str) -> bool | None:
        """One round trip: does our lock node still exist in our session? Extends the lease
        if so; ``None`` when the coordinator could not be asked."""
        sent = time.monotonic()
        try:
            stat = self._client.exists_async(f"{self._election_path}/{node}").get(
                timeout=self._timeout / 4
            )
        except Exception:  # connection loss, session expiry, timeout: cannot tell
            return None
        session = self._client.client_id
        if stat is None or session is None or stat.ephemeralOwner != session[0]:
            return False
        with self._lock:
            if self._node != node or not self._connected:
                return None
            self._lease_until = max(self._lease_until, sent + self._timeout / 2)
        return True

    # ---- the election -----------------------------------------------------------------

    @property
    def _election_path(self) -> str:
        return f"{self._coordinator.url.path}/{self._path}"

    def _on_state(self, state: str) -> None:
        """Called on kazoo's thread: stop acting at once when the connection is in doubt."""
        from kazoo.protocol.states import KazooState

        with self._lock:
            self._connected = state == KazooState.CONNECTED
            if not self._connected:
                self._lease_until = 0.0
        if state == KazooState.LOST:
            self._session_lost.set()
        if self._node and state != KazooState.CONNECTED:
            log.warning("%s: coordinator connection %s; not acting", self.job, state.lower())

    def _run(self) -> None:
        from kazoo.exceptions import KazooException

        while not self._stop.is_set():
            try:
                self._election = self._client.Election(
                    self._election_path, self._coordinator.identity
                )
                self._election.run(self._lead)
            except KazooException as exc:
                if not self._stop.is_set():
                    log.warning("%s: election interrupted (%s); standing again", self.job, exc)
            except Exception:
                log.exception("%s: election failed; standing again", self.job)
            self._stop.wait(0.5)

    def _lead(self) -> None:
        """Runs while this process holds the lock; returns when it may no longer hold it."""
        assert self._election is not None
        node = self._election.lock.node
        self._session_lost.clear()  # a loss before this win is the old session's; the
        # lock node of this win is checked below
        with self._lock:
            self._term += 1
            self._node = node
        log.info("%s: %s leads (term %d)", self.job, self._coordinator.identity, self._term)
        try:
            while not self._stop.is_set() and not self._session_lost.is_set():
                if self._client.connected and self._renew(node) is False:
                    break  # our node is gone: our session ended
                self._stop.wait(self._timeout / 6)
        finally:
            with self._lock:
                self._node = ""
                self._lease_until = 0.0
            log.warning("%s: %s no longer leads", self.job, self._coordinator.identity)

    def stop(self) -> None:
        self._stop.set()
        if self._election is not None:
            self._election.cancel()


def add_coordinator_flag(parser: argparse.ArgumentParser) -> None:
    """``--coordinator``, for every command that runs singleton jobs."""
    parser.add_argument(
        "--coordinator",
        default=None,
        metavar="URL",
        help="elect one replica for the singleton jobs through ZooKeeper or ClickHouse "
        "Keeper: zk://host:2181[,host:2181]/path[?session_timeout=SECONDS]; without it "
        "this process runs them alone",
    )


def open_leaderships(
    url: str | None, jobs: tuple[str, ...], process: str
) -> tuple[Coordinator | None, dict[str, Leadership]]:
    """Leadership for each of ``jobs``: elected through ``url``, or sole without one.

    Says at start which it is, so an operator running two replicas without a
    coordinator is told they would both act.
    """
    if not url:
        log.info(
            "%s: no --coordinator: %s run in this process alone (run one replica)",
            process,
            ", ".join(jobs),
        )
        return None, {job: SoleLeader(job) for job in jobs}
    coordinator = Coordinator(url)
    log.info(
        "%s: %s elected through %s%s as %s",
        process,
        ", ".join(jobs),
        coordinator.url.hosts,
        coordinator.url.path,
        coordinator.identity,
    )
    return coordinator, {job: coordinator.leadership(job) for job in jobs}
