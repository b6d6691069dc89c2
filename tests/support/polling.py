"""``eventually()``: the one way tests wait for something that happens in another thread or
process. Deadlines are generous because the suite runs on loaded two-core machines; a
condition that holds returns at once, so a long deadline costs nothing when things work."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxies


class Gone(Exception):
    """Raised by a condition when waiting longer cannot help (the process exited)."""


class NotYet(Exception):
    """Raised by a condition to say what is still missing (shown if time runs out)."""


def eventually(
    condition: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    *,
    what: str = "the condition",
    ignoring: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    An exception of a type in ``ignoring`` counts as "not yet" (a port not open, a row
    not there); ``Gone`` and any other exception propagate at once. After ``timeout``
    seconds, AssertionError names ``what`` and the last value or exception.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Gone:
            raise
        except ignoring as error:
            last = f"last exception {type(error).__name__}: {error}"
        else:
            if value:
                return value
            last = f"last value {value!r}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s ({last[:2000]})")
        time.sleep(interval)


def alive(process: subprocess.Popen, name: str = "the process", log: Path | None = None) -> None:
    """Raise ``Gone`` if ``process`` has exited, with the end of its output (piped or ``log``)."""
    if process.poll() is None:
        return
    output = process.communicate()[0] if process.stdout else ""
    if log is not None and log.exists():
        output = log.read_text(errors="replace")
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    raise Gone(f"{name} exited with {process.returncode}: {output[-2000:]}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether GET ``url`` answers 200 now (a readiness or health endpoint)."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False
