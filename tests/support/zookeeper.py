"""A real ZooKeeper (Debian's package) for tests: started, stopped and restarted on one port.

The data folder is kept across a restart, so sessions and elections survive it as
they do in production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from runtime.loopback_ports import free_port
from tests.support.polling import alive, eventually

JAVA_LIB = Path("/usr/share/java")
JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
    "netty-all.jar",
    "commons-io.jar",
    "commons-cli.jar",
    "metrics-core.jar",
    "snappy-java.jar",
)


def zookeeper_classpath() -> str | None:
    """The Java classpath of Debian's zookeeper package, or None when it or java is missing."""
    if not shutil.which("java") or not (JAVA_LIB / "zookeeper.jar").exists():
        return None
    return ":".join(str(JAVA_LIB / jar) for jar in JARS if (JAVA_LIB / jar).exists())


def zookeeper_answers(port: int) -> bool:
    """Whether a ZooKeeper server answers the ``srvr`` four-letter command on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"srvr")
            return b"Mode:" in sock.recv(1000)
    except OSError:
        return False


class ZooKeeper:
    """One standalone ZooKeeper on a free port; ``tick_ms`` sets how short sessions may be."""

    def __init__(self, folder: Path, tick_ms: int = 500) -> None:
        classpath = zookeeper_classpath()
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
        process = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", self.classpath]
            + ["org.apache.zookeeper.server.ZooKeeperServerMain", str(self.port)]
            + [str(self.folder / "data"), str(self.tick_ms)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.process = process

        log = self.folder / "zookeeper.log"
        eventually(
            lambda: alive(process, "ZooKeeper", log) or zookeeper_answers(self.port),
            timeout,
            what="ZooKeeper answers",
        )

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

    def __enter__(self) -> ZooKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
