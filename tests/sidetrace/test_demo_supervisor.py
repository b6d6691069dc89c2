"""The demo's supervisor stops whole process groups: SIGTERM first, SIGKILL after the grace."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sidetrace.demo.supervisor import Supervisor, log_tail
from tests.support.polling import eventually

# A child that ignores SIGTERM and leaves a grandchild behind, writing its pid first.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(grandchild.pid, flush=True)
time.sleep(300)
"""
POLITE = "import time; print('up', flush=True); time.sleep(300)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def wait_for_output(path: Path, timeout: float = 30.0) -> str:
    return eventually(lambda: path.read_text().strip(), timeout, 0.1, what=f"output in {path}")


def test_sigterm_stops_polite_children_and_sigkill_the_stubborn_with_their_group(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    polite = supervisor.start("polite", [sys.executable, "-c", POLITE], dict(os.environ))
    stubborn = supervisor.start("stubborn", [sys.executable, "-c", STUBBORN], dict(os.environ))
    assert wait_for_output(polite.log) == "up"
    grandchild = int(wait_for_output(stubborn.log))
    assert alive(grandchild)

    started = time.monotonic()
    killed = supervisor.stop(grace=2.0)

    assert killed == ["stubborn"]
    assert time.monotonic() - started < 15
    assert polite.process.returncode == -15  # SIGTERM was enough
    assert stubborn.process.returncode == -9
    eventually(lambda: not alive(grandchild), 10, 0.1, what="the stubborn child's group killed")
    assert supervisor.children == []


def test_exited_children_are_reported_with_their_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    child = supervisor.start(
        "crasher", [sys.executable, "-c", "raise SystemExit('no config')"], dict(os.environ)
    )
    child.process.wait(timeout=30)
    assert supervisor.exited() == [child]
    assert "no config" in log_tail(child.log)
    supervisor.stop()
