"""The destination a connection had before iptables REDIRECT sent it to the sidecar."""

from __future__ import annotations

import socket
import struct

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
SOL_IPV6 = 41
IP6T_SO_ORIGINAL_DST = 80


def original_destination(sock: socket.socket) -> tuple[str, int] | None:
    """``(ip, port)`` from netfilter, or ``None`` when the connection was not redirected.

    A connection made straight to the listener has no conntrack NAT entry (the
    call fails) or reports the listener's own address; both mean "not redirected".
    """
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST, 28)
            port = struct.unpack_from("!H", raw, 2)[0]
            address = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        else:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port = struct.unpack_from("!H", raw, 2)[0]
            address = socket.inet_ntoa(raw[4:8])
    except OSError:
        return None
    local = sock.getsockname()
    if (address, port) == (local[0], local[1]):
        return None
    return address, port
