"""Bounds on the label values a request can choose, so a scanner cannot grow memory.

A request influences the RED labels through its method (bounded already: standard
methods or ``_OTHER``), its path (only configured ``http.route`` templates become
labels), its peer and, for gRPC, its method path. The peer is a hint: inbound it is
the ``x-sidetrace-peer`` header any client can forge, outbound the destination.
``LabelLimiter`` keeps the first values it sees and folds the rest into ``_OTHER``,
counting what it folded; ``RedMetrics`` caps the series per metric on top.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

OTHER = "_OTHER"
# Peers a sidecar labels by name; OpenTelemetry SDKs cap a metric at 2000 series.
MAX_PEERS = 100
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_ADDRESS = re.compile(r"[0-9A-Za-z.:\[\]-]{1,300}")


class LabelLimiter:
    """The first ``limit`` distinct well-formed values keep their own label; every
    later or malformed one becomes ``_OTHER`` and is counted in ``overflowed``."""

    def __init__(self, limit: int = MAX_PEERS, pattern: re.Pattern[str] = _SERVICE_NAME):
        self.limit = limit
        self._pattern = pattern
        self._kept: set[str] = set()
        self.overflowed = 0

    def __call__(self, value: str) -> str:
        if not value or value in self._kept:
            return value
        if len(self._kept) < self.limit and self._pattern.fullmatch(value):
            self._kept.add(value)
            return value
        self.overflowed += 1
        return OTHER


class PeerHints(LabelLimiter):
    """The inbound peer label from ``x-sidetrace-peer: NAME[;TAG]``. With a mesh key,
    only a NAME whose TAG is the key's HMAC of it came from a sidecar of this mesh;
    anything else is ``_OTHER``. Without a key, NAME is an unverified hint."""

    def __init__(self, key: bytes | None, limit: int = MAX_PEERS):
        super().__init__(limit, _SERVICE_NAME)
        self._key = key

    def __call__(self, value: str) -> str:
        if not value:
            return value
        name, _, tag = value.partition(";")
        if self._key is not None and not hmac.compare_digest(tag, peer_tag(self._key, name)):
            self.overflowed += 1
            return OTHER
        return super().__call__(name)


def peer_tag(key: bytes, name: str) -> str:
    return hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:32]


def peer_header_value(name: str, key: bytes | None) -> str:
    """What a sidecar sends as ``x-sidetrace-peer``: its name, tagged when it has a key."""
    return f"{name};{peer_tag(key, name)}" if key is not None else name


def mesh_key(export_headers: Iterable[tuple[str, str]]) -> bytes | None:
    """The key sidecars of one mesh share: the collector credential every injected
    sidecar holds (the ``authorization`` export header), or None without one."""
    for name, value in export_headers:
        if name.lower() == "authorization" and value:
            return value.encode()
    return None


def peer_limiters(
    key: bytes | None = None, limit: int = MAX_PEERS
) -> tuple[LabelLimiter, LabelLimiter]:
    """Limiters for the inbound peer (the peer header, verified with ``key``) and the
    outbound one (the destination ``host:port``)."""
    return PeerHints(key, limit), LabelLimiter(limit, _ADDRESS)
