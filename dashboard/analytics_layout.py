"""Layered layout of the service map, and its filters (namespace, focus N hops).

Sugiyama-style, left to right: break cycles (reverse DFS back edges), give each
node the longest-path layer, route edges that skip layers through dummy nodes,
order each layer by barycentric sweeps (keeping the order with fewest crossings),
then place layers as columns wide enough for their widest label, and nodes in a
column one label-height apart — so node labels cannot overlap by construction.
Pure functions: the page and the tests call them on plain data.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CHAR_W = 7.4  # px per character of the 12px monospace label font (a little generous)
LABEL_LINES = 2
LINE_H = 15
NODE_R = 9
NODE_H = NODE_R * 2 + LABEL_LINES * LINE_H + 14  # circle, two label lines, margin
DUMMY_H = 14
COLUMN_GAP = 170  # room between columns for edge labels
EDGE_LABEL_H = 12
MARGIN = 24
SWEEPS = 12


@dataclass
class Placed:
    id: str
    x: float
    y: float
    label_w: float
    dummy: bool = False


@dataclass
class Layout:
    width: float
    height: float
    nodes: dict[str, Placed]
    # (parent, child) -> points of the polyline, from parent to child
    edges: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    # (parent, child) -> where the edge's label goes, in the gap after the first column
    edge_labels: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def filter_graph(
    nodes: Sequence[dict],
    edges: Sequence[dict],
    namespace: str | None = None,
    focus: str | None = None,
    hops: int = 1,
) -> tuple[list[dict], list[dict]]:
    """Keep one namespace's nodes, and/or a service's callers and callees ``hops`` out.

    With a focus, an edge stays when both ends are on the caller side (ancestors
    and the focus) or both on the callee side (the focus and descendants).
    """
    keep = {n["id"] for n in nodes if not namespace or n.get("namespace") == namespace}
    kept = [e for e in edges if e["parent"] in keep and e["child"] in keep]
    if focus:
        down: dict[str, list[str]] = defaultdict(list)
        up: dict[str, list[str]] = defaultdict(list)
        for e in kept:
            down[e["parent"]].append(e["child"])
            up[e["child"]].append(e["parent"])
        callees = _within(focus, down, hops) if focus in keep else set()
        callers = _within(focus, up, hops) if focus in keep else set()
        keep = callees | callers
        kept = [
            e
            for e in kept
            if {e["parent"], e["child"]} <= callees or {e["parent"], e["child"]} <= callers
        ]
    return [n for n in nodes if n["id"] in keep], kept


def _within(source: str, links: dict[str, list[str]], hops: int) -> set[str]:
    """``source`` and every node reachable from it in at most ``hops`` steps."""
    seen = {source}
    frontier = {source}
    for _ in range(hops):
        frontier = {m for n in frontier for m in links[n]} - seen
        seen |= frontier
    return seen


def _acyclic(ids: Sequence[str], pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges with DFS back edges reversed (self loops dropped), for layering only."""
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in pairs:
        if a != b:
            succ[a].append(b)
    state: dict[str, int] = {}
    out: list[tuple[str, str]] = []
    for root in ids:
        if root in state:
            continue
        stack = [(root, iter(sorted(succ[root])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                out.append((nxt, node))
            else:
                out.append((node, nxt))
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(sorted(succ[nxt]))))
    return sorted(set(out))


def _layers(ids: Sequence[str], dag: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source: callers left of their callees."""
    preds: dict[str, list[str]] = defaultdict(list)
    indeg = {n: 0 for n in ids}
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in dag:
        preds[b].append(a)
        succ[a].append(b)
        indeg[b] += 1
    layer = {n: 0 for n in ids}
    queue = deque(n for n in ids if indeg[n] == 0)
    while queue:
        n = queue.popleft()
        for m in succ[n]:
            layer[m] = max(layer[m], layer[n] + 1)
            indeg[m] -= 1
            if indeg[m] == 0:
                queue.append(m)
    return layer


def _crossings(order: list[list[str]], links: dict[str, list[str]]) -> int:
    total = 0
    for upper, lower in zip(order, order[1:], strict=False):
        pos = {n: i for i, n in enumerate(lower)}
        segs = [(i, pos[m]) for i, n in enumerate(upper) for m in links[n] if m in pos]
        for k, (a1, b1) in enumerate(segs):
            for a2, b2 in segs[k + 1 :]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _order(layers: list[list[str]], down: dict[str, list[str]], up: dict[str, list[str]]):
    """Barycentric sweeps down and up; the order with fewest crossings wins."""
    best = [list(layer) for layer in layers]
    best_cross = _crossings(best, down)
    current = [list(layer) for layer in layers]
    for sweep in range(SWEEPS):
        indices = range(1, len(current)) if sweep % 2 == 0 else range(len(current) - 2, -1, -1)
        for i in indices:
            ref = current[i - 1] if sweep % 2 == 0 else current[i + 1]
            links = up if sweep % 2 == 0 else down
            pos = {n: k for k, n in enumerate(ref)}

            def key(n: str, links=links, pos=pos, layer=current[i]) -> tuple[float, int]:
                near = [pos[m] for m in links[n] if m in pos]
                return (sum(near) / len(near) if near else layer.index(n), layer.index(n))

            current[i] = sorted(current[i], key=key)
        cross = _crossings(current, down)
        if cross < best_cross:
            best, best_cross = [list(layer) for layer in current], cross
    return best


def layout(labels: dict[str, Sequence[str]], pairs: Sequence[tuple[str, str]]) -> Layout:
    """Place nodes (id -> label lines) and route the edges between them."""
    ids = sorted(labels)
    dag = _acyclic(ids, pairs)
    layer_of = _layers(ids, dag)
    down: dict[str, list[str]] = defaultdict(list)
    up: dict[str, list[str]] = defaultdict(list)
    chains: dict[tuple[str, str], list[str]] = {}
    for a, b in dag:
        chain = [a]
        for k in range(layer_of[a] + 1, layer_of[b]):
            dummy = f"\0{a}\0{b}\0{k}"
            layer_of[dummy] = k
            chain.append(dummy)
        chain.append(b)
        for u, v in zip(chain, chain[1:], strict=False):
            down[u].append(v)
            up[v].append(u)
        chains[(a, b)] = chain
    depth = max(layer_of.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for n in sorted(layer_of, key=lambda n: (layer_of[n], n.startswith("\0"), n)):
        layers[layer_of[n]].append(n)
    layers = _order(layers, down, up)

    widths = [
        max([_label_w(labels[n]) for n in layer if n in labels] + [2 * NODE_R]) for layer in layers
    ]
    heights = [sum(DUMMY_H if n.startswith("\0") else NODE_H for n in layer) for layer in layers]
    total_h = max(heights, default=0)
    placed: dict[str, Placed] = {}
    columns: list[tuple[float, float]] = []
    x = MARGIN
    for layer, width, height in zip(layers, widths, heights, strict=True):
        columns.append((x, x + width))
        cx = x + width / 2
        y = MARGIN + (total_h - height) / 2
        for n in layer:
            h = DUMMY_H if n.startswith("\0") else NODE_H
            label_w = _label_w(labels[n]) if n in labels else 0
            placed[n] = Placed(n, cx, y + NODE_R + 2, label_w, dummy=n.startswith("\0"))
            y += h
        x += width + COLUMN_GAP
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for a, b in pairs:
        if a == b:
            continue
        chain = chains.get((a, b)) or list(reversed(chains[(b, a)]))
        routes[(a, b)] = _trim([(placed[n].x, placed[n].y) for n in chain])
    nodes = {n: p for n, p in placed.items() if not p.dummy}
    return Layout(
        width=x - COLUMN_GAP + MARGIN,
        height=total_h + 2 * MARGIN,
        nodes=nodes,
        edges=routes,
        edge_labels=_edge_labels(routes, placed, layer_of, columns),
    )


def _edge_labels(routes, placed, layer_of, columns) -> dict[tuple[str, str], tuple[float, float]]:
    """Each label on its edge's first hop, mid-gap between two columns, nudged apart."""
    by_gap: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for a, b in routes:
        by_gap[min(layer_of[a], layer_of[b])].append((a, b))
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for gap, items in by_gap.items():
        gx = (columns[gap][1] + columns[gap + 1][0]) / 2
        placed_y: list[tuple[float, tuple[str, str]]] = []
        for a, b in items:
            (x0, y0), (x1, y1) = routes[(a, b)][0], routes[(a, b)][1]
            f = (gx - x0) / (x1 - x0) if x1 != x0 else 0.5
            placed_y.append((y0 + (y1 - y0) * f, (a, b)))
        last = float("-inf")
        for y, key in sorted(placed_y):
            y = max(y - 3, last + EDGE_LABEL_H)
            out[key] = (round(gx, 1), round(y, 1))
            last = y
    return out


def _trim(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Start and end the polyline at the node outlines, leaving room for the arrow head."""
    out = list(points)
    for end, nxt, gap in ((0, 1, NODE_R + 1), (-1, -2, NODE_R + 5)):
        (x0, y0), (x1, y1) = out[end], out[nxt]
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 or 1.0
        out[end] = (
            round(x0 + (x1 - x0) * gap / length, 1),
            round(y0 + (y1 - y0) * gap / length, 1),
        )
    return out


def _label_w(lines: Sequence[str]) -> float:
    return max((len(line) for line in lines), default=0) * CHAR_W + 8
