"""A real ZooKeeper (Debian's package) for tests: started, stopped and restarted on one port.

The data folder is kept across a restart, so sessions and elections survive it as
they do in production.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from test_cluster import _zookeeper_answers, _zookeeper_classpath

from runtime.loopback_ports import free_port


class ZooKeeper:
    def __init__(self, folder: Path, tick_ms: int = 500) -> None:
        classpath = _zookeeper_classpath()
        if classpath is None:
            raise RuntimeError("ZooKeeper (Debian package zookeeper) and java are needed")
        self.classpath = classpath
        self.folder = folder
        self.port = free_port()
        self.tick_ms = tick_ms  # sessions may be as short as 2 ticks
        self.process: subprocess.Popen[bytes] | None = None
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/sidetrace", session_timeout: float = 4.0) -> str:
        return f"zk://{self.hosts}{path}?session_timeout={session_timeout:g}"

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.folder / "zookeeper.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", self.classpath]
            + ["org.apache.zookeeper.server.ZooKeeperServerMain", str(self.port)]
            + [str(self.folder / "data"), str(self.tick_ms)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _zookeeper_answers(self.port):
            if self.process.poll() is not None:
                raise RuntimeError((self.folder / "zookeeper.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError("ZooKeeper did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
