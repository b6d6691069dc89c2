"""``sidetrace all-in-one`` as a subprocess on free ports, for the demo's end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.loopback_ports import free_port
from tests.support.polling import alive, eventually, http_ok


@contextmanager
def all_in_one(data: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, int]]]:
    """Started and answering on its dashboard port; killed on the way out if still running."""
    ports = {flag: free_port() for flag in ("--port", "--grpc-port", "--http-port")}
    ports["--admin-port"] = free_port()
    flags = [str(x) for pair in ports.items() for x in pair]
    process = subprocess.Popen(
        [sys.executable, "-m", "sidetrace", "all-in-one", "--data", str(data), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{ports['--port']}/healthz"
        what = "all-in-one answers on its dashboard port"
        eventually(lambda: alive(process, "all-in-one") or http_ok(url), 120, 0.3, what=what)
        yield process, ports
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
