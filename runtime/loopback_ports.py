"""Free loopback ports for servers started a moment later: the demo's processes and the tests'.

Ports come from below the kernel's ephemeral range, so an outgoing connection cannot
take one between the pick and the bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_handed_out: set[int] = set()
_random = random.Random()


def _below_ephemeral_range() -> tuple[int, int]:
    """Ports under the kernel's ephemeral range, where outgoing connections never land."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return 20000, low


def free_port() -> int:
    """A loopback port free now, for a server started a moment later.

    Taken from below the ephemeral range: a port the kernel hands to outgoing
    connections could be taken by one of them before the server binds it.
    """
    low, high = _below_ephemeral_range()
    for _ in range(500 if high - low > 1000 else 0):
        port = _random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
