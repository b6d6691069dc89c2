"""Traffic for the example traces: one trace a second whose few outliers (slowest, failed)
are the examples a chart, an edge page and an alert link to."""

from __future__ import annotations

from tests.support import trace_generator as gen
from tracestore.store import Store

MS = 1_000_000
TRACES = 300


def example_trace(ids: gen.Ids, start_s: int, root_ms: int = 10, client_ms: int = 6,
           charge_ms: int = 5, status: int = 0) -> list[gen.GenSpan]:  # fmt: skip
    """frontend GET / calls checkout (a client span) whose server span is Charge."""
    trace_id, root, call = ids.trace(), ids.span(), ids.span()
    start = start_s * 10**9
    return [
        gen.GenSpan(trace_id, root, "", "frontend", "GET /", start, root_ms * MS),
        gen.GenSpan(
            trace_id,
            call,
            root,
            "frontend",
            "checkout",
            start + MS,
            client_ms * MS,
            kind=gen.KIND_CLIENT,
        ),  # fmt: skip
        gen.GenSpan(
            trace_id,
            ids.span(),
            call,
            "checkout",
            "Charge",
            start + 2 * MS,
            charge_ms * MS,
            status_code=status,
        ),  # fmt: skip
    ]


class ExampleTraffic:
    """One trace a second for TRACES seconds from ``t0``; a few stand out in one way each.

    Chart window [t0, t0+100): ``chart`` has the slowest Charge, ``chart_error`` fails.
    Edge window [t0+100, t0+200): ``edge`` made the slowest frontend → checkout call.
    Alert window (the whole run): ``alert`` has the slowest Charge, ``alert_error`` is
    the slowest failed one. ``plain`` is ordinary and referenced by nothing.
    """

    def __init__(self, store: Store, t0: int) -> None:
        ids = gen.Ids(77)
        special = {50: {"charge_ms": 8}, 60: {"status": 2}, 150: {"client_ms": 9},
                   250: {"charge_ms": 9}, 260: {"charge_ms": 6, "status": 2}}  # fmt: skip
        self.t0 = t0
        # Roots of 10-16 ms, the examples' 10 ms: no example is its hour's p99 outlier.
        self.traces = [
            example_trace(ids, t0 + i, **special.get(i, {"root_ms": 10 + i % 7}))
            for i in range(TRACES)
        ]
        gen.insert(store, [s for t in self.traces for s in t])
        tid = lambda i: self.traces[i][0].trace_id  # noqa: E731
        self.chart, self.chart_error, self.edge = tid(50), tid(60), tid(150)
        self.alert, self.alert_error, self.plain = tid(250), tid(260), tid(10)
