"""Traces to compare: a tree of spans written as nested tuples (and edited by path) for the
trace comparison, and checkout calls before and after a deploy for the graph diff."""

from __future__ import annotations

from typing import Any

from tests.support import trace_generator as gen

MS = 1_000_000
T0 = 1_700_000_000 * 10**9

# A tree is (service, operation, start ms from the trace start, duration ms, [children]).
CHECKOUT = (
    "frontend", "GET /", 0, 100, [
        ("cart", "GetCart", 5, 20, [("db", "SELECT", 6, 5, []), ("db", "SELECT", 12, 5, [])]),
        ("payments", "Charge", 30, 60, [("db", "SELECT", 35, 10, [])]),
    ],
)  # fmt: skip


def build(tree: tuple, seed: int, trace_start: int = T0) -> list[gen.GenSpan]:
    ids = gen.Ids(seed)
    trace_id = ids.trace()
    out: list[gen.GenSpan] = []
    stack: list[tuple[tuple, str]] = [(tree, "")]
    while stack:
        (service, name, start, dur, kids), parent = stack.pop()
        span = gen.GenSpan(
            trace_id, ids.span(), parent, service, name, trace_start + start * MS, dur * MS
        )
        out.append(span)
        stack.extend((kid, span.span_id) for kid in kids)
    return out


def edit(tree: tuple, path: tuple[int, ...], **change: Any) -> tuple:
    """A copy of ``tree`` with the node at ``path`` (child indexes) changed.

    ``drop=True`` removes it, ``add=node`` appends a child, ``dur=N`` sets its duration.
    """
    service, name, start, dur, kids = tree
    if not path:
        if "add" in change:
            kids = [*kids, change["add"]]
        return (service, name, start, change.get("dur", dur), kids)
    i, rest = path[0], path[1:]
    if not rest and change.get("drop"):
        return (service, name, start, dur, kids[:i] + kids[i + 1 :])
    kids = [edit(k, rest, **change) if j == i else k for j, k in enumerate(kids)]
    return (service, name, start, dur, kids)


def checkout_calls(
    ids: gen.Ids, start_ns: int, version: str, with_payments: bool
) -> list[gen.GenSpan]:
    """frontend → checkout, and after the deploy checkout → payments too."""
    trace_id = ids.trace()
    res = {"service.version": version}
    root = gen.GenSpan(trace_id, ids.span(), "", "frontend", "GET /", start_ns, 50 * MS)
    client = gen.GenSpan(trace_id, ids.span(), root.span_id, "frontend", "POST /checkout",
                         start_ns + MS, 40 * MS, kind=gen.KIND_CLIENT)  # fmt: skip
    server = gen.GenSpan(trace_id, ids.span(), client.span_id, "checkout", "POST /checkout",
                         start_ns + 2 * MS, 38 * MS, resource=res)  # fmt: skip
    spans = [root, client, server]
    if with_payments:
        pay_client = gen.GenSpan(trace_id, ids.span(), server.span_id, "checkout", "Charge",
                                 start_ns + 3 * MS, 20 * MS, kind=gen.KIND_CLIENT,
                                 resource=res)  # fmt: skip
        pay = gen.GenSpan(trace_id, ids.span(), pay_client.span_id, "payments", "Charge",
                          start_ns + 4 * MS, 18 * MS)  # fmt: skip
        spans += [pay_client, pay]
    return spans
