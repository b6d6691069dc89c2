"""Start the sample system: every service as its own app process behind its own sidecar."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from sidetrace.demo.behaviour import IncidentSchedule
from sidetrace.demo.supervisor import Supervisor, log_tail
from sidetrace.demo.topology import SERVICES, ServicePorts, ServiceSpec, app_configs

PROXY_VARIABLES = frozenset(
    ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "grpc_proxy", "no_grpc_proxy")
)


def sidecar_command(app: int, inbound: int, outbound: int, admin: int) -> list[str]:
    """The command line of a sidecar beside an app on 127.0.0.1, listening on loopback."""
    return [
        sys.executable, "-m", "sidetrace", "sidecar",
        "--app-port", str(app),
        "--inbound-port", str(inbound),
        "--outbound-port", str(outbound),
        "--admin-port", str(admin),
        "--bind", "127.0.0.1",
    ]  # fmt: skip


class StartupError(Exception):
    """A process of the sample system did not come up; the message says which and why."""


@dataclass
class SampleSystem:
    supervisor: Supervisor
    collector: str  # host:port of the collector's OTLP/gRPC receiver, for the apps' own spans
    sidecar_collector: str  # the collector's OTLP/HTTP endpoint: the sidecars' default protocol
    incident: IncidentSchedule

    def __post_init__(self) -> None:
        self.ports = {spec.name: ServicePorts.allocate() for spec in SERVICES}

    @property
    def entry_url(self) -> str:
        """Where users (and the load generator) reach the frontend: its sidecar."""
        return f"http://127.0.0.1:{self.ports['frontend'].inbound}"

    def sidecar_command(self, spec: ServiceSpec) -> list[str]:
        p = self.ports[spec.name]
        command = sidecar_command(p.app, p.inbound, p.outbound, p.admin)
        command += ["--collector", self.sidecar_collector, "--service-name", spec.name]
        command += ["--drain-grace", "5"]
        command += [f"--route={route}" for route in spec.routes]
        grpc_ports = [self.ports[name].inbound for name in spec.calls if _is_grpc(name)]
        if spec.protocol == "grpc":
            grpc_ports.append(p.app)
        if grpc_ports:
            command += ["--grpc-ports", ",".join(str(port) for port in grpc_ports)]
        return command

    def start(self, timeout: float = 90.0) -> None:
        """Start every app and sidecar, leaves first, and wait until each answers."""
        configs = app_configs(self.ports, self.collector, self.incident)
        env = _without_proxy_settings(os.environ)
        for spec in SERVICES:
            app_command = [sys.executable, "-m", "sidetrace.demo.app_main"]
            self.supervisor.start(spec.name, [*app_command, configs[spec.name].to_json()], env)
            self.supervisor.start(f"{spec.name}-sidecar", self.sidecar_command(spec), env)
        deadline = time.monotonic() + timeout
        for spec in SERVICES:
            p = self.ports[spec.name]
            for port in (p.app, p.inbound, p.outbound, p.admin):
                self._wait_port(port, deadline)
        self._wait_frontend(deadline)

    def _check_alive(self) -> None:
        for child in self.supervisor.exited():
            raise StartupError(
                f"{child.name} exited with code {child.process.returncode} while starting; "
                f"its log ({child.log}) ends with:\n{log_tail(child.log)}"
            )

    def _wait_port(self, port: int, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartupError(f"nothing listens on 127.0.0.1:{port} yet; see the logs")
            time.sleep(0.2)

    def _wait_frontend(self, deadline: float) -> None:
        """One request through the frontend's sidecar proves the chain is wired."""
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(self.entry_url + "/products", timeout=5.0, trust_env=False)
                if response.status_code < 500:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise StartupError(f"the frontend did not answer through its sidecar: {last}")


def _without_proxy_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's proxy variables (``no_proxy`` above all) must not reroute the demo's calls."""
    return {k: v for k, v in environ.items() if k.lower() not in PROXY_VARIABLES}


def _is_grpc(name: str) -> bool:
    return next(s for s in SERVICES if s.name == name).protocol == "grpc"
