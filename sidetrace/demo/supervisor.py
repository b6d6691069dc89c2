"""Start child processes in their own process groups and stop every one of them cleanly.

Each child gets its own session, so a Ctrl-C in the terminal reaches only the
demo, which then stops the children in order: SIGTERM to the whole group,
then SIGKILL for whatever is still there after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class Supervisor:
    """The processes the demo started, with their logs under one folder."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that are no longer running (a demo process should never exit early)."""
        return [c for c in self.children if c.process.poll() is not None]

    def stop(self, names: list[str] | None = None, grace: float = 10.0) -> list[str]:
        """SIGTERM the groups, wait up to ``grace`` seconds, SIGKILL the rest; names killed."""
        targets = [c for c in self.children if names is None or c.name in names]
        for child in targets:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        killed = []
        for child in targets:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(child.name)
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
            # Anything the child left behind in its group goes too.
            _signal_group(child.process, signal.SIGKILL)
        self.children = [c for c in self.children if c not in targets]
        return killed


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a child's log, to explain why it stopped."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
