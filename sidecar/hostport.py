"""``host[:port]`` as found in Host headers, CONNECT targets and authorities."""

from __future__ import annotations


def split_host_port(value: str, default_port: int) -> tuple[str, int] | None:
    """``(host, port)`` from ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; ``None`` if bad."""
    text = value.strip()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)
