"""The service graph before and after: nodes and edges that appeared or vanished, RED deltas.

Pure: two ``analytics_queries.graph`` results in, one diff out. Figures are per
range (rates per second of each range), so ranges of different lengths compare.
"""

from __future__ import annotations

from typing import Any

FIGURES = ("rate", "error_rate", "p50", "p95", "p99")
_ORDER = {"appeared": 0, "vanished": 1, "changed": 2}


def _figures(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"calls": item.get("calls", 0), **{k: item.get(k) for k in FIGURES}}


def _deltas(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k in FIGURES:
        x, y = (a or {}).get(k), (b or {}).get(k)
        out[k] = None if x is None or y is None else y - x
    return out


def _status(a: Any, b: Any) -> str:
    if a is None:
        return "appeared"
    return "vanished" if b is None else "changed"


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Nodes and edges of both graphs, each marked appeared / vanished / changed.

    Edges are keyed by (parent, child, child kind); a node or edge whose calls
    were all in one range is new or gone. Rows come appeared first, then
    vanished, then the rest by the largest p99 growth.
    """
    nodes_a = {n["id"]: n for n in before["nodes"]}
    nodes_b = {n["id"]: n for n in after["nodes"]}
    nodes = []
    for node_id in sorted(nodes_a.keys() | nodes_b.keys()):
        a, b = nodes_a.get(node_id), nodes_b.get(node_id)
        nodes.append(
            {
                "id": node_id,
                "kind": (b or a or {}).get("kind", "service"),
                "status": _status(a, b),
                "before": _figures(a),
                "after": _figures(b),
                "delta": _deltas(a, b),
            }
        )
    key = lambda e: (e["parent"], e["child"], e["child_kind"])  # noqa: E731
    edges_a = {key(e): e for e in before["edges"]}
    edges_b = {key(e): e for e in after["edges"]}
    edges = []
    for k in edges_a.keys() | edges_b.keys():
        a, b = edges_a.get(k), edges_b.get(k)
        edges.append(
            {
                "parent": k[0],
                "child": k[1],
                "child_kind": k[2],
                "status": _status(a, b),
                "before": _figures(a),
                "after": _figures(b),
                "delta": _deltas(a, b),
            }
        )
    edges.sort(
        key=lambda e: (_ORDER[e["status"]], -(e["delta"]["p99"] or 0), e["parent"], e["child"])
    )
    nodes.sort(key=lambda n: (_ORDER[n["status"]], n["id"]))
    count = lambda rows, s: sum(1 for r in rows if r["status"] == s)  # noqa: E731
    return {
        "before": {"start": before["start"], "end": before["end"]},
        "after": {"start": after["start"], "end": after["end"]},
        "summary": {
            f"{what}_{s}": count(rows, s)
            for what, rows in (("nodes", nodes), ("edges", edges))
            for s in ("appeared", "vanished")
        },
        "nodes": nodes,
        "edges": edges,
    }
