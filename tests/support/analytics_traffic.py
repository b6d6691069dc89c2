"""Generated traces over a known call topology, for the analytics tests.

Each trace walks the topology from a root: a server span in the root service, and
for every call a client span in the caller followed (for instrumented callees) by
a server span in the callee. Calls to uninstrumented peers are client spans only,
carrying ``db.system`` / ``messaging.system`` / ``server.address``. The expected
edge counts are tallied while generating, so tests compare the rollup with them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SERVER, CLIENT = 2, 3

# A callee is a service name or a peer: ("database" | "messaging" | "external", attrs).
Peer = tuple[str, dict[str, str]]
Callee = str | Peer


def peer_name(peer: Peer) -> str:
    """The virtual node name tracestore/edge_queries.py derives from the peer's attributes."""
    kind, attrs = peer
    if kind == "database":
        return attrs["db.system"] + ("/" + attrs["db.name"] if attrs.get("db.name") else "")
    if kind == "messaging":
        dest = attrs.get("messaging.destination.name")
        return attrs["messaging.system"] + ("/" + dest if dest else "")
    return attrs["server.address"]


@dataclass
class Traffic:
    """Columns for ``store.insert('spans', …)`` plus the edges they should produce."""

    topology: Mapping[str, list[Callee]]
    namespaces: Mapping[str, str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    columns: dict[str, list] = field(default_factory=dict)
    # (minute, parent, child, child_kind) -> [calls, errors]
    expected: dict[tuple[int, str, str, str], list[int]] = field(default_factory=dict)
    withheld: dict[str, list] = field(default_factory=dict)

    def _id(self, hex_digits: int) -> str:
        return f"{self.rng.getrandbits(hex_digits * 4):0{hex_digits}x}"

    def _span(self, target: dict[str, list], **values: object) -> None:
        attrs: Mapping[str, str] = values.pop("attrs", {})  # type: ignore[assignment]
        service = str(values["service_name"])
        ns = self.namespaces.get(service, "")
        values.setdefault("status_code", 0)
        values["ts"] = int(values["start_ns"]) // 10**9  # type: ignore[call-overload]
        values["attr_keys"] = list(attrs)
        values["attr_types"] = [1] * len(attrs)
        values["attr_values"] = list(attrs.values())
        values["resource_attr_keys"] = ["service.name"] + (["k8s.namespace.name"] if ns else [])
        values["resource_attr_types"] = [1] * len(values["resource_attr_keys"])
        values["resource_attr_values"] = [service] + ([ns] if ns else [])
        for name, value in values.items():
            target.setdefault(name, []).append(value)

    def trace(
        self,
        root: str,
        start_ns: int,
        duration: Callable[[str], int],
        error_rate: float = 0.0,
        withhold: Callable[[str, str], bool] = lambda parent, child: False,
    ) -> None:
        """One trace from ``root``; ``withhold(parent, child)`` keeps a child for later."""
        trace_id = self._id(32)
        minute = start_ns // 10**9 // 60 * 60
        server_id = self._id(16)
        self._span(
            self.columns,
            start_ns=start_ns,
            duration_ns=duration(root),
            trace_id=trace_id,
            span_id=server_id,
            parent_span_id="",
            service_name=root,
            span_name="GET /",
            span_kind=SERVER,
        )
        self._calls(root, server_id, trace_id, start_ns, minute, duration, error_rate, withhold)

    def _calls(self, service, parent_id, trace_id, t, minute, duration, error_rate, withhold):
        for callee in self.topology.get(service, []):
            client_id = self._id(16)
            failed = self.rng.random() < error_rate
            if isinstance(callee, str):
                kind, child, attrs = "service", callee, {"server.address": f"{callee}:8080"}
            else:
                kind, child, attrs = callee[0], peer_name(callee), callee[1]
            self._span(
                self.columns,
                start_ns=t,
                duration_ns=duration(child),
                trace_id=trace_id,
                span_id=client_id,
                parent_span_id=parent_id,
                service_name=service,
                span_name=f"call {child}",
                span_kind=CLIENT,
                status_code=2 if failed else 0,
                attrs=attrs,
            )
            tally = self.expected.setdefault((minute, service, child, kind), [0, 0])
            tally[0] += 1
            tally[1] += failed
            if kind != "service":
                continue
            server_id = self._id(16)
            target = self.withheld if withhold(service, child) else self.columns
            self._span(
                target,
                start_ns=t + 1000,
                duration_ns=duration(child),
                trace_id=trace_id,
                span_id=server_id,
                parent_span_id=client_id,
                service_name=child,
                span_name="handle",
                span_kind=SERVER,
                status_code=2 if failed else 0,
            )
            self._calls(child, server_id, trace_id, t, minute, duration, error_rate, withhold)

    def expected_totals(self) -> Counter:
        """(parent, child) -> calls over every minute."""
        totals: Counter = Counter()
        for (_, parent, child, _), (calls, _) in self.expected.items():
            totals[(parent, child)] += calls
        return totals


def layered_topology(services: int, seed: int = 3) -> dict[str, list[Callee]]:
    """A random layered DAG of ``services`` services plus a few uninstrumented peers."""
    rng = random.Random(seed)
    names = [f"svc-{i:02d}" for i in range(services)]
    layers = [names[:3], names[3:9], names[9:18], names[18:]]
    topology: dict[str, list[Callee]] = {}
    for upper, lower in zip(layers, layers[1:], strict=False):
        for child in lower:
            parent = rng.choice(upper)
            topology.setdefault(parent, []).append(child)
        for parent in upper:
            extra = rng.choice(lower)
            if extra not in topology.setdefault(parent, []):
                topology[parent].append(extra)
    topology.setdefault(names[-1], []).append(("database", {"db.system": "postgresql"}))
    topology.setdefault(names[-2], []).append(("messaging", {"messaging.system": "kafka"}))
    topology.setdefault(names[-3], []).append(("external", {"server.address": "api.example.com"}))
    return topology
