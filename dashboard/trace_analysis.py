"""Pure analysis of one trace: tree order, orphans, self time, critical path, clock skew.

Everything is iterative (a 10,000-deep chain must not hit the recursion limit)
and reports what it sees: spans with a missing parent are attached under the
root and marked, and clock skew between services is measured, never corrected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tracestore.trace_queries import Span


@dataclass
class SpanInfo:
    depth: int = 0
    child_count: int = 0  # rows directly under this one in the tree (orphans count under root)
    orphan: bool = False  # parent id set but that parent is not in the trace
    self_ns: int = 0
    critical: bool = False
    starts_before_parent_ns: int = 0  # clock skew seen against a parent on another service
    ends_after_parent_ns: int = 0


@dataclass
class OperationStats:
    service: str
    name: str
    count: int = 0
    total_ns: int = 0
    self_ns: int = 0
    errors: int = 0


@dataclass
class Analysis:
    order: list[Span]  # depth-first, children by start time
    info: dict[str, SpanInfo]
    stats: list[OperationStats] = field(default_factory=list)
    orphans: int = 0
    skewed: int = 0


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    """Total length covered by possibly overlapping intervals."""
    total = 0
    cur_start = cur_end = None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def self_time(span: Span, children: list[Span]) -> int:
    """Duration not covered by any child (children clipped to the span's own interval)."""
    clipped = [
        (max(c.start_ns, span.start_ns), min(c.end_ns, span.end_ns))
        for c in children
        if c.end_ns > span.start_ns and c.start_ns < span.end_ns
    ]
    return max(0, span.duration_ns - _union_ns(clipped))


def critical_path(root: Span, children: dict[str, list[Span]]) -> set[str]:
    """Spans on the critical path: walking back from the end, the last child to finish.

    From each span, take the child that finished last (clipped to the parent's end),
    then the child that finished before that one started, and so on; descend into each.
    """
    on_path: set[str] = set()
    stack = [root]
    while stack:
        span = stack.pop()
        on_path.add(span.span_id)
        cursor = span.end_ns
        by_end = sorted(children.get(span.span_id, ()), key=lambda c: c.end_ns, reverse=True)
        for child in by_end:
            if child.start_ns >= span.end_ns:
                continue
            if min(child.end_ns, span.end_ns) <= cursor:
                stack.append(child)
                cursor = child.start_ns
    return on_path


def analyze(spans: list[Span]) -> Analysis:
    if not spans:
        return Analysis(order=[], info={})
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots: list[Span] = []
    orphans: list[Span] = []
    for s in spans:
        if not s.parent_span_id:
            roots.append(s)
        elif s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
        else:
            orphans.append(s)
    for kids in children.values():
        kids.sort(key=lambda c: (c.start_ns, c.span_id))
    roots.sort(key=lambda s: (s.start_ns, s.span_id))
    orphans.sort(key=lambda s: (s.start_ns, s.span_id))

    info = {s.span_id: SpanInfo() for s in spans}
    for s in orphans:
        info[s.span_id].orphan = True
    top = roots[0] if roots else orphans[0]
    attached = [s for s in orphans if s is not top]  # shown under the root, marked

    order: list[Span] = []
    visited: set[str] = set()

    def walk(start: Span, depth: int) -> None:
        stack: list[tuple[Span, int]] = [(start, depth)]
        while stack:
            span, d = stack.pop()
            if span.span_id in visited:
                continue
            visited.add(span.span_id)
            order.append(span)
            kids = children.get(span.span_id, [])
            if span is top and attached:
                kids = kids + attached
            si = info[span.span_id]
            si.depth = d
            si.child_count = len(kids)
            stack.extend([(kid, d + 1) for kid in reversed(kids)])

    walk(top, 0)
    for other in roots[1:]:
        walk(other, 0)
    leftovers = [s for s in spans if s.span_id not in visited]  # parent cycles
    for s in sorted(leftovers, key=lambda s: (s.start_ns, s.span_id)):
        info[s.span_id].orphan = True
        info[top.span_id].child_count += 1
        walk(s, 1)

    skewed = 0
    stats: dict[tuple[str, str], OperationStats] = {}
    for s in spans:
        si = info[s.span_id]
        kids = children.get(s.span_id)
        si.self_ns = self_time(s, kids) if kids else s.duration_ns  # a leaf: all its own
        parent = by_id.get(s.parent_span_id) if not si.orphan else None
        if parent is not None and parent.service != s.service:
            si.starts_before_parent_ns = max(0, parent.start_ns - s.start_ns)
            si.ends_after_parent_ns = max(0, s.end_ns - parent.end_ns)
            skewed += bool(si.starts_before_parent_ns or si.ends_after_parent_ns)
        st = stats.get((s.service, s.name))
        if st is None:
            st = stats[(s.service, s.name)] = OperationStats(s.service, s.name)
        st.count += 1
        st.total_ns += s.duration_ns
        st.self_ns += si.self_ns
        st.errors += s.status_code == 2
    for span_id in critical_path(top, children):
        info[span_id].critical = True
    ordered_stats = sorted(stats.values(), key=lambda st: (-st.self_ns, st.service, st.name))
    return Analysis(
        order=order,
        info=info,
        stats=ordered_stats,
        orphans=sum(1 for i in info.values() if i.orphan),
        skewed=skewed,
    )
