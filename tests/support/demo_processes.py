"""``sidetrace all-in-one`` as a subprocess on free ports, for the demo's end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from runtime.loopback_ports import free_port


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
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "all-in-one did not answer in 120 s"
            try:
                url = f"http://127.0.0.1:{ports['--port']}/healthz"
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield process, ports
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
