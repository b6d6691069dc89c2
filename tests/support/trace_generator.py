"""Synthetic traces for tests and benchmarks, inserted into ``spans`` with every column.

Shapes: ``deep`` (a chain), ``wide`` (one parent, many children), ``missing_parent``
(some spans point at a parent that never arrived), ``clock_skew`` (a child on another
host starts before its parent), ``big`` (a tree of N spans) and ``random_trace`` for
mixed realistic traffic. Ids are deterministic given the seed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tracestore.store import Store
from tracestore.trace_queries import Span

SERVICES = ("frontend", "checkout", "cart", "payments", "inventory", "shipping", "db")
OPERATIONS = ("GET /", "POST /checkout", "GetCart", "Charge", "Reserve", "Quote", "SELECT")
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT = 1, 2, 3
STRING, BOOL, INT, DOUBLE = 1, 2, 3, 4


@dataclass
class GenSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    start_ns: int
    duration_ns: int
    kind: int = KIND_SERVER
    status_code: int = 0
    status_message: str = ""
    attrs: dict[str, str | int | float | bool] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, str, dict]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def _typed(value: str | int | float | bool) -> tuple[int, str]:
    if isinstance(value, bool):
        return BOOL, "true" if value else "false"
    if isinstance(value, int):
        return INT, str(value)
    if isinstance(value, float):
        return DOUBLE, repr(value)
    return STRING, str(value)


def _json_attributes(attrs: dict) -> str:
    """Event / link attributes as the collector stores them: JSON [[key, type, text], ...]."""
    return json.dumps([[key, *_typed(value)] for key, value in attrs.items()])


class Ids:
    """Deterministic hex ids from a seeded generator."""

    def __init__(self, seed: int = 1) -> None:
        self._rng = random.Random(seed)

    def trace(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def span(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"


def columns(spans: Sequence[GenSpan]) -> dict[str, list]:
    """The ``spans`` table's columns for these spans (all of them, as the collector writes)."""
    typed = [[_typed(v) for v in s.attrs.values()] for s in spans]
    return {
        "ts": [s.start_ns // 1_000_000_000 for s in spans],
        "start_ns": [s.start_ns for s in spans],
        "duration_ns": [s.duration_ns for s in spans],
        "trace_id": [s.trace_id for s in spans],
        "span_id": [s.span_id for s in spans],
        "parent_span_id": [s.parent_span_id for s in spans],
        "trace_state": ["" for _ in spans],
        "flags": [1 for _ in spans],
        "service_name": [s.service for s in spans],
        "span_name": [s.name for s in spans],
        "span_kind": [s.kind for s in spans],
        "status_code": [s.status_code for s in spans],
        "status_message": [s.status_message for s in spans],
        "scope_name": ["sidetrace.test" for _ in spans],
        "scope_version": ["1.0" for _ in spans],
        "attr_keys": [list(s.attrs) for s in spans],
        "attr_types": [[t for t, _ in ts] for ts in typed],
        "attr_values": [[v for _, v in ts] for ts in typed],
        "resource_attr_keys": [["service.name", *s.resource] for s in spans],
        "resource_attr_types": [[STRING] * (1 + len(s.resource)) for s in spans],
        "resource_attr_values": [[s.service, *s.resource.values()] for s in spans],
        "event_times_ns": [[e[0] for e in s.events] for s in spans],
        "event_names": [[e[1] for e in s.events] for s in spans],
        "event_attrs": [[_json_attributes(e[2]) for e in s.events] for s in spans],
        "event_dropped_attributes_counts": [[0] * len(s.events) for s in spans],
        "link_trace_ids": [[lk[0] for lk in s.links] for s in spans],
        "link_span_ids": [[lk[1] for lk in s.links] for s in spans],
        "link_trace_states": [[""] * len(s.links) for s in spans],
        "link_attrs": [["[]"] * len(s.links) for s in spans],
        "link_dropped_attributes_counts": [[0] * len(s.links) for s in spans],
        "link_flags": [[0] * len(s.links) for s in spans],
        "dropped_attributes_count": [0 for _ in spans],
        "dropped_events_count": [0 for _ in spans],
        "dropped_links_count": [0 for _ in spans],
        "resource_dropped_attributes_count": [0 for _ in spans],
        "scope_attrs": ["" for _ in spans],
        "resource_schema_url": ["" for _ in spans],
        "scope_schema_url": ["" for _ in spans],
    }


def insert(store: Store, spans: Iterable[GenSpan], block: int = 50_000) -> None:
    """Insert spans in blocks of ``block`` rows."""
    batch: list[GenSpan] = []
    for span in spans:
        batch.append(span)
        if len(batch) >= block:
            store.insert("spans", columns(batch))
            batch = []
    if batch:
        store.insert("spans", columns(batch))


def now_ns() -> int:
    return time.time_ns()


def _span(ids: Ids, trace_id: str, parent: str, service: str, name: str, start: int, dur: int,
          **kw) -> GenSpan:  # fmt: skip
    return GenSpan(trace_id, ids.span(), parent, service, name, start, dur, **kw)


def deep(ids: Ids, depth: int, start_ns: int | None = None) -> list[GenSpan]:
    """A chain: each span the only child of the one before, alternating services."""
    start = start_ns if start_ns is not None else now_ns() - 60 * 10**9
    trace_id = ids.trace()
    spans: list[GenSpan] = []
    parent = ""
    for level in range(depth):
        service = SERVICES[level % len(SERVICES)]
        s = _span(ids, trace_id, parent, service, f"call-{level}", start + level * 1000,
                  (depth - level) * 2000, attrs={"level": level})  # fmt: skip
        spans.append(s)
        parent = s.span_id
    return spans


def wide(ids: Ids, width: int, start_ns: int | None = None) -> list[GenSpan]:
    """One root with ``width`` sequential children on two services."""
    start = start_ns if start_ns is not None else now_ns() - 60 * 10**9
    trace_id = ids.trace()
    root = _span(ids, trace_id, "", "frontend", "GET /", start, (width + 1) * 1000)
    children = [
        _span(
            ids,
            trace_id,
            root.span_id,
            SERVICES[1 + i % 2],
            f"child-{i % 5}",
            start + 500 + i * 1000,
            900,
            kind=KIND_CLIENT,
        )  # fmt: skip
        for i in range(width)
    ]
    return [root, *children]


def missing_parent(ids: Ids, start_ns: int | None = None) -> list[GenSpan]:
    """A root, one child, and two spans whose parent never arrived."""
    start = start_ns if start_ns is not None else now_ns() - 60 * 10**9
    trace_id = ids.trace()
    root = _span(ids, trace_id, "", "frontend", "GET /", start, 10_000_000)
    child = _span(ids, trace_id, root.span_id, "cart", "GetCart", start + 1_000_000, 2_000_000)
    lost = ids.span()
    orphan_a = _span(ids, trace_id, lost, "payments", "Charge", start + 4_000_000, 3_000_000)
    orphan_b = _span(ids, trace_id, orphan_a.span_id, "db", "SELECT", start + 4_500_000, 1_000_000)
    return [root, child, orphan_a, orphan_b]


def clock_skew(ids: Ids, start_ns: int | None = None) -> list[GenSpan]:
    """A server span on another host whose clock runs 5 ms behind its caller's."""
    start = start_ns if start_ns is not None else now_ns() - 60 * 10**9
    trace_id = ids.trace()
    root = _span(ids, trace_id, "", "frontend", "GET /", start, 10_000_000)
    client = _span(ids, trace_id, root.span_id, "frontend", "POST /checkout", start + 1_000_000,
                   4_000_000, kind=KIND_CLIENT)  # fmt: skip
    server = _span(ids, trace_id, client.span_id, "checkout", "POST /checkout",
                   start + 1_000_000 - 5_000_000, 3_000_000)  # fmt: skip
    late = _span(ids, trace_id, root.span_id, "payments", "Charge", start + 8_000_000, 6_000_000)
    return [root, client, server, late]


def big(ids: Ids, n: int, start_ns: int | None = None, fanout: int = 8) -> list[GenSpan]:
    """A tree of ``n`` spans: breadth-first with ``fanout`` children per span."""
    start = start_ns if start_ns is not None else now_ns() - 60 * 10**9
    trace_id = ids.trace()
    root = _span(ids, trace_id, "", "frontend", "GET /big", start, n * 2000 + 10_000)
    spans = [root]
    for i in range(1, n):
        parent = spans[(i - 1) // fanout]
        offset = 1000 + (i % fanout) * 100
        dur = max(1000, (parent.duration_ns - offset) // 2)
        spans.append(
            _span(
                ids,
                trace_id,
                parent.span_id,
                SERVICES[i % len(SERVICES)],
                OPERATIONS[i % len(OPERATIONS)],
                parent.start_ns + offset,
                dur,
                kind=KIND_CLIENT if i % 2 else KIND_SERVER,
                status_code=2 if i % 997 == 0 else 0,
                attrs={"i": i},
            )  # fmt: skip
        )
    return spans


def random_trace(rng: random.Random, ids: Ids, start_ns: int, size: int = 20) -> list[GenSpan]:
    """A plausible request: frontend root, nested calls across services, sometimes an error."""
    trace_id = ids.trace()
    root_dur = rng.randint(1_000_000, 500_000_000)
    error = rng.random() < 0.05
    root = _span(ids, trace_id, "", "frontend", rng.choice(OPERATIONS[:2]), start_ns, root_dur,
                 status_code=2 if error else 0,
                 attrs={"http.method": "GET", "http.status_code": 500 if error else 200,
                        "user.id": f"u{rng.randint(1, 1000)}"})  # fmt: skip
    spans = [root]
    for _ in range(size - 1):
        parent = rng.choice(spans)
        offset = rng.randint(0, max(1, parent.duration_ns // 2))
        dur = rng.randint(1000, max(1001, parent.duration_ns - offset))
        service = rng.choice(SERVICES[1:])
        spans.append(
            _span(
                ids,
                trace_id,
                parent.span_id,
                service,
                OPERATIONS[SERVICES.index(service)],
                parent.start_ns + offset,
                dur,
                kind=rng.choice((KIND_CLIENT, KIND_SERVER)),
                attrs={"peer.service": service},
            )  # fmt: skip
        )
    return spans


def to_spans(generated: Sequence[GenSpan]) -> list[Span]:
    """Generated spans as the query layer's Span objects, for analysis tests without a store."""
    return [
        Span(
            g.trace_id,
            g.span_id,
            g.parent_span_id,
            "",
            1,
            g.service,
            g.name,
            g.kind,
            g.status_code,
            g.status_message,
            "",
            "",
            g.start_ns,
            g.duration_ns,
            [],
            [],
            [],
            [],
        )  # fmt: skip
        for g in generated
    ]
