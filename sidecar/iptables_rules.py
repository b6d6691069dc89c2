"""The pod's traffic redirect as ``iptables-restore`` text, from a pure function.

Inbound TCP to the pod goes to the sidecar's inbound port, outbound TCP from the
app goes to its outbound port. Exempt: the sidecar's own UID (its upstream
connections would loop otherwise), loopback, the sidecar's own ports and the
ports the user skips. The text replaces the whole ``nat`` table of the pod's
network namespace in one transaction, which the pod owns alone, so applying it
twice leaves the same rules as applying it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.config import PROXY_UID, SidecarConfig

INBOUND_CHAIN = "SIDETRACE_INBOUND"
INBOUND_REDIRECT_CHAIN = "SIDETRACE_IN_REDIRECT"
OUTPUT_CHAIN = "SIDETRACE_OUTPUT"
OUTBOUND_REDIRECT_CHAIN = "SIDETRACE_OUT_REDIRECT"

_PORT_ITEM = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


class PortSpecError(ValueError):
    """A port list that is not ``N``, ``N-M`` or a comma list of those."""


def parse_ports(text: str) -> tuple[str, ...]:
    """Parse ``"80,8000-8010"`` into iptables port items (``"80"``, ``"8000:8010"``)."""
    items = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        match = _PORT_ITEM.match(item)
        if not match:
            raise PortSpecError(f"{item!r} is not a port or a range like 8000-8010")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 1 <= low <= high <= 65535:
            raise PortSpecError(f"{item!r} is outside 1-65535 or a reversed range")
        items.append(str(low) if low == high else f"{low}:{high}")
    return tuple(items)


@dataclass(frozen=True)
class RedirectConfig:
    """What to redirect; ``inbound_ports`` empty means every inbound TCP port."""

    proxy_uid: int = PROXY_UID
    proxy_gid: int | None = None
    inbound_port: int = SidecarConfig.inbound_port
    outbound_port: int = SidecarConfig.outbound_port
    admin_port: int = SidecarConfig.admin_port
    inbound_ports: tuple[str, ...] = ()
    skip_inbound_ports: tuple[str, ...] = ()
    skip_outbound_ports: tuple[str, ...] = ()
    redirect_inbound: bool = True
    redirect_outbound: bool = True


def rules(config: RedirectConfig) -> str:
    """The complete ``nat`` table for ``iptables-restore`` (no ``--noflush``)."""
    own_ports = (str(config.inbound_port), str(config.outbound_port), str(config.admin_port))
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        f":{INBOUND_CHAIN} - [0:0]",
        f":{INBOUND_REDIRECT_CHAIN} - [0:0]",
        f":{OUTPUT_CHAIN} - [0:0]",
        f":{OUTBOUND_REDIRECT_CHAIN} - [0:0]",
        f"-A {INBOUND_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {config.inbound_port}",
        f"-A {OUTBOUND_REDIRECT_CHAIN} -p tcp -j REDIRECT --to-ports {config.outbound_port}",
    ]
    if config.redirect_inbound:
        lines.append(f"-A PREROUTING -p tcp -j {INBOUND_CHAIN}")
        for port in _unique(own_ports + config.skip_inbound_ports):
            lines.append(f"-A {INBOUND_CHAIN} -p tcp --dport {port} -j RETURN")
        if config.inbound_ports:
            for port in _unique(config.inbound_ports):
                lines.append(
                    f"-A {INBOUND_CHAIN} -p tcp --dport {port} -j {INBOUND_REDIRECT_CHAIN}"
                )
        else:
            lines.append(f"-A {INBOUND_CHAIN} -p tcp -j {INBOUND_REDIRECT_CHAIN}")
    if config.redirect_outbound:
        lines.append(f"-A OUTPUT -p tcp -j {OUTPUT_CHAIN}")
        lines.append(f"-A {OUTPUT_CHAIN} -m owner --uid-owner {config.proxy_uid} -j RETURN")
        if config.proxy_gid is not None:
            lines.append(f"-A {OUTPUT_CHAIN} -m owner --gid-owner {config.proxy_gid} -j RETURN")
        lines.append(f"-A {OUTPUT_CHAIN} -o lo -j RETURN")
        lines.append(f"-A {OUTPUT_CHAIN} -d 127.0.0.1/32 -j RETURN")
        for port in _unique(config.skip_outbound_ports):
            lines.append(f"-A {OUTPUT_CHAIN} -p tcp --dport {port} -j RETURN")
        lines.append(f"-A {OUTPUT_CHAIN} -j {OUTBOUND_REDIRECT_CHAIN}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _unique(items: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(items))
