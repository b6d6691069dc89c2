"""Bounds on the label values a request can choose, so a scanner cannot grow memory.

A request influences the RED labels through its method (bounded already: standard
methods or ``_OTHER``), its path (only configured ``http.route`` templates become
labels), its peer and, for gRPC, its method path. The peer is a hint: inbound it is
the ``x-sidetrace-peer`` header any client can forge, outbound the destination.
``LabelLimiter`` keeps the first values it sees and folds the rest into ``_OTHER``,
counting what it folded; ``RedMetrics`` caps the series per metric on top.
"""

from __future__ import annotations

import re

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


def peer_limiters(limit: int = MAX_PEERS) -> tuple[LabelLimiter, LabelLimiter]:
    """Limiters for the inbound peer (a service name from the peer header) and the
    outbound one (the destination ``host:port``)."""
    return LabelLimiter(limit, _SERVICE_NAME), LabelLimiter(limit, _ADDRESS)
