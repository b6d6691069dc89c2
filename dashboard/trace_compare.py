"""Two traces side by side: their call trees aligned node by node, with time deltas.

Nodes align by (service, operation, position among the siblings of the same
service and operation, in start order), level by level from the roots, so a
repeated call (the third ``SELECT`` under ``GetCart``) meets its counterpart
and an extra or missing call shows as present in one trace only. The trees are
the trace view's (``trace_analysis.analyze``: orphans under the root, several
roots side by side), and so are self time and the critical path. Pure: spans
in, rows out; iterative, so deep chains do not hit the recursion limit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from dashboard.trace_analysis import analyze
from tracestore.trace_queries import Span

Key = tuple[str, str, int]  # service, operation, position among same-named siblings
NOTABLE_NS = 1_000_000
NOTABLE_RATIO = 0.25


@dataclass(slots=True)
class Side:
    """One span's figures in one trace; offsets are from that trace's first start."""

    span_id: str
    duration_ns: int
    self_ns: int
    offset_ns: int
    critical: bool
    error: bool


@dataclass(slots=True)
class Row:
    """One aligned node: present in A, in B or in both."""

    depth: int
    service: str
    name: str
    position: int
    a: Side | None
    b: Side | None

    @property
    def presence(self) -> str:
        if self.a and self.b:
            return "both"
        return "only_a" if self.a else "only_b"

    @property
    def delta_ns(self) -> int | None:
        return self.b.duration_ns - self.a.duration_ns if self.a and self.b else None

    @property
    def delta_self_ns(self) -> int | None:
        return self.b.self_ns - self.a.self_ns if self.a and self.b else None

    def notable(self, min_ns: int = NOTABLE_NS, ratio: float = NOTABLE_RATIO) -> bool:
        """In one trace only, or its duration or self time changed by at least ``min_ns``
        and ``ratio`` of A's (the noise of a jittery call stays out)."""
        if not (self.a and self.b):
            return True
        pairs = ((self.a.duration_ns, self.delta_ns), (self.a.self_ns, self.delta_self_ns))
        return any(abs(d or 0) >= max(min_ns, ratio * base) for base, d in pairs)


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)  # merged tree, depth first
    duration_a_ns: int = 0
    duration_b_ns: int = 0

    @property
    def only_a(self) -> list[Row]:
        return [r for r in self.rows if r.presence == "only_a"]

    @property
    def only_b(self) -> list[Row]:
        return [r for r in self.rows if r.presence == "only_b"]

    def slower(self, limit: int = 10) -> list[Row]:
        """Matched nodes whose own time grew the most (self time: what the node itself added)."""
        grown = [r for r in self.rows if r.delta_self_ns is not None and r.delta_self_ns > 0]
        return sorted(grown, key=lambda r: -(r.delta_self_ns or 0))[:limit]

    def critical_path(self, side: str) -> list[Row]:
        """Rows on one trace's critical path ("a" or "b"), in tree order."""
        return [r for r in self.rows if (s := getattr(r, side)) is not None and s.critical]


@dataclass
class _Tree:
    """A trace as the trace view shows it: children lists by span, and each span's figures."""

    spans: list[Span]  # the trace view's depth-first order
    sides: list[Side]
    children: dict[int, list[int]]  # index into spans; -1 is the virtual root above the roots

    @classmethod
    def of(cls, spans: list[Span]) -> _Tree:
        analysis = analyze(spans)
        order = analysis.order
        start = min((s.start_ns for s in order), default=0)
        children: dict[int, list[int]] = defaultdict(list)
        sides = []
        last_at_depth: list[int] = []
        for i, span in enumerate(order):  # depth-first order: parent is the last shallower row
            info = analysis.info[span.span_id]
            del last_at_depth[info.depth :]
            children[last_at_depth[-1] if info.depth else -1].append(i)
            last_at_depth.append(i)
            sides.append(
                Side(
                    span.span_id,
                    span.duration_ns,
                    info.self_ns,
                    span.start_ns - start,
                    info.critical,
                    span.status_code == 2,
                )
            )
        return cls(order, sides, children)

    def keyed(self, parent: int | None) -> dict[Key, int]:
        """Children of ``parent`` by (service, operation, position among same-named ones).

        Children come in start order already, except spans attached under the root
        (orphans), hence the (cheap, nearly sorted) sort.
        """
        if parent is None:
            return {}
        kids = self.children.get(parent)
        if not kids:
            return {}
        sides, spans = self.sides, self.spans
        if len(kids) > 1:
            kids = sorted(kids, key=lambda i: (sides[i].offset_ns, sides[i].span_id))
        seen: dict[tuple[str, str], int] = {}
        out: dict[Key, int] = {}
        for i in kids:
            span = spans[i]
            name = (span.service, span.name)
            n = seen.get(name, 0)
            out[(span.service, span.name, n)] = i
            seen[name] = n + 1
        return out

    def duration(self) -> int:
        return max((s.offset_ns + s.duration_ns for s in self.sides), default=0)


def compare(a_spans: list[Span], b_spans: list[Span]) -> Comparison:
    """Align trace A with trace B; rows come in tree order, siblings by start offset."""
    a, b = _Tree.of(a_spans), _Tree.of(b_spans)
    out = Comparison(duration_a_ns=a.duration(), duration_b_ns=b.duration())
    # (index in A or None, index in B or None, depth, key); -1 is the virtual root
    stack: list[tuple[int | None, int | None, int, Key]] = [(-1, -1, -1, ("", "", 0))]
    while stack:
        ia, ib, depth, key = stack.pop()
        if depth >= 0:
            side_a = a.sides[ia] if ia is not None else None
            side_b = b.sides[ib] if ib is not None else None
            out.rows.append(Row(depth, *key, side_a, side_b))
        kids_a, kids_b = a.keyed(ia), b.keyed(ib)
        merged = []
        for k in kids_a.keys() | kids_b.keys():
            ja, jb = kids_a.get(k), kids_b.get(k)
            side = a.sides[ja] if ja is not None else b.sides[jb]  # type: ignore[index]
            merged.append((side.offset_ns, k, ja, jb))
        merged.sort(key=lambda m: (m[0], m[1]))
        stack.extend((ja, jb, depth + 1, k) for _, k, ja, jb in reversed(merged))
    return out
