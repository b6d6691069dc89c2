"""A throwaway ``clickhouse-server`` in a temporary directory, for tests and benchmarks.

It listens on 127.0.0.1 only, on free ports, and can be stopped and started
again on the same data (the fault tests restart it mid-stream).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from runtime.loopback_ports import free_port
from tests.support.polling import Gone, eventually, port_open

SERVER_BINARY = "clickhouse-server"


_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <interserver_http_port>{interserver_port}</interserver_http_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <mark_cache_size>536870912</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  {extra}
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password>{password}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


class ClickHouseServer:
    """Start, stop and restart one clickhouse-server process on free loopback ports."""

    def __init__(self, password: str = "", extra_config: str = "", root: Path | None = None):
        if shutil.which(SERVER_BINARY) is None:
            raise RuntimeError("clickhouse-server is not installed; run scripts/test.sh")
        self.root = root or Path(tempfile.mkdtemp(prefix="sidetrace-ch-"))
        self.password = password
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.interserver_port = free_port()
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        (self.root / "config.xml").write_text(
            _CONFIG.format(
                d=self.root,
                tcp_port=self.tcp_port,
                http_port=self.http_port,
                interserver_port=self.interserver_port,
                extra=self.extra_config,
            )
        )
        (self.root / "users.xml").write_text(_USERS.format(password=self.password))

    def url(self, database: str = "sidetrace", user: str = "default") -> str:
        auth = f"{user}:{self.password}@" if self.password else ""
        return f"clickhouse://{auth}127.0.0.1:{self.tcp_port}/{database}"

    def start(self, timeout: float = 60.0, cpu: int | None = None) -> None:
        command = [SERVER_BINARY, f"--config-file={self.root / 'config.xml'}"]
        if cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(cpu), *command]
        log = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(command, stdout=log, stderr=log, cwd=self.root)
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise Gone(f"clickhouse-server exited; see {self.root}/error.log")
            return port_open(self.tcp_port) and self._answers()

        eventually(answers, timeout, 0.2, what=f"clickhouse-server on port {self.tcp_port}")

    def _answers(self) -> bool:
        from clickhouse_driver import Client

        try:
            client = Client(
                "127.0.0.1", port=self.tcp_port, password=self.password, connect_timeout=1
            )
            client.execute("SELECT 1")
            client.disconnect()
            return True
        except Exception:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ClickHouseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
