"""Start a ``sidetrace sidecar`` subprocess on free ports and wait until it serves."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from runtime.loopback_ports import free_port
from sidetrace.demo.system import sidecar_command
from tests.support.polling import Gone, eventually


class SidecarProcess:
    """One sidecar process; ``inbound``/``outbound``/``admin`` are its ports on 127.0.0.1."""

    def __init__(self, app_port: int, *extra: str, cpu: int | None = None, log: Path | None = None):
        self.app_port = app_port
        self.inbound, self.outbound, self.admin = free_port(), free_port(), free_port()
        self.extra = list(extra)
        self.cpu = cpu
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}  # added to the environment (OTEL_SERVICE_NAME, ...)

    def start(self, timeout: float = 30.0) -> SidecarProcess:
        command = sidecar_command(self.app_port, self.inbound, self.outbound, self.admin)
        command += self.extra
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDETRACE_")}
        env.update(self.env)
        self.process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:
                raise Gone(f"sidecar exited with {process.returncode}")
            self.get("/healthz")
            return True

        eventually(healthy, timeout, 0.1, what="the sidecar's /healthz", ignoring=(OSError,))
        return self

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET on the admin port; returns (status, body) also for error statuses."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin}{path}", timeout=timeout
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the Prometheus samples called ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            if series != name and not series.startswith(name + "{"):
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def rss_mb(self) -> float:
        """Resident memory of the sidecar process (VmRSS), in MB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
