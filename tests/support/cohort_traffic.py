"""Checkout traces where the slow ones are known: payments' Charge is slowed and its spans
in those traces run on one node (``k8s.node.name=node-7``), which no other trace uses.

Calls run one after another, so a span's duration is its own work plus its children's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.support import trace_generator as gen

MS = 1_000_000
SLOW_EXTRA_MS = 200
BAD_NODE = "node-7"


@dataclass
class Node:
    service: str
    name: str
    kind: int
    work_ms: float
    children: list[Node]
    resource: dict[str, str] | None = None
    attrs: dict[str, str | int] | None = None
    error: bool = False


def layout(node: Node, ids: gen.Ids, trace_id: str, parent: str, start: int) -> list[gen.GenSpan]:
    """Spans of ``node``'s subtree: half its work, its children in turn, the other half."""
    span = gen.GenSpan(
        trace_id, ids.span(), parent, node.service, node.name, start, 0, kind=node.kind,
        status_code=2 if node.error else 0, attrs=dict(node.attrs or {}),
        resource={"service.version": "1.4.2", **(node.resource or {})},
    )  # fmt: skip
    out = [span]
    cursor = start + int(node.work_ms * MS / 2)
    for child in node.children:
        sub = layout(child, ids, trace_id, span.span_id, cursor)
        out.extend(sub)
        cursor = sub[0].start_ns + sub[0].duration_ns
    span.duration_ns = cursor + int(node.work_ms * MS / 2) - start
    return out


def checkout(rng: random.Random, slow: bool) -> Node:
    def j(ms: float) -> float:
        return ms * rng.uniform(0.8, 1.2)

    node = BAD_NODE if slow else f"node-{rng.randint(1, 3)}"
    charge = Node("payments", "Charge", gen.KIND_SERVER, j(20) + (SLOW_EXTRA_MS if slow else 0),
                  [], resource={"k8s.node.name": node})  # fmt: skip
    reserve = Node("inventory", "Reserve", gen.KIND_SERVER, j(15),
                   [Node("inventory", "SELECT", gen.KIND_CLIENT, j(5), [])])  # fmt: skip
    server = Node("checkout", "POST /checkout", gen.KIND_SERVER, j(4), [
        Node("checkout", "Charge", gen.KIND_CLIENT, j(1), [charge]),
        Node("checkout", "Reserve", gen.KIND_CLIENT, j(1), [reserve]),
    ])  # fmt: skip
    return Node(
        "frontend", "GET /checkout", gen.KIND_SERVER, j(6),
        [Node("frontend", "POST /checkout", gen.KIND_CLIENT, j(1), [server])],
        attrs={"http.route": "/checkout", "user.id": f"u{rng.randint(1, 500)}"},
        error=rng.random() < (0.5 if slow else 0.02),
    )  # fmt: skip


def traffic(start_ns: int, traces: int = 200, slow_every: int = 10, seed: int = 7) -> tuple:
    """(spans, slow trace ids): one trace per second, every ``slow_every``-th slowed."""
    rng = random.Random(seed)
    ids = gen.Ids(seed)
    spans: list[gen.GenSpan] = []
    slow_ids = []
    for i in range(traces):
        slow = i % slow_every == slow_every - 1
        trace_id = ids.trace()
        spans.extend(layout(checkout(rng, slow), ids, trace_id, "", start_ns + i * 10**9))
        if slow:
            slow_ids.append(trace_id)
    return spans, slow_ids
