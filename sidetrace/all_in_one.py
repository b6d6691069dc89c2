"""Embedded store, collector and dashboard in one process.

chDB lets one process own a data path, so in embedded mode the collector
(which writes) and the dashboard (which reads, and evaluates SLOs) share this
process and one store. ``sidetrace all-in-one`` runs just this; ``sidetrace
demo`` runs it beside the sample system.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from collector.config import CollectorConfig
from dashboard import PORT as DASHBOARD_PORT
from dashboard import SLO_INTERVAL_S
from tracestore.migrate import migrate
from tracestore.store import Store, open_store


class PortTaken(Exception):
    """A port the user chose (or left at its default) is already in use."""


class DataInUse(Exception):
    """Another sidetrace process owns the data folder (chDB allows one process per path)."""


@dataclass(frozen=True)
class StackPorts:
    grpc: int = CollectorConfig.grpc_port or 0
    http: int = CollectorConfig.http_port or 0
    admin: int = CollectorConfig.admin_port or 0
    dashboard: int = DASHBOARD_PORT

    def named(self) -> dict[str, tuple[int, str]]:
        """Each port with what uses it and the flag that moves it."""
        return {
            "dashboard": (self.dashboard, "--port"),
            "OTLP/gRPC": (self.grpc, "--grpc-port"),
            "OTLP/HTTP": (self.http, "--http-port"),
            "collector admin": (self.admin, "--admin-port"),
        }


def check_ports_free(ports: StackPorts, host: str = "127.0.0.1") -> None:
    """Fail early, naming the port and its flag, rather than half-start."""
    for role, (port, flag) in ports.named().items():
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                raise PortTaken(
                    f"port {port} ({role}) is already in use on {host}; "
                    f"stop what uses it or choose another with {flag}"
                ) from None


@dataclass(frozen=True)
class DataLayout:
    """Where one embedded installation keeps things, under one folder."""

    root: Path

    @property
    def clickhouse(self) -> Path:
        return self.root / "clickhouse"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def store_url(self) -> str:
        return f"chdb:{self.clickhouse}"

    def lock(self) -> TextIO:
        """Hold the folder for this process; keep the returned handle open while running."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DataInUse(
                f"{self.root} is in use by another sidetrace process (demo or all-in-one); "
                "stop it or choose another --data"
            ) from None
        return handle

    def reset(self) -> None:
        """Empty the store, spool and logs; only what sidetrace put there is removed."""
        for folder in (self.clickhouse, self.spool, self.logs):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class EmbeddedStack:
    """The store, the collector and the dashboard, started and stopped together."""

    data: DataLayout
    ports: StackPorts
    slo_files: list[str] = field(default_factory=list)
    slo_interval: float = SLO_INTERVAL_S
    slo_time_scale: float = 1.0  # the demo compresses SLO windows so alerts play out in minutes
    store: Store | None = None
    _lock: TextIO | None = None
    _collector: object | None = None
    _server: object | None = None
    _thread: threading.Thread | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    def start(self, timeout: float = 60.0) -> None:
        """Open and migrate the store, start the collector, serve the dashboard."""
        import uvicorn

        from collector.service import Collector, CollectorConfig
        from dashboard.app import create_app
        from dashboard.context import DashboardContext

        if self._lock is None:
            self._lock = self.data.lock()
        self.store = open_store(self.data.store_url)
        migrate(self.store)
        self._collector = Collector(
            self.store,
            CollectorConfig(
                grpc_port=self.ports.grpc,
                http_port=self.ports.http,
                admin_port=self.ports.admin,
                spool_dir=str(self.data.spool),
            ),
        )
        self._collector.start()
        ctx = DashboardContext(
            store=self.store,
            external_url=self.dashboard_url,
            slo_files=list(self.slo_files),
            slo_interval=self.slo_interval,
            slo_time_scale=self.slo_time_scale,
        )
        config = uvicorn.Config(
            create_app(ctx),
            host="127.0.0.1",
            port=self.ports.dashboard,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        self._thread.start()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import httpx  # only here: the CLI imports this module for its defaults

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                raise RuntimeError("the dashboard stopped while starting (see the log above)")
            try:
                if httpx.get(self.dashboard_url + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the dashboard did not answer on {self.dashboard_url} in {timeout}s")

    def stop(self, timeout: float = 20.0) -> None:
        """Flush the collector into the store, then stop the dashboard and close the store."""
        if self._collector is not None:
            self._collector.stop(timeout)
            self._collector = None
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout)
            self._server = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def take_data_folder(self, reset: bool = False) -> None:
        """Lock the data folder before anything touches it; ``reset`` then empties it."""
        self._lock = self.data.lock()
        if reset:
            self.data.reset()
